"""Sharded block Gibbs: a program split across devices, the one engine on every shard, a halo
exchange after each block."""

from ..errors import ShardingError as ShardingError
from .program import ShardedProgram as ShardedProgram
from .program import shard_program as shard_program
