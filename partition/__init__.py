"""Graph partitioning for distthrml: METIS partitions, halo plans, coloring and reports.

Pure numpy/scipy/networkx/pymetis: this package never imports JAX, Ray, YAML or argparse (its
command line, `distthrml partition`, is `cluster/partition_cli.py`). Bad input raises
`PartitionError`, a `ValueError`.
"""

from . import coloring as coloring
from . import generators as generators
from .api import partition_capacity, partition_graph, partition_hierarchical
from .errors import PartitionError
from .graph import as_csr
from .halo import HaloPlan, build_halo_plan
from .result import Partition

__all__ = [
    "HaloPlan",
    "Partition",
    "PartitionError",
    "as_csr",
    "build_halo_plan",
    "coloring",
    "generators",
    "partition_capacity",
    "partition_graph",
    "partition_hierarchical",
]
