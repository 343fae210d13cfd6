"""Graph partitioning for distthrml: METIS partitions, halo plans, coloring and reports.

Pure numpy/scipy/networkx/pymetis: this package never imports JAX or Ray.
"""

from . import generators as generators
