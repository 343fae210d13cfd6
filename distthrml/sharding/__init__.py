"""Sharded block Gibbs: a program split across devices with a halo exchange per superblock."""

from .program import ShardedProgram as ShardedProgram
from .program import ShardingError as ShardingError
from .program import shard_program as shard_program
from .training import shard_training_spec as shard_training_spec
