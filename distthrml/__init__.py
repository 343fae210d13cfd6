"""distthrml: THRML-compatible block Gibbs sampling, array-native and distributed."""

from . import models as models
from . import node_rng as node_rng
from .block_management import Block as Block
from .block_management import BlockSpec as BlockSpec
from .block_management import block_state_to_global as block_state_to_global
from .block_management import concat_blocks as concat_blocks
from .block_management import from_global_state as from_global_state
from .block_management import get_node_locations as get_node_locations
from .block_management import make_block as make_block
from .block_management import make_empty_block_state as make_empty_block_state
from .block_management import verify_block_state as verify_block_state
from .block_sampling import BlockGibbsSpec as BlockGibbsSpec
from .block_sampling import BlockSamplingProgram as BlockSamplingProgram
from .block_sampling import SamplingSchedule as SamplingSchedule
from .block_sampling import sample_blocks as sample_blocks
from .block_sampling import sample_single_block as sample_single_block
from .block_sampling import sample_states as sample_states
from .block_sampling import sample_with_observation as sample_with_observation
from .conditional_samplers import AbstractConditionalSampler as AbstractConditionalSampler
from .conditional_samplers import AbstractParametricConditionalSampler as AbstractParametricConditionalSampler
from .conditional_samplers import BernoulliConditional as BernoulliConditional
from .conditional_samplers import SoftmaxConditional as SoftmaxConditional
from .errors import BlockError as BlockError
from .errors import DistThrmlError as DistThrmlError
from .errors import InteractionError as InteractionError
from .errors import ProgramError as ProgramError
from .errors import StateError as StateError
from .factor import AbstractFactor as AbstractFactor
from .factor import FactorSamplingProgram as FactorSamplingProgram
from .factor import WeightedFactor as WeightedFactor
from .graph import interaction_graph as interaction_graph
from .interaction import InteractionGroup as InteractionGroup
from .observers import AbstractObserver as AbstractObserver
from .observers import MomentAccumulatorObserver as MomentAccumulatorObserver
from .observers import StateObserver as StateObserver
from .pgm import AbstractNode as AbstractNode
from .pgm import CategoricalNode as CategoricalNode
from .pgm import SpinNode as SpinNode

__version__ = "0.1.0"
from .block_sampling import BatchedProgram as BatchedProgram
from .errors import ShardingError as ShardingError
from .models.sharded_training import shard_training_spec as shard_training_spec
from .sharding import ShardedProgram as ShardedProgram
from .sharding import shard_program as shard_program
