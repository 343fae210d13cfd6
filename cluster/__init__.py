"""Ray-based multi-host launch, many-chip emulation and checkpointed training (see its issue)."""
