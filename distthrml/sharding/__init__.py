"""Sharded block Gibbs: a program split across devices, the one engine on every shard, a halo
exchange after each block."""

from ..errors import ShardingError as ShardingError
from .program import ShardedProgram as ShardedProgram
from .program import shard_program as shard_program
from .run import spans_processes as spans_processes
from .run import to_global as to_global
