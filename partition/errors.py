"""The error `partition` raises for bad input (a graph, weights, parts, a method, a file)."""


class PartitionError(ValueError):
    """Bad input to a partitioning, colouring or graph-building function; the message names the
    offending argument, node or file."""
