"""Bad input gets a clear error naming what is wrong, before anything is compiled."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import distthrml as dt
from distthrml.models import (
    CategoricalEBMFactor,
    DiscreteEBMInteraction,
    IsingEBM,
    IsingSamplingProgram,
    SpinEBMFactor,
    SpinGibbsConditional,
)


@pytest.fixture
def chain():
    nodes = [dt.SpinNode() for _ in range(6)]
    edges = [(nodes[i], nodes[i + 1]) for i in range(5)]
    model = IsingEBM(nodes, edges, jnp.zeros(6), jnp.ones(5), jnp.array(1.0))
    return nodes, edges, model


def test_interacting_nodes_in_one_free_block(chain):
    nodes, _, model = chain
    with pytest.raises(dt.ProgramError, match=r"free block 0 node 0 .*reads the state of node 1 of free block 0"):
        IsingSamplingProgram(model, [dt.Block(nodes)], [])


def test_interacting_nodes_in_one_superblock(chain):
    nodes, _, model = chain
    superblock = (dt.Block(nodes[0:3]), dt.Block(nodes[3:6]))
    with pytest.raises(dt.ProgramError, match=r"superblock 0"):
        IsingSamplingProgram(model, [superblock], [])


def test_interacting_nodes_in_different_superblocks_are_fine(chain):
    nodes, _, model = chain
    IsingSamplingProgram(model, [dt.Block(nodes[::2]), dt.Block(nodes[1::2])], [])
    # clamping a neighbour is fine too
    IsingSamplingProgram(model, [dt.Block(nodes[::2])], [dt.Block(nodes[1::2])])


def test_node_in_two_blocks(chain):
    nodes, _, model = chain
    blocks = [dt.Block(nodes[::2]), dt.Block(nodes[1::2] + [nodes[0]])]
    with pytest.raises(dt.BlockError, match=r"show up twice.*block 0 position 0 and at block 1 position 3"):
        IsingSamplingProgram(model, blocks, [])
    with pytest.raises(RuntimeError):  # THRML raised RuntimeError here; we still are one
        dt.BlockSpec(blocks, model.node_shape_dtypes)


def test_mixed_node_types_in_a_block():
    with pytest.raises(dt.BlockError, match=r"node 0 is a SpinNode but node 2 is a CategoricalNode"):
        dt.Block([dt.SpinNode(), dt.SpinNode(), dt.CategoricalNode()])
    with pytest.raises(ValueError):
        dt.Block([dt.SpinNode()]) + dt.Block([dt.CategoricalNode()])


def test_sampler_count(chain):
    nodes, _, model = chain
    spec = dt.BlockGibbsSpec([dt.Block(nodes[::2]), dt.Block(nodes[1::2])], [], model.node_shape_dtypes)
    with pytest.raises(dt.ProgramError, match=r"Expected 2 samplers.*received 1"):
        dt.FactorSamplingProgram(spec, [SpinGibbsConditional()], model.factors, [])


@pytest.fixture
def program(chain):
    nodes, _, model = chain
    free = [dt.Block(nodes[0:5:2]), dt.Block(nodes[1:4:2])]
    return IsingSamplingProgram(model, free, [dt.Block([nodes[5]])]), free


def _run(program, init, clamp, jit=False):
    fn = lambda: dt.sample_states(jax.random.key(0), program, dt.SamplingSchedule(1, 2, 1), init, clamp, [program.gibbs_spec.free_blocks[0]])
    return jax.jit(fn)() if jit else fn()


@pytest.mark.parametrize("jit", [False, True])
def test_initial_state_wrong_shape(program, jit):
    prog, free = program
    init = [jnp.zeros(3, bool), jnp.zeros(3, bool)]
    with pytest.raises(dt.StateError, match=r"initial/free state of block 1 \(SpinNode, 2 nodes\).*block length 2"):
        _run(prog, init, [jnp.zeros(1, bool)], jit)


def test_initial_state_wrong_dtype(program):
    prog, free = program
    init = [jnp.zeros(3, jnp.float32), jnp.zeros(2, bool)]
    with pytest.raises(dt.StateError, match=r"initial/free state of block 0 .*dtype float32, expected bool"):
        _run(prog, init, [jnp.zeros(1, bool)])


def test_batched_initial_state_needs_vmap(program):
    prog, free = program
    init = [jnp.zeros((4, 3), bool), jnp.zeros((4, 2), bool)]
    with pytest.raises(dt.StateError, match=r"use jax.vmap"):
        _run(prog, init, [jnp.zeros((4, 1), bool)])


def test_clamped_state_wrong_dtype_and_shape(program):
    prog, free = program
    init = [jnp.zeros(3, bool), jnp.zeros(2, bool)]
    with pytest.raises(dt.StateError, match=r"clamped state of block 0 .*dtype uint8, expected bool"):
        _run(prog, init, [jnp.zeros(1, jnp.uint8)])
    with pytest.raises(dt.StateError, match=r"clamped state of block 0 .*block length 1"):
        _run(prog, init, [jnp.zeros(2, bool)])
    with pytest.raises(dt.StateError, match=r"1 clamped blocks"):
        _run(prog, init, [])


def test_weights_leading_axis(chain):
    nodes, _, _ = chain
    with pytest.raises(dt.InteractionError, match=r"leading dimension of weights.*\(5\).*shape \(4,\)"):
        SpinEBMFactor([dt.Block(nodes[:5]), dt.Block(nodes[1:])], jnp.ones(4))
    with pytest.raises(dt.InteractionError, match=r"same number of nodes"):
        SpinEBMFactor([dt.Block(nodes[:5]), dt.Block(nodes[1:5])], jnp.ones(5))
    with pytest.raises(dt.InteractionError, match=r"interaction\.weights has shape \(3,\)"):
        dt.InteractionGroup(DiscreteEBMInteraction(0, jnp.ones(3)), dt.Block(nodes[:2]), [])
    with pytest.raises(dt.InteractionError, match=r"weights have shape \(4,\), expected \(5,\)"):
        IsingEBM(nodes, list(zip(nodes[:-1], nodes[1:])), jnp.zeros(6), jnp.ones(4), jnp.array(1.0))
    cats = [dt.CategoricalNode() for _ in range(4)]
    with pytest.raises(dt.InteractionError, match=r"\[b, x_1, ..., x_k\].*categorical_node_groups \(here 2\)"):
        CategoricalEBMFactor([dt.Block(cats[:2]), dt.Block(cats[2:])], jnp.ones((2, 3)))


def test_node_type_missing_from_node_shape_dtypes():
    class ContinuousNode(dt.AbstractNode):
        pass

    nodes = [ContinuousNode() for _ in range(3)]
    with pytest.raises(dt.BlockError, match=r"Block 0 holds ContinuousNode nodes, a node type missing from node_shape_dtypes"):
        dt.BlockGibbsSpec([dt.Block(nodes)], [])


def test_tail_node_outside_program(chain):
    nodes, _, model = chain
    with pytest.raises(dt.InteractionError, match=r"a node in no block of the program"):
        IsingSamplingProgram(model, [dt.Block(nodes[0:5:2]), dt.Block(nodes[1:4:2])], [])


def test_sampler_returning_wrong_dtype(chain):
    nodes, _, model = chain

    class Sloppy(SpinGibbsConditional):
        def sample_given_parameters_per_node(self, key, node_index, parameters, sampler_state, output_sd):
            return parameters, sampler_state  # float, not bool

    spec = dt.BlockGibbsSpec([dt.Block(nodes[::2]), dt.Block(nodes[1::2])], [], model.node_shape_dtypes)
    prog = dt.FactorSamplingProgram(spec, [Sloppy(), Sloppy()], model.factors, [])
    init = [jnp.zeros(3, bool), jnp.zeros(3, bool)]
    with pytest.raises(dt.StateError, match=r"sampler 0 \(Sloppy\) returned float32\[3\].*expected bool\[3\]"):
        dt.sample_states(jax.random.key(0), prog, dt.SamplingSchedule(1, 1, 1), init, [], [spec.free_blocks[0]])


def test_empty_and_abstract():
    with pytest.raises(TypeError):
        dt.AbstractNode()
    with pytest.raises(dt.BlockError, match="empty block"):
        dt.BlockSpec([dt.Block([])], {})
