"""Checkpointed KL-gradient training of Boltzmann machines (`distthrml train`). No Ray here:
`cluster.ray_launch` wraps `run.train` in a Ray Train `JaxTrainer`."""
