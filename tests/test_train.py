"""`distthrml train`: learning, checkpoints (atomic, keep-last-K, corrupt fallback, failed save),
bit-identical resume, config errors, outputs."""

import copy
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from cluster.cli import main as cli_main
from cluster import checkpoint as ck
from cluster.train.config import ConfigError, config_from_dict, load_config
from cluster.train.run import train

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "configs" / "train_digits.yaml").read_text())


def small(**sections) -> dict:
    """The shipped digits config, shortened for tests, with section overrides."""
    raw = copy.deepcopy(BASE)
    raw["train"].update(steps=30, checkpoint_every=10, eval_every=10, keep_last=2)
    raw["output"].update(plots=False, progress=False, tensorboard=False)
    for name, values in sections.items():
        raw[name].update(values)
    return raw


def saved_steps(directory: pathlib.Path) -> list[int]:
    """The finished checkpoints' steps in `directory`; the store is closed again (an open Orbax
    manager left to the garbage collector fires callbacks into a closed event loop)."""
    store = ck.CheckpointStore(directory, 10)
    try:
        return store.steps()
    finally:
        store.close()


def params_of(workdir: pathlib.Path, step: int | None = None) -> dict:
    store = ck.CheckpointStore(workdir / "checkpoints", 10)
    step = store.steps()[-1] if step is None else step
    meta = json.loads((store.step_dir(step) / "meta" / "metadata").read_text())
    store.close()
    return step, meta


def load_state(workdir: pathlib.Path, step: int, config=None):
    # read the raw arrays back with the layout of a fresh run of the same config (default: the
    # checkpoint's own, which must pass validation)
    from cluster.train import data as data_lib, model as m, step as step_lib
    from cluster.train.run import _initial_state, to_host
    import jax

    if config is None:
        meta = json.loads((workdir / "checkpoints" / str(step) / "meta" / "metadata").read_text())
        config = config_from_dict(meta["config"])
    ds = data_lib.load_dataset(config.data)
    arch = m.build_architecture(ds.shape, config.model)
    target = jax.tree.map(to_host, _initial_state(config, arch, step_lib.make_optimizer(config.optim)).tree())
    return ck.read_checkpoint_dir(workdir / "checkpoints" / str(step), target)


