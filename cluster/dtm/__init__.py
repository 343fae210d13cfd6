"""Denoising thermodynamic models (DTMs): a chain of conditional Boltzmann machines, one per
diffusion step, trained step-parallel (`distthrml train` with `model.kind: dtm`)."""
