"""Issue 17, item 7 and 8: bad values end in named, one-line errors (not NaN, inf or tracebacks)."""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import pytest
import yaml

from cluster.config_file import ConfigError, read_yaml
from cluster.physics import onsager_energy_per_spin
from cluster.train.config import load_config
from distthrml import ParameterError
from distthrml.models import IsingEBM
from distthrml.pgm import SpinNode

TRAIN = pathlib.Path(__file__).parent.parent / "configs" / "train_digits.yaml"


def _train_config(tmp_path, section: str, key: str, value) -> pathlib.Path:
    raw = yaml.safe_load(TRAIN.read_text())
    raw.setdefault(section, {})[key] = value
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  beta: 1\n  beta: 2\n")
    with pytest.raises(ConfigError, match="line 3: duplicate key 'beta'"):
        read_yaml(path)


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 20):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases"):
        read_yaml(path)


@pytest.mark.parametrize("section,key,value,match", [
    ("model", "beta", 1e39, "model.beta"),
    ("model", "beta", 0, "model.beta"),
    ("optim", "learning_rate", 1e10, "optim.learning_rate"),
    ("data", "threshold", 1.5, "data.threshold"),
    ("train", "seed", 2**64, "train.seed"),
])
def test_train_numbers_out_of_range_are_named(tmp_path, section, key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_train_config(tmp_path, section, key, value))


def test_onsager_at_beta_zero_is_finite():
    assert onsager_energy_per_spin(0.0) == 0.0


def test_ising_ebm_refuses_non_finite_and_self_loops():
    nodes = [SpinNode() for _ in range(2)]
    with pytest.raises(ParameterError, match="weights"):
        IsingEBM(nodes, [(nodes[0], nodes[1])], jnp.zeros(2), jnp.array([jnp.nan]), jnp.array(1.0))
    with pytest.raises(ParameterError, match="beta"):
        IsingEBM(nodes, [(nodes[0], nodes[1])], jnp.zeros(2), jnp.ones(1), jnp.array(jnp.inf))
    with pytest.raises(ParameterError, match="self-loop"):
        IsingEBM(nodes, [(nodes[0], nodes[0])], jnp.zeros(2), jnp.ones(1), jnp.array(1.0))


