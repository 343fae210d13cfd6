"""`distthrml run`: the main job end to end on small models of every kind, its determinism
(sharded == unsharded), and its errors (raised before compiling, never clobbering old files)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from cluster.cli import main
from cluster.config_file import ConfigError
from cluster.physics import onsager_energy_per_spin
from cluster.run.chunks import plan_chunks
from cluster.run.config import load_run_config
from cluster.run.job import run_sampling
from cluster.run.stream import KERNELS

# warmup a multiple of the chunk sweeps: one compiled schedule per run
SAMPLING = "sampling: {chains: 4, warmup: 90, samples: 20, steps_per_sample: 3, seed: 1}\n"
EDGES = "# u v J\n0 1 1.0\n1 2 0.5\n2 3 1.5\n3 0 1.0\n0 2 0.7\n3 4 1.0\n"


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(tmp_path, model, sharding="{parts: 2}", output="", extra="", sampling=SAMPLING):
    out = tmp_path / "out"
    config = _write(tmp_path, f"model: {model}\n{sampling}sharding: {sharding}\noutput: {{dir: {out}{output}}}\n{extra}")
    assert main(["run", str(config)]) == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("kind", ["ising2d", "potts2d"])
def test_lattice_runs(tmp_path, kind):
    out, summary = _run(tmp_path, f"{{kind: {kind}, rows: 32, cols: 32, beta: 0.25}}", output=", moments: true")
    data = np.load(out / "samples.npz")
    assert data["energy"].shape == (4, 20) and data["final_state"].shape == (4, 32, 32)
    assert data["sweep"][0] == 93 and data["sweep"][-1] == 150 == summary["sweeps"]
    assert data["snapshots"].shape[1:] == (32, 32)
    assert (out / "run.png").stat().st_size > 10_000
    moments = np.load(out / "moments.npz")
    assert moments["n_observations"] == 4 * 20
    sh = summary["sharding"]
    assert sh["parts"] == 2 and sh["halo_bytes_per_sweep"] == sh["executed_halo_bytes_per_sweep"] > 0
    assert not any(p.name.startswith(".staging") for p in out.iterdir())
    # the model block holds the keys of the kind only
    own = {"ising2d": {"field"}, "potts2d": {"categories"}}[kind]
    assert set(summary["model"]) == {"kind", "rows", "cols", "beta", "coupling"} | own
    if kind == "ising2d":
        assert moments["mean_spin"].shape == (32, 32) and set(np.unique(data["final_state"])) <= {-1, 1}
        # 32x32 at beta=0.25 is far from criticality: finite-size error is far below 0.02
        assert abs(summary["energy_per_site"] - onsager_energy_per_spin(0.25)) < 0.02
        assert summary["observables"]["energy_minus_onsager_in_stderr"] is not None
    else:
        assert moments["category_frequency"].shape == (32, 32, 3)
        assert np.allclose(moments["category_frequency"].sum(-1), 1.0)
        assert 1 / 3 <= summary["order_parameter"] <= 1


@pytest.mark.parametrize(
    "model",
    ["{kind: pegasus, m: 2, beta: 0.2}", "{kind: random_regular, n: 200, degree: 3, beta: 0.3}", "{kind: edge_list, path: g.txt, weights: 2}"],
)
def test_graph_runs(tmp_path, model):
    (tmp_path / "g.txt").write_text(EDGES)  # relative to the config file's folder
    out, summary = _run(tmp_path, model, output=", moments: true")
    data = np.load(out / "samples.npz")
    assert data["final_state"].shape == (4, summary["nodes"]) and summary["colors"] >= 2
    assert summary["sharding"]["halo_bytes_per_sweep"] == summary["sharding"]["executed_halo_bytes_per_sweep"]
    assert np.load(out / "moments.npz")["edge_correlation"].shape == (summary["edges"],)
    assert (out / "run.png").is_file() and -5 < summary["energy_per_site"] < 5
    if "edge_list" in model:
        assert summary["nodes"] == 5 and summary["edges"] == 6
        assert set(summary["model"]) == {"kind", "path", "weights", "beta", "coupling", "field"}


@pytest.mark.parametrize(
    "sampling",
    [
        "sampling: {chains: 4, warmup: 90, samples: 20, steps_per_sample: 3, seed: 1, rng: per_node}\n",
        # 32 chains per device of the chains axis: the multispin stream's groups stay whole
        "sampling: {chains: 64, warmup: 90, samples: 20, steps_per_sample: 3, seed: 1, rng: multispin}\n",
    ],
)
def test_sharded_equals_unsharded(tmp_path, sampling):
    model = "{kind: ising2d, rows: 16, cols: 16, beta: 0.4}"
    runs = {}
    for sharding in ("{parts: 1}", "{parts: 4, method: random}", "{parts: 2, chains_axis: 2}"):
        directory = tmp_path / sharding.strip("{}").replace(" ", "").replace(":", "").replace(",", "_")
        directory.mkdir()
        out, summary = _run(directory, model, sharding=sharding, output=", moments: true", sampling=sampling)
        assert summary["rng"] == ("multispin" if "multispin" in sampling else "per_node")
        runs[sharding] = (np.load(out / "samples.npz"), np.load(out / "moments.npz"), summary)
    (ref_s, ref_m, ref_summary), *others = runs.values()
    for samples, moments, summary in others:
        for key in ref_s.files:
            np.testing.assert_array_equal(samples[key], ref_s[key], err_msg=key)
        for key in ref_m.files:
            np.testing.assert_array_equal(moments[key], ref_m[key], err_msg=key)
        assert summary["observables"] == ref_summary["observables"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_devices_auto_times_one_chunk_and_keeps_the_faster(tmp_path):
    """`devices: auto` (the default): one device per core; a chunk is timed unsharded and sharded
    over them, and whichever runs is faster; the files are those of the unsharded run."""
    cores = len(os.sched_getaffinity(0))
    model = "{kind: ising2d, rows: 128, cols: 128, beta: 0.3}"
    sampling = "sampling: {chains: 16, warmup: 12, samples: 4, steps_per_sample: 3, seed: 2}\n"
    runs = {}
    for name, sharding in (("auto", "{method: metis}"), ("one", "{parts: 1}")):
        out = tmp_path / name / "out"
        config = _write(tmp_path, f"model: {model}\n{sampling}sharding: {sharding}\noutput: {{dir: {out}, plots: false}}\n", f"{name}.yaml")
        assert main(["run", str(config)]) == 0
        runs[name] = (np.load(out / "samples.npz"), json.loads((out / "summary.json").read_text()))
    summary = runs["auto"][1]
    assert summary["cores"] == cores and summary["devices_available"] >= cores
    timed = summary["sharding"]["timed"]
    assert timed["parts"] == [1, cores] and len(timed["seconds_per_chunk"]) == 2
    assert summary["sharding"]["parts"] == timed["parts"][int(np.argmin(timed["seconds_per_chunk"]))]
    for key in runs["one"][0].files:
        np.testing.assert_array_equal(runs["auto"][0][key], runs["one"][0][key], err_msg=key)


def test_stream_is_chosen_and_reported(tmp_path):
    """`rng: auto` runs the multispin kernel where it qualifies (a uniform lattice, chains whole
    per device) and the per-node stream elsewhere, and says which in summary.json; `rng:
    multispin` on a model it cannot sample is a config error naming the reason."""
    cases = [
        ("{kind: ising2d, rows: 8, cols: 8}", "{parts: 1}", "multispin"),
        ("{kind: ising2d, rows: 8, cols: 8, field: 0.2}", "{parts: 1}", "multispin"),
        ("{kind: potts2d, rows: 8, cols: 8, categories: 3}", "{parts: 1}", "per_node"),
        ("{kind: ising2d, rows: 8, cols: 8}", "{parts: 1, chains_axis: 2}", "per_node"),  # 2 chains per device
    ]
    for i, (model, sharding, stream) in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        _, summary = _run(tmp_path / str(i), model, sharding=sharding, output=", plots: false")
        assert (summary["rng"], summary["kernel"]) == (stream, KERNELS[stream])
    (tmp_path / "bad").mkdir()
    config = _write(tmp_path / "bad", f"model: {{kind: potts2d, rows: 8, cols: 8}}\nsampling: {{chains: 4, rng: multispin}}\noutput: {{dir: {tmp_path / 'bad' / 'out'}}}\n")
    with pytest.raises(ConfigError, match="multispin cannot sample this model: .*spin programs only"):
        run_sampling(load_run_config(config), echo=lambda _: None)


def test_potts_sharded_equals_unsharded(tmp_path):
    model = "{kind: potts2d, rows: 8, cols: 12, categories: 4, beta: 1.0}"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, _ = _run(tmp_path / "a", model, sharding="{parts: 1}")
    b, _ = _run(tmp_path / "b", model, sharding="{parts: 3, method: contiguous}")
    for key in ("final_state", "energy", "order", "snapshots"):
        np.testing.assert_array_equal(np.load(a / "samples.npz")[key], np.load(b / "samples.npz")[key])


def test_cli_emulates_devices_in_a_fresh_process(tmp_path):
    out = tmp_path / "out"
    config = _write(tmp_path, f"model: {{kind: ising2d, rows: 8, cols: 8}}\n{SAMPLING}output: {{dir: {out}, plots: false}}\n")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the job must emulate devices itself
    done = subprocess.run([sys.executable, "-m", "cluster.cli", "run", str(config), "--devices", "3"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"] == 3 and summary["sharding"]["parts"] == 3 and summary["platform"] == "cpu"
    assert "flips/ns" in done.stdout and "energy/site" in done.stdout and "Onsager" in done.stdout


def test_plan_chunks_covers_the_schedule():
    for warmup, samples, steps in [(100, 20, 3), (0, 7, 1), (5, 1, 10), (300, 100, 5), (13, 41, 2)]:
        chunks = plan_chunks(warmup, samples, steps)
        assert sum(c.sweeps for c in chunks if c.warmup) == warmup
        assert sum(c.schedule.n_samples for c in chunks if not c.warmup) == samples
        assert sum(c.sweeps for c in chunks if not c.warmup) == samples * steps
        assert len({c.schedule for c in chunks}) <= 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {kind: ising2d, rowz: 8}", "unknown key(s) in 'model': ['rowz']; 'rowz' (did you mean 'rows'?)"),
        ("modle: {}", "unknown section(s) ['modle']; 'modle' (did you mean 'model'?)"),
        ("model: {rows: 7}", "must be even"),
        ("sampling: {chains: two}", "'sampling.chains' must be int"),
        ("model: {beta: hot}", "'model.beta' must be float"),
        ("output: {plots: 1}", "'output.plots' must be bool"),
        ("model: {kind: xy}", "model.kind must be"),
        ("model: {kind: pegasos}", "(did you mean 'pegasus'?)"),
        ("model: {kind: ising2d, m: 4}", "'model.m' does not apply to model.kind 'ising2d'"),
        ("model: {kind: edge_list}", "model.path (the edge-list file) is required"),
        ("model: {kind: edge_list, path: nowhere.txt}", "edge-list file not found"),
        ("model: {kind: random_regular, n: 5, degree: 3}", "n * degree even"),
        ("model: {kind: potts2d, field: 0.5}", "model.field is not supported for potts2d"),
        ("sharding: {method: metsi}", "(did you mean 'metis'?)"),
        ("sharding: {parts: 0}", "sharding.parts must be >= 1"),
        ("sampling: {chains: 3}\nsharding: {chains_axis: 2}", "sampling.chains (3) must be divisible by sharding.chains_axis (2)"),
        ("devices: 2\nsharding: {parts: 4}", "= 4 devices, but only 2 are available"),
        ("devices: 0", "devices must be >= 1"),
        ("[1, 2]", "the top level must be a mapping"),
        ("model: [", "not valid YAML"),
    ],
)
def test_config_errors(tmp_path, capsys, text, message):
    config = _write(tmp_path, text)
    assert main(["run", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_edge_list_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="edge-list file not found: .*missing.txt"):
        load_run_config(_write(tmp_path, "model: {kind: edge_list, path: missing.txt}"))


@pytest.fixture
def no_compile(monkeypatch):
    """Fail loudly if a test's run gets as far as compiling."""
    from cluster.run.engine import Engine

    def refuse(*args, **kwargs):
        raise AssertionError("compiled before the error was raised")

    monkeypatch.setattr(Engine, "compile", refuse)


