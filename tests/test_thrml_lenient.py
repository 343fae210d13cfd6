"""THRML's lenient edges, side by side: the same call under thrml 0.1.4 and distthrml behaves the
same way (accepted with the same result, or refused with an exception THRML's callers catch and
a message that contains THRML's wording).

- state lists longer than the spec's blocks;
- sampler outputs of another dtype than the node type's;
- error wording and classes;
- THRML's private helpers that its tutorials and tests use.
"""

from __future__ import annotations

import re
from types import ModuleType

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import thrml

import distthrml

LIBS: dict[str, ModuleType] = {"thrml": thrml, "distthrml": distthrml}


def _outcome(fn):
    """`("ok", value)` or `("error", exception)`."""
    try:
        return "ok", fn()
    except Exception as err:  # noqa: BLE001 - the point is to compare what is raised
        return "error", err


def _same_outcome(calls: dict, what: str):
    """Run `calls[name]()` for both libraries; assert both succeed with equal leaves (shapes,
    dtypes, values), or both fail with distthrml's exception an instance of THRML's class and
    its message containing THRML's (trailing period aside). Returns the outcomes."""
    got = {name: _outcome(fn) for name, fn in calls.items()}
    (kt, vt), (kd, vd) = got["thrml"], got["distthrml"]
    assert kt == kd, f"{what}: thrml {kt} ({vt!r}) but distthrml {kd} ({vd!r})"
    if kt == "ok":
        lt, ld = jax.tree.leaves(vt), jax.tree.leaves(vd)
        assert len(lt) == len(ld), what
        for a, b in zip(lt, ld):
            assert np.asarray(a).dtype == np.asarray(b).dtype, f"{what}: {np.asarray(a).dtype} vs {np.asarray(b).dtype}"
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)
    else:
        assert isinstance(vd, type(vt)), f"{what}: thrml raised {type(vt).__name__}, distthrml {type(vd).__name__} ({vd})"
        wording = _wording(str(vt))
        if wording:
            # spacing aside (THRML's messages join lines without a space in places)
            assert re.sub(r"\s", "", wording) in re.sub(r"\s", "", str(vd)), f"{what}: {str(vd)!r} lacks THRML's wording {wording!r}"
    return got


def _wording(message: str) -> str:
    # THRML's message up to its first detail (JAX's scan message lists the types after a colon)
    message = message.strip().splitlines()[0] if message.strip() else ""
    message = message.split(", but they differ")[0] if "carry" in message else message
    return message.rstrip(".:")


class _Node:
    @staticmethod
    def make(lib):
        class ScalarNode(lib.AbstractNode):
            pass

        return ScalarNode


def _int32_sampler(lib):
    class Int32Sampler(lib.AbstractConditionalSampler):
        def sample(self, key, interactions, active_flags, states, sampler_state, output_sd):
            return jnp.full(output_sd.shape, 3, jnp.int32), sampler_state

    return Int32Sampler()


def _program(lib, superblock: bool, sampler_factory=None):
    node_type = _Node.make(lib)
    nodes = [node_type() for _ in range(6)]
    sds = {node_type: jax.ShapeDtypeStruct((), jnp.int8)}
    blocks = [lib.Block(nodes[:2]), lib.Block(nodes[2:4])]
    free = [tuple(blocks)] if superblock else blocks
    spec = lib.BlockGibbsSpec(free, [lib.Block(nodes[4:])], sds)
    make = sampler_factory or _int32_sampler
    program = lib.BlockSamplingProgram(spec, [make(lib), make(lib)], [])
    states = [jnp.zeros(2, jnp.int8), jnp.ones(2, jnp.int8)]
    clamp = [jnp.full(2, 5, jnp.int8)]
    return nodes, program, states, clamp


# =============================================================================================
# longer state lists
# =============================================================================================


def _ising(lib):
    nodes = [lib.SpinNode() for _ in range(4)]
    model = lib.models.IsingEBM(nodes, [(nodes[i], nodes[i + 1]) for i in range(3)], jnp.zeros(4), jnp.ones(3), jnp.array(0.5))
    free = [lib.Block(nodes[::2])]
    kwargs = {"rng": "thrml"} if lib is distthrml else {}
    program = lib.models.IsingSamplingProgram(model, free, [lib.Block(nodes[1::2])], **kwargs)
    return nodes, program


