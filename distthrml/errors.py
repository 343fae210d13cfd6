"""Error types. Each subclasses both `ValueError` and `RuntimeError`, so code written against
THRML (which raises `RuntimeError` in places where a `ValueError` is more natural) keeps working."""


class DistThrmlError(ValueError, RuntimeError):
    """Base class of the errors distthrml raises for bad input."""


class BlockError(DistThrmlError):
    """A block is malformed: mixed node types, empty, a node in two blocks, an unknown node type."""


class StateError(DistThrmlError):
    """A state (initial, clamped, observed) does not match its blocks' shapes and dtypes."""


class InteractionError(DistThrmlError):
    """An interaction group or factor is malformed, or reads nodes the program does not contain."""


class ProgramError(DistThrmlError):
    """A sampling program is inconsistent: sampler count, interacting nodes sampled at once."""


class ShardingError(DistThrmlError):
    """A partition, mesh or batch does not fit a sharded program."""