def test_train_workdir_that_is_a_file_is_one_line(tmp_path, capsys):
    from cluster.cli import main

    workdir = tmp_path / "file"
    workdir.write_text("x")
    assert main(["train", str(TRAIN), "--workdir", str(workdir)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_huge_autocorrelation_buffer_is_refused(tmp_path, capsys):
    from cluster.cli import main

    path = _train_config(tmp_path, "output", "autocorrelation_sweeps", 10**9)
    assert main(["train", str(path), "--workdir", str(tmp_path / "w")]) == 2
    assert "output.autocorrelation_sweeps" in capsys.readouterr().err


def test_run_devices_are_capped(tmp_path, capsys):
    from cluster.cli import main

    raw = yaml.safe_load((TRAIN.parent / "quickstart.yaml").read_text())
    raw["devices"] = 100000
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 2
    assert "devices" in capsys.readouterr().err


def test_edge_weight_beyond_float32_is_refused(tmp_path):
    from cluster.workloads.schema import ModelConfig
    from cluster.workloads.graphs import model_graph

    path = tmp_path / "e.txt"
    path.write_text("0 1 1e300\n1 2 1.0\n")
    with pytest.raises(ConfigError, match="1e30"):
        model_graph(ModelConfig(kind="edge_list", path=str(path), weights=2))


def test_duplicate_undirected_edges_are_refused(tmp_path):
    from cluster.workloads.schema import ModelConfig
    from cluster.workloads.graphs import model_graph

    path = tmp_path / "e.txt"
    path.write_text("0 1\n1 2\n1 0\n")
    with pytest.raises(ConfigError, match=r"edge \(0, 1\) more than once"):
        model_graph(ModelConfig(kind="edge_list", path=str(path)))


def _run_config(tmp_path, **sections) -> pathlib.Path:
    raw = yaml.safe_load((TRAIN.parent / "quickstart.yaml").read_text())
    for name, values in sections.items():
        # a model section is replaced whole (keys of one kind do not apply to another)
        raw[name] = values if name == "model" else {**(raw.get(name) or {}), **values}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("command,section", [("run", "sampling"), ("run", "sharding"), ("emulate", "run"),
                                             ("emulate", "mapping")])
@pytest.mark.parametrize("seed", [2**64, 2**32, -1])
def test_seeds_of_every_command_are_32_bit(tmp_path, capsys, command, section, seed):
    from cluster.cli import main

    if command == "run":
        path = _run_config(tmp_path, **{section: {"seed": seed}})
    else:
        raw = yaml.safe_load((TRAIN.parent / "chips" / "small.yaml").read_text())
        raw[section]["seed"] = seed
        path = tmp_path / "e.yaml"
        path.write_text(yaml.safe_dump(raw))
    assert main([command, str(path)]) == 2
    assert f"'{section}.seed' must be in [0, 2**32)" in capsys.readouterr().err


@pytest.mark.parametrize("model,key", [
    ({"kind": "pegasus", "m": 100_000}, "model.m"),
    ({"kind": "ising2d", "rows": 1_000_000, "cols": 1_000_000}, "model.rows x model.cols"),
    ({"kind": "random_regular", "n": 10**10, "degree": 3}, "model.n"),
])
def test_graphs_too_big_for_memory_are_refused_before_building(tmp_path, capsys, model, key):
    """Refused from arithmetic alone (pegasus m: 100000 used to hang building the graph)."""
    from cluster.cli import main

    assert main(["run", str(_run_config(tmp_path, model=model))]) == 2
    err = capsys.readouterr().err
    assert f"{key}: a graph of" in err and "GiB, more than the" in err


def test_chains_too_many_for_memory_are_refused(tmp_path, capsys):
    from cluster.cli import main

    path = _run_config(tmp_path, model={"kind": "ising2d", "rows": 1000, "cols": 1000}, sampling={"chains": 10**7})
    assert main(["run", str(path)]) == 2
    assert "sampling.chains: 10,000,000 chains of 1,000,000 nodes" in capsys.readouterr().err


def test_edge_list_ids_beyond_memory_are_refused(tmp_path):
    from cluster.workloads.graphs import model_graph
    from cluster.workloads.schema import ModelConfig

    path = tmp_path / "e.txt"
    path.write_text("0 1\n1 300000000000\n")  # ids name the nodes: 3e11 of them
    with pytest.raises(ConfigError, match=r"model.path \(e.txt: node ids up to 300000000000\): a graph of 300,000,000,001 nodes"):
        model_graph(ModelConfig(kind="edge_list", path=str(path)))


def _graph_npz(tmp_path, **arrays) -> pathlib.Path:
    import numpy as np

    path = tmp_path / "g.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("content,match", [
    ("garbage", "is not a readable npz file"),
    ("npy", "single .npy array"),
    ("float ids", "'edges' must hold integers, got dtype float64"),
    ("nan hidden", "'n_hidden' must hold integers"),
    ("two hidden counts", "'n_hidden' must be one integer >= 0"),
])
def test_damaged_graph_npz_is_named(tmp_path, capsys, content, match):
    """A garbage file used to raise BadZipFile; float ids were truncated silently."""
    import numpy as np

    from cluster.cli import main

    edges = np.array([[v, 64 + v % 4] for v in range(64)])
    path = tmp_path / "g.npz"
    if content == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip")
    elif content == "npy":
        with open(path, "wb") as f:
            np.save(f, edges)
    elif content == "float ids":
        path = _graph_npz(tmp_path, edges=edges + 0.5, n_hidden=4)
    elif content == "nan hidden":
        path = _graph_npz(tmp_path, edges=edges, n_hidden=np.nan)
    else:
        path = _graph_npz(tmp_path, edges=edges, n_hidden=[4, 4])
    config = _train_config(tmp_path, "model", "graph", "npz")
    raw = yaml.safe_load(config.read_text())
    raw["model"]["graph_path"] = str(path)
    config.write_text(yaml.safe_dump(raw))
    # refused on the driver, before training (or a Ray launch) starts
    assert main(["train", str(config), "--workdir", str(tmp_path / "w"), "--launcher", "local"]) == 2
    err = capsys.readouterr().err
    assert f"model.graph_path: {path}" in err and match in err, err
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_ising_ebm_warns_on_a_repeated_edge():
    """Both orientations of one edge double its coupling: legal, as in THRML, but named."""
    import warnings

    from distthrml import RepeatedEdgeWarning

    nodes = [SpinNode() for _ in range(3)]
    with pytest.warns(RepeatedEdgeWarning, match="listed more than once"):
        IsingEBM(nodes, [(nodes[0], nodes[1]), (nodes[1], nodes[2]), (nodes[1], nodes[0])], jnp.zeros(3), jnp.ones(3),
                 jnp.array(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IsingEBM(nodes, [(nodes[0], nodes[1]), (nodes[1], nodes[2])], jnp.zeros(3), jnp.ones(2), jnp.array(1.0))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_discrete_factors_refuse_non_finite_weights(bad):
    import jax

    from distthrml import Block, CategoricalNode
    from distthrml.models import CategoricalEBMFactor, SpinEBMFactor

    spins = Block([SpinNode() for _ in range(2)])
    with pytest.raises(ParameterError, match="SpinEBMFactor: weights must be finite"):
        SpinEBMFactor([spins], jnp.array([1.0, bad]))
    cats = Block([CategoricalNode() for _ in range(2)])
    with pytest.raises(ParameterError, match="CategoricalEBMFactor: weights must be finite"):
        CategoricalEBMFactor([cats], jnp.array([[0.0, bad], [1.0, 1.0]]))
    # traced weights (a model built inside jit) are not checked: their values are unknown then
    jax.jit(lambda w: SpinEBMFactor([spins], w).weights)(jnp.array([1.0, bad]))