@pytest.mark.parametrize(
    "case",
    ["single_block", "sample_blocks", "states_no_sweeps", "states_with_sweeps", "observation_no_sweeps", "to_global", "to_global_short"],
)
def test_longer_state_lists_as_thrml(case: str) -> None:
    """A state list with an extra trailing entry: THRML reads block states by position where it
    does not verify them (`sample_single_block`, `block_state_to_global`, a schedule with no
    sweep) and refuses it where it verifies (`sample_blocks`, any schedule with sweeps, with a
    RuntimeError "Number of states not equal to number of blocks"); a list that is too short is an
    IndexError. distthrml does the same, with the same results."""
    calls = {}
    for name, lib in LIBS.items():
        nodes, program = _ising(lib)
        free = [jnp.array([True, False])]
        clamp = [jnp.array([False, True])]
        extra = [jnp.array([True, True, False])]
        key = jax.random.key(2)
        all_nodes = [lib.Block(nodes)]
        calls[name] = {
            "single_block": lambda lib=lib, p=program: lib.sample_single_block(key, free + extra, clamp, p, 0, None),
            "sample_blocks": lambda lib=lib, p=program: lib.sample_blocks(key, free + extra, clamp, p, [None]),
            "states_no_sweeps": lambda lib=lib, p=program, a=all_nodes: lib.sample_states(
                key, p, lib.SamplingSchedule(0, 1, 1), free, clamp + extra, a
            ),
            "states_with_sweeps": lambda lib=lib, p=program, a=all_nodes: lib.sample_states(
                key, p, lib.SamplingSchedule(1, 2, 1), free, clamp + extra, a
            ),
            "observation_no_sweeps": lambda lib=lib, p=program, a=all_nodes: lib.sample_with_observation(
                key, p, lib.SamplingSchedule(0, 3, 0), free, clamp + extra, None, lib.StateObserver(a)
            ),
            "to_global": lambda lib=lib, p=program: lib.block_state_to_global(free + clamp + extra, p.gibbs_spec),
            "to_global_short": lambda lib=lib, p=program: lib.block_state_to_global(free, p.gibbs_spec),
        }[case]
    _same_outcome(calls, case)


def test_misaligned_longer_list_is_refused() -> None:
    """Where THRML's positional reading corrupts the state (an extra free entry takes the clamped
    block's place, with another length, and the observation reads a global state of the wrong
    size), distthrml refuses it with a StateError naming the block: the one deliberate exception."""
    outcomes = {}
    for name, lib in LIBS.items():
        nodes, program = _ising(lib)
        free, clamp, extra = [jnp.array([True, False])], [jnp.array([False, True])], [jnp.array([True, True, False])]
        observer = lib.StateObserver([lib.Block(nodes)])
        outcomes[name] = _outcome(
            lambda: lib.sample_with_observation(jax.random.key(0), program, lib.SamplingSchedule(0, 1, 1), free + extra, clamp, None, observer)
        )
    assert outcomes["thrml"][0] == "ok"
    kind, err = outcomes["distthrml"]
    assert kind == "error" and isinstance(err, distthrml.StateError) and "clamped" in str(err), err


# =============================================================================================
# sampler outputs of another dtype
# =============================================================================================


@pytest.mark.parametrize("superblock", [False, True])
@pytest.mark.parametrize("case", ["single_block", "sample_blocks", "states_with_sweeps", "states_no_sweeps"])
def test_sampler_output_dtype_as_thrml(case: str, superblock: bool) -> None:
    """A custom sampler returning int32 for int8 nodes: THRML keeps the int32 output in
    `sample_single_block` and `sample_blocks` (also when a superblock's other block is read
    after it), runs a schedule without sweeps, and fails in the chain loop (`lax.scan`'s
    TypeError: carry types must be equal). distthrml matches each: same outputs and dtypes, and a
    `TypeError` (`SamplerOutputError`) in the chain."""
    calls = {}
    for name, lib in LIBS.items():
        nodes, program, states, clamp = _program(lib, superblock)
        key = jax.random.key(0)
        calls[name] = {
            "single_block": lambda lib=lib, p=program, s=states, c=clamp: lib.sample_single_block(key, s, c, p, 1, None),
            "sample_blocks": lambda lib=lib, p=program, s=states, c=clamp: lib.sample_blocks(key, list(s), c, p, [None, None]),
            "states_with_sweeps": lambda lib=lib, p=program, s=states, c=clamp, n=nodes: lib.sample_states(
                key, p, lib.SamplingSchedule(2, 2, 1), s, c, [lib.Block(n)]
            ),
            "states_no_sweeps": lambda lib=lib, p=program, s=states, c=clamp, n=nodes: lib.sample_states(
                key, p, lib.SamplingSchedule(0, 1, 1), s, c, [lib.Block(n)]
            ),
        }[case]
    got = _same_outcome(calls, case)
    if case == "states_with_sweeps":
        assert isinstance(got["distthrml"][1], distthrml.StateError)


