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
