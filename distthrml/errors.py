"""Error types. Each subclasses both `ValueError` and `RuntimeError`, so code written against
THRML (which raises `RuntimeError` in places where a `ValueError` is more natural) keeps working.
Where THRML's callers meet another built-in class for the same condition (an `IndexError` for a
state list too short, JAX's `TypeError` for a sampler changing a state's dtype inside the chain),
a subclass adds that class too. Messages keep THRML's wording and add the offending block, node
or field."""


class DistThrmlError(ValueError, RuntimeError):
    """Base class of the errors distthrml raises for bad input."""


class BlockError(DistThrmlError):
    """A block is malformed: mixed node types, empty, a node in two blocks, an unknown node type."""


class StateError(DistThrmlError):
    """A state (initial, clamped, observed) does not match its blocks' shapes and dtypes."""


class StateCountError(StateError, IndexError):
    """Fewer block states than blocks (THRML's list indexing raises `IndexError` there)."""


class SamplerOutputError(StateError, TypeError):
    """A sampler returned a state whose dtype differs from its node type's inside the chain loop
    (where THRML's `jax.lax.scan` raises a `TypeError`)."""


class NodeOrderError(DistThrmlError, TypeError):
    """A node compared with something that is not a node (THRML raises `RuntimeError`)."""


class InteractionError(DistThrmlError):
    """An interaction group or factor is malformed, or reads nodes the program does not contain."""


class ProgramError(DistThrmlError):
    """A sampling program is inconsistent: sampler count, interacting nodes sampled at once."""


class ShardingError(DistThrmlError):
    """A partition, mesh or batch does not fit a sharded program."""


class ParameterError(DistThrmlError):
    """A concrete model parameter (weight, bias, beta) is NaN or infinite, or an edge is a self loop."""


class RepeatedEdgeWarning(UserWarning):
    """A model lists one edge more than once (in either orientation): its couplings add up, which
    is legal (as in THRML) but usually a mistake (both directions of an undirected edge list)."""