# =============================================================================================
# error wording and classes
# =============================================================================================


def _error_cases(lib):
    debm = lib.models.discrete_ebm
    spins = [lib.SpinNode() for _ in range(3)]
    cats = [lib.CategoricalNode() for _ in range(3)]
    S, C = lib.Block(spins), lib.Block(cats)
    nodes, program = _ising(lib)
    good = [jnp.array([True, False])]
    sds = {lib.SpinNode: jax.ShapeDtypeStruct((), jnp.bool_)}

    class Other(lib.AbstractNode):
        pass

    return {
        "categorical and spin": lambda: debm.DiscreteEBMFactor([lib.Block(cats)], [C], jnp.zeros((3, 2))),
        "weight tensor shape": lambda: debm.DiscreteEBMFactor([], [C], jnp.zeros((3, 2, 2))),
        "not square": lambda: debm.SquareCategoricalEBMFactor([C, C], jnp.zeros((3, 2, 3))),
        "states not equal": lambda: lib.verify_block_state([S, C], [jnp.zeros(3, bool)], lib.pgm.DEFAULT_NODE_SHAPE_DTYPES),
        "sweep state count": lambda: lib.sample_blocks(jax.random.key(0), good + good, [jnp.array([True, True])], program, [None]),
        "too many categories": lambda: debm.CategoricalGibbsConditional(300).sample_given_parameters(
            jax.random.key(0), jnp.zeros((3, 300)), None, jax.ShapeDtypeStruct((3,), jnp.uint8)
        ),
        "sampler count": lambda: lib.BlockSamplingProgram(program.gibbs_spec, [], []),
        "mixed block": lambda: lib.Block([spins[0], cats[0]]),
        "add blocks": lambda: S + C,
        "empty block": lambda: lib.BlockSpec([lib.Block([])], sds),
        "empty node type": lambda: lib.Block([]).node_type,
        "unknown node type": lambda: lib.BlockSpec([lib.Block([Other()])], sds),
        "node twice": lambda: lib.BlockSpec([S, S], sds),
        "wrong dtype": lambda: lib.verify_block_state([S], [jnp.zeros(3, jnp.float32)], sds),
        "wrong block length": lambda: lib.verify_block_state([S], [jnp.zeros(2, bool)], sds, -1),
        "tree mismatch": lambda: lib.verify_block_state([S], [{"a": jnp.zeros(3, bool)}], sds),
        "factor empty": lambda: lib.models.discrete_ebm.SpinEBMFactor([], jnp.zeros(3)),
        "factor lengths": lambda: lib.models.discrete_ebm.SpinEBMFactor([S, lib.Block(spins[:2])], jnp.zeros(3)),
        "weights leading axis": lambda: lib.models.discrete_ebm.SpinEBMFactor([S], jnp.zeros(4)),
        "tail lengths": lambda: lib.InteractionGroup(jnp.zeros(3), S, [lib.Block(spins[:2])]),
        "interaction leading axis": lambda: lib.InteractionGroup(jnp.zeros(2), S, [S]),
        "abstract node": lambda: lib.AbstractNode(),
        "spin state dtype": lambda: debm.SpinGibbsConditional().compute_parameters(
            jax.random.key(0),
            [debm.DiscreteEBMInteraction(1, jnp.zeros((3, 1)))],
            [jnp.ones((3, 1), bool)],
            [[jnp.zeros((3, 1), jnp.int8)]],
            None,
            jax.ShapeDtypeStruct((3,), jnp.bool_),
        ),
        "unsupported interaction": lambda: debm.SpinGibbsConditional().compute_parameters(
            jax.random.key(0), [jnp.zeros((3, 1))], [jnp.ones((3, 1), bool)], [[]], None, jax.ShapeDtypeStruct((3,), jnp.bool_)
        ),
    }


@pytest.mark.parametrize("case", list(_error_cases(thrml)))
def test_errors_as_thrml(case: str) -> None:
    """Every condition THRML refuses is refused by distthrml with an exception of (a subclass of)
    THRML's class whose message contains THRML's message."""
    _same_outcome({name: _error_cases(lib)[case] for name, lib in LIBS.items()}, case)


# =============================================================================================
# private helpers
# =============================================================================================