def assert_trees_equal(a, b):
    import jax

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_training_improves_heldout_and_writes_outputs(tmp_path):
    raw = small(train={"steps": 60, "checkpoint_every": 20}, output={"plots": True, "tensorboard": True})
    summary = train(config_from_dict(raw), tmp_path, echo=lambda *a: None)
    assert summary["heldout_pll_untrained"] == pytest.approx(np.log(0.5), abs=0.02)
    assert summary["heldout_pll_trained"] > summary["heldout_pll_untrained"] + 0.2
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [40, 60]  # keep_last 2
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 61
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    for png in ("curves.png", "data.png", "samples.png", "autocorrelation.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 60


def test_stop_and_resume_is_bit_identical(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(config_from_dict(small()), full, echo=lambda *a: None)
    # stop at step 17 (a checkpoint is written at exit), then resume the same run to 30
    train(config_from_dict(small(train={"steps": 17})), part, echo=lambda *a: None)
    assert saved_steps(part / "checkpoints") == [10, 17]
    lines = []
    train(config_from_dict(small()), part, echo=lines.append)
    assert any("resumed from step 17" in line for line in lines)
    a, meta_a = load_state(full, 30)
    b, meta_b = load_state(part, 30)
    assert_trees_equal(a, b)
    assert meta_a["checksum"] == meta_b["checksum"]
    assert (meta_b["data_epoch"], meta_b["data_offset"]) == (meta_a["data_epoch"], meta_a["data_offset"])
    # the metrics of the resumed run continue the stopped one without duplicate steps
    steps = [int(r.split(",")[0]) for r in (part / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 31))


def test_corrupt_latest_checkpoint_falls_back_with_warning(tmp_path):
    train(config_from_dict(small(train={"steps": 20})), tmp_path, echo=lambda *a: None)
    good, _ = load_state(tmp_path, 10)
    latest = tmp_path / "checkpoints" / "20"
    # truncate the array data of the latest checkpoint (as a crash of the disk or a copy would)
    for f in (latest / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 200 and "METADATA" not in f.name:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    # and leave an unfinished save behind, as a crash in the middle of a save does
    shutil.copytree(tmp_path / "checkpoints" / "10", tmp_path / "checkpoints" / "30.orbax-checkpoint-tmp-1")
    (tmp_path / "checkpoints" / "30.orbax-checkpoint-tmp-1" / "_CHECKPOINT_METADATA").unlink()
    from cluster.train.run import _initial_state, to_host
    from cluster.train import data as data_lib, model as m, step as step_lib
    import jax

    config = config_from_dict(small(train={"steps": 20}))
    arch = m.build_architecture(data_lib.load_dataset(config.data).shape, config.model)
    target = jax.tree.map(to_host, _initial_state(config, arch, step_lib.make_optimizer(config.optim)).tree())
    store = ck.CheckpointStore(tmp_path / "checkpoints", 2)
    assert store.steps() == [10, 20]
    with pytest.warns(UserWarning, match="skipping checkpoint step 20"):
        state, meta = store.restore_latest(target)
    store.close()
    assert meta["step"] == 10
    assert_trees_equal(state, good)
    assert (tmp_path / "corrupt-checkpoints" / "20-0" / "state").is_dir()  # moved aside, not deleted
    # a run on this workdir resumes from step 10 and writes step 20 again
    lines = []
    train(config_from_dict(small(train={"steps": 20})), tmp_path, echo=lines.append)
    assert any("resumed from step 10" in line for line in lines)
    assert saved_steps(tmp_path / "checkpoints") == [10, 20]


# The injected failure itself makes Orbax's in-flight tensorstore writes report to the event loop
# of the save they belonged to, which the failure has closed: an "unraisable" RuntimeError from
# inside Orbax, expected here and only here.
@pytest.mark.filterwarnings("ignore:Exception ignored:pytest.PytestUnraisableExceptionWarning")
def test_failed_save_keeps_previous_checkpoint(tmp_path):
    raw = small(train={"steps": 10, "checkpoint_every": 5}, sampling={"negative_chains": 512})
    train(config_from_dict(raw), tmp_path, echo=lambda *a: None)
    before, _ = load_state(tmp_path, 10)
    raw["train"]["steps"] = 20
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, hard))  # a real write failure (EFBIG)
    try:
        with pytest.raises(ck.CheckpointError, match=r"step 15 .* failed .*previous checkpoint \(step 10\) is intact"):
            train(config_from_dict(raw), tmp_path, echo=lambda *a: None)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    after, meta = load_state(tmp_path, 10)
    assert_trees_equal(before, after)
    assert saved_steps(tmp_path / "checkpoints")[-1] == 10


def test_workdir_of_another_config_is_refused_unless_forced(tmp_path):
    train(config_from_dict(small(train={"steps": 10})), tmp_path, echo=lambda *a: None)
    other = small(train={"steps": 10}, optim={"learning_rate": 0.01})
    with pytest.raises(ConfigError, match=r"different config \(optim.learning_rate: 0.03 in the workdir, 0.01 now\)"):
        train(config_from_dict(other), tmp_path, echo=lambda *a: None)
    lines = []
    train(config_from_dict(other), tmp_path, force=True, echo=lines.append)
    assert (tmp_path / "replaced-0" / "checkpoints" / "10").is_dir()  # nothing deleted
    assert not any("resumed" in line for line in lines)
    # more steps, another cadence or other outputs are the same run
    train(config_from_dict(small(train={"steps": 12, "checkpoint_every": 3}, optim={"learning_rate": 0.01})), tmp_path,
          echo=lines.append)
    assert any("resumed from step 10" in line for line in lines)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"optim": {"learning_rat": 0.1}}, r"unknown key\(s\) in 'optim': \['learning_rat'\]; 'learning_rat' \(did you mean 'learning_rate'\?\)"),
        ({"trian": {}}, r"unknown section\(s\) \['trian'\]; 'trian' \(did you mean 'train'\?\)"),
        ({"train": {"steps": "ten"}}, r"'train.steps' must be int"),
        ({"train": {"steps": 0}}, r"train.steps must be >= 1"),
        ({"data": {"source": "npz", "path": "/nonexistent/digits.npz"}}, r"dataset file not found: /nonexistent/digits.npz"),
        ({"model": {"graph": "npz", "graph_path": "/nonexistent/g.npz"}}, r"graph file not found: /nonexistent/g.npz"),
    ],
)
def test_config_errors_name_the_key(raw, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        config = config_from_dict(raw)
        train(config, tmp_path, echo=lambda *a: None)


def test_cli_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sampling": {"negative_chain": 8}}))
    assert cli_main(["train", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "in 'sampling': ['negative_chain']" in err and "negative_chains" in err
    assert cli_main(["train", str(tmp_path / "missing.yaml"), "--workdir", str(tmp_path / "w")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_user_npz_dataset(tmp_path):
    rng = np.random.default_rng(0)
    stripes = np.zeros((200, 6, 6), bool)
    for i in range(200):
        stripes[i, :, rng.integers(0, 6)] = True
    np.savez(tmp_path / "stripes.npz", data=stripes)
    raw = small(data={"source": "npz", "path": str(tmp_path / "stripes.npz")}, model={"hidden_rows": 3, "hidden_cols": 3},
                train={"steps": 40, "batch_size": 32})
    summary = train(config_from_dict(raw), tmp_path / "w", echo=lambda *a: None)
    assert summary["n_visible"] == 36 and summary["n_hidden"] == 9
    assert summary["heldout_pll_trained"] > summary["heldout_pll_untrained"]


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
    raw = small(train={"steps": 400, "checkpoint_every": 20, "keep_last": 3})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "cluster.cli", "train", str(tmp_path / "c.yaml")]
    subprocess.run(cmd + ["--workdir", str(tmp_path / "full")], check=True, capture_output=True, cwd=REPO)
    proc = subprocess.Popen(cmd + ["--workdir", str(tmp_path / "killed")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (ckpts / "40").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to save at exit
    proc.wait()
    steps = saved_steps(ckpts)
    assert steps and steps[-1] < 400
    subprocess.run(cmd + ["--workdir", str(tmp_path / "killed")], check=True, capture_output=True, cwd=REPO)
    a, _ = load_state(tmp_path / "full", 400)
    b, _ = load_state(tmp_path / "killed", 400)
    assert_trees_equal(a, b)
