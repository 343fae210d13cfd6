"""The one engine: a sweep plan, the sweep (per chain or chains innermost), the chain loop.

Unsharded programs run it on their global state; a sharded program runs it on every shard's
local state with a halo exchange after each block (`distthrml.sharding`).
"""

from .chain import run_chain as run_chain
from .chain import schedule_loop as schedule_loop
from .plan import UNROLL_SLOTS as UNROLL_SLOTS
from .plan import BlockTables as BlockTables
from .plan import SweepPlan as SweepPlan
from .plan import chains_ready as chains_ready
from .plan import program_plan as program_plan
from .sweep import sweep as sweep
from .sweep import update_block as update_block