def _private_helper_calls(lib):
    bm, debm = lib.block_management, lib.models.discrete_ebm
    sd = {"x": jax.ShapeDtypeStruct((2,), jnp.float32), "n": jax.ShapeDtypeStruct((), jnp.int32)}
    data = {"x": jnp.ones((4, 5, 2), jnp.float32), "n": jnp.zeros((4, 5), jnp.int32)}
    w = jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5)
    i1 = jnp.array([[0, 3, 1], [2, 2, 0]])
    i2 = jnp.array([[4, 0, 1], [3, 2, 2]])
    nodes, program = _ising(lib)
    spins = [jnp.array([[True, False], [False, False]]), jnp.array([[True, True], [False, True]])]
    return {
        "_check_pytree_compat": lambda: bm._check_pytree_compat(sd, data),
        "_check_pytree_compat bad dtype": lambda: bm._check_pytree_compat(sd, {**data, "n": data["n"].astype(jnp.int8)}),
        "_check_pytree_compat bad batch": lambda: bm._check_pytree_compat(sd, {**data, "n": jnp.zeros((4,), jnp.int32)}),
        "_check_pytree_compat no spec leaf": lambda: bm._check_pytree_compat({"a": None}, {"a": None}),
        "_stack": lambda: bm._stack(jnp.ones((2, 3)), jnp.zeros((1, 3))),
        "_stack scalars": lambda: bm._stack(jnp.array(1.0), jnp.array(2.0)),
        "_spin_product": lambda: debm._spin_product(spins),
        "_spin_product empty": lambda: debm._spin_product([]),
        "_batch_gather": lambda: debm._batch_gather(w, i1, i2),
        "_batch_gather_with_k": lambda: debm._batch_gather_with_k(w[:, :, None], i1, i2),
        "_split_states": lambda: debm._split_states([spins[0], jnp.zeros((2, 2), jnp.uint8)], 1),
        "_split_states bad": lambda: debm._split_states([jnp.zeros((2, 2), jnp.uint8)], 1),
        "_tree_slice": lambda: lib.block_sampling._tree_slice(jnp.arange(5.0), jnp.array([3, 1])),
        "_run_blocks": lambda: lib.block_sampling._run_blocks(
            jax.random.key(3), program, [jnp.array([True, False])], [jnp.array([False, True])], 3, [None]
        ),
        "_run_blocks zero": lambda: lib.block_sampling._run_blocks(
            jax.random.key(3), program, [jnp.array([True, False])], [jnp.array([False, True])], 0, [None]
        ),
        "_UniqueID order": lambda: lib.pgm._UniqueID.__lt__(lib.SpinNode(), 3),
        "_CounterMeta": lambda: lib.pgm._CounterMeta.__lt__(lib.SpinNode, lib.CategoricalNode),
    }


@pytest.mark.parametrize("case", list(_private_helper_calls(thrml)))
def test_private_helpers_as_thrml(case: str) -> None:
    """THRML 0.1.4's private helpers exist in the same modules and give the same results (or the
    same errors): `block_management._check_pytree_compat`, `_stack`; `models.discrete_ebm.
    _spin_product`, `_batch_gather`, `_batch_gather_with_k`, `_split_states`; `block_sampling.
    _tree_slice`, `_run_blocks` (bit for bit with THRML's keys); `pgm._UniqueID`, `_CounterMeta`."""
    _same_outcome({name: _private_helper_calls(lib)[case] for name, lib in LIBS.items()}, case)


def test_every_thrml_module_name_exists() -> None:
    """Every name THRML 0.1.4 defines in its modules (public or private, imports aside) exists in
    the same distthrml module."""
    import importlib
    import inspect

    modules = ["block_management", "block_sampling", "conditional_samplers", "factor", "interaction", "observers", "pgm",
               "models", "models.discrete_ebm", "models.ising", "models.ebm"]
    missing = []
    for m in modules:
        t, d = importlib.import_module(f"thrml.{m}"), importlib.import_module(f"distthrml.{m}")
        for name, value in vars(t).items():
            if name.startswith("__") or inspect.ismodule(value) or isinstance(value, bool):
                continue
            if getattr(value, "__module__", f"thrml.{m}").split(".")[0] != "thrml":
                continue
            if not hasattr(d, name):
                missing.append(f"{m}.{name}")
    assert not missing, missing
    assert isinstance(distthrml.SpinNode(), distthrml.pgm._UniqueID)
    assert eqx.is_array(jnp.zeros(1))