@pytest.mark.parametrize(
    "model, edges, sharding, message",
    [
        ("{kind: edge_list, path: g.txt}", "0 1\n1 1\n", "{parts: 1}", "has 1 self loop(s), the first at node 1"),
        ("{kind: edge_list, path: g.txt, weights: 2}", "0 1 1.0\n1 2\n", "{parts: 1}", "column 2 of edge list"),
        ("{kind: edge_list, path: g.txt, weights: 2}", "0 1 x\n", "{parts: 1}", "column 2 of edge list"),
        ("{kind: edge_list, path: g.txt}", "0 a\n", "{parts: 1}", "could not read edge list"),
        ("{kind: ising2d, rows: 2, cols: 2}", None, "{parts: 8}", "sharding.parts (8) is more than the model's 4 nodes"),
        ("{kind: ising2d, rows: 4, cols: 4}", None, "{parts: 16}", "= 16 devices, but only 8 are available"),
    ],
)
def test_errors_before_compiling_keep_old_outputs(tmp_path, capsys, no_compile, model, edges, sharding, message):
    if edges is not None:
        (tmp_path / "g.txt").write_text(edges)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")
    config = _write(tmp_path, f"model: {model}\n{SAMPLING}sharding: {sharding}\noutput: {{dir: {out}}}\n")
    assert main(["run", str(config)]) == 2
    assert message in capsys.readouterr().err
    assert (out / "summary.json").read_text() == "old" and sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_failure_while_writing_keeps_old_outputs(tmp_path, monkeypatch):
    import cluster.run.job as run_module

    def broken(*args, **kwargs):
        raise ValueError("plotting failed")

    monkeypatch.setattr(run_module, "plot_run", broken)
    out = tmp_path / "out"
    out.mkdir()
    (out / "samples.npz").write_bytes(b"old")
    config = _write(tmp_path, f"model: {{kind: ising2d, rows: 8, cols: 8}}\n{SAMPLING}output: {{dir: {out}}}\n")
    assert main(["run", str(config)]) == 2
    assert (out / "samples.npz").read_bytes() == b"old" and sorted(p.name for p in out.iterdir()) == ["samples.npz"]


def test_output_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    config = _write(tmp_path, f"output: {{dir: {tmp_path / 'taken'}}}")
    assert main(["run", str(config)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quickstart", "pegasus", "random_regular", "edge_list", "potts"])
def test_shipped_configs_are_valid(name):
    config = load_run_config(pathlib.Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert config.output.dir.startswith("out/")


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "cluster.cli", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "run" in out.stdout


def test_command_line_overrides_are_validated(tmp_path, capsys, no_compile):
    config = _write(tmp_path, f"model: {{kind: ising2d, rows: 8, cols: 8}}\noutput: {{dir: {tmp_path / 'out'}}}\n")
    assert main(["run", str(config), "--parts", "16"]) == 2
    assert "= 16 devices, but only 8 are available" in capsys.readouterr().err
    assert main(["run", str(config), "--devices", "-1"]) == 2
    assert "devices must be >= 1" in capsys.readouterr().err
