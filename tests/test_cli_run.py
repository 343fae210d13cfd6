"""`distthrml run`: the main job end to end on a small lattice, and its config errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from distthrml.cli import main
from distthrml.physics import onsager_energy_per_spin

SMALL = """
model: {kind: %s, rows: 32, cols: 32, beta: 0.25}
sampling: {chains: 4, warmup: 100, samples: 20, steps_per_sample: 3, seed: 1}
output: {dir: %s, plots: true}
"""


@pytest.mark.parametrize("kind", ["ising2d", "potts2d"])
def test_run_writes_outputs(tmp_path, kind):
    config = tmp_path / "c.yaml"
    config.write_text(SMALL % (kind, tmp_path / "out"))
    assert main(["run", str(config)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    data = np.load(tmp_path / "out" / "samples.npz")
    assert data["energy"].shape == (4, 20) and data["final_state"].shape == (4, 32, 32)
    assert (tmp_path / "out" / "run.png").stat().st_size > 10_000
    if kind == "ising2d":
        # 32x32 at beta=0.25 is far from criticality: finite-size error is far below 0.02
        assert abs(summary["energy_per_site"] - onsager_energy_per_spin(0.25)) < 0.02


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {kind: ising2d, rowz: 8}", "unknown key(s) in 'model': ['rowz']"),
        ("modle: {}", "unknown section(s) ['modle']"),
        ("model: {rows: 7}", "must be even"),
        ("sampling: {chains: two}", "'sampling.chains' must be int"),
        ("model: {kind: xy}", "model.kind must be"),
    ],
)
def test_config_errors(tmp_path, capsys, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    assert main(["run", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "distthrml.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout
