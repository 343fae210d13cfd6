"""Issue 17: graceful stops resume bit for bit, checkpoint metadata is checked, one trainer per
workdir, disk-full errors stay readable, and divergence stops with a named error."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import yaml

from cluster.cli import main as cli_main
from cluster.train.config import config_from_dict
from cluster.train.run import train, write_summary
from cluster.train.step import TrainingDiverged

from test_train import REPO, assert_trees_equal, load_state, saved_steps, small

LONG = small(train={"steps": 300, "checkpoint_every": 20, "keep_last": 3})
QUIET = lambda *a: None  # noqa: E731


def _cmd(config: pathlib.Path, workdir: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "cluster.cli", "train", str(config), "--workdir", str(workdir), "--no-progress"]


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """An uninterrupted in-process run of `LONG`: its final state, and the config file."""
    d = tmp_path_factory.mktemp("long")
    (d / "c.yaml").write_text(yaml.safe_dump(LONG))
    train(config_from_dict(LONG), d / "full", echo=QUIET)
    return d / "c.yaml", load_state(d / "full", 300)[0]


def _wait_for(predicate, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _stop_at(config, workdir, signum, point: str, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Start `distthrml train`, send `signum` at `point` ('startup', 'ckpt:N' once checkpoint N
    exists, 'saving' while a checkpoint is being written), and return the finished process."""
    proc = subprocess.Popen(_cmd(config, workdir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = workdir / "checkpoints"
    if point == "saving":
        assert _wait_for(lambda: ckpts.is_dir() and any("tmp" in p.name for p in ckpts.iterdir())), "no save seen"
    elif point.startswith("ckpt:"):
        assert _wait_for(lambda: (ckpts / point[5:]).is_dir())
    time.sleep(delay)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check_stopped_and_resume(result, signum, config, workdir, reference, in_process=False, early_ok=False):
    if early_ok and result.returncode in (-signum, 130):
        # the signal beat the interpreter to the handler (its own start-up, before distthrml's
        # code runs): the default action, or Python's KeyboardInterrupt, ended it before any output
        assert not (workdir / "checkpoints").is_dir() or not saved_steps(workdir / "checkpoints"), result.stderr
    else:
        assert result.returncode == 128 + signum, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("distthrml train: stopped by"), result.stderr
    steps = saved_steps(workdir / "checkpoints") if (workdir / "checkpoints").is_dir() else []
    # every saved checkpoint's metadata step names its own state: resuming ends bit-identical
    if in_process:  # the same code as the CLI, without a second start-up
        train(config_from_dict(LONG), workdir, echo=QUIET)
    else:
        resumed = subprocess.run(_cmd(config, workdir), cwd=REPO, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
    assert_trees_equal(load_state(workdir, 300)[0], reference)
    return steps


@pytest.mark.parametrize("signum, point, delay", [
    (signal.SIGTERM, "ckpt:40", 0.013),  # between steps, logging or evaluating
    (signal.SIGINT, "saving", 0.0),  # while a checkpoint is written
])
def test_graceful_stop_resumes_bit_identical(tmp_path, long_reference, signum, point, delay):
    config, reference = long_reference
    result = _stop_at(config, tmp_path / "w", signum, point, delay)
    steps = _check_stopped_and_resume(result, signum, config, tmp_path / "w", reference, in_process=True)
    assert steps and steps[-1] < 300


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_stop_during_startup_exits_cleanly(tmp_path, long_reference, delay):
    config, _ = long_reference
    proc = subprocess.Popen(_cmd(config, tmp_path / "w"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(delay)  # in the interpreter's start-up or the imports of JAX
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    # before the handler exists the default action ends the process (the shell's 143 too); after,
    # the handler waits for a safe point and exits with 143: never a crash or a traceback
    assert proc.returncode in (143, -signal.SIGTERM), (proc.returncode, err)
    assert "Traceback" not in err, err
    if proc.returncode == 143:
        assert err.strip().splitlines()[-1].startswith("distthrml train: stopped by SIGTERM"), err


def test_ctrl_c_during_the_final_evaluation_stops_it(tmp_path):
    """After the last step is saved, the evaluation (a long autocorrelation run and the plots) stops
    on Ctrl-C with 130 (it used to hold the signal and drop it); a rerun evaluates."""
    raw = small(train={"steps": 20, "checkpoint_every": 10}, output={"plots": True, "autocorrelation_sweeps": 20_000})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    workdir = tmp_path / "w"
    proc = subprocess.Popen(_cmd(config, workdir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: (workdir / "checkpoints" / "20").is_dir() or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)  # into the evaluation, which takes seconds more
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "distthrml train: stopped by SIGINT; progress saved at step 20", err
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["stopped_by"] == "SIGINT" and "heldout_pll_trained" not in summary
    assert saved_steps(workdir / "checkpoints")[-1] == 20


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stops_at_many_points_resume_bit_identical(tmp_path, long_reference, signum):
    config, reference = long_reference
    points = [("startup", 0.5), ("startup", 2.0), ("startup", 4.0), ("saving", 0.0), ("saving", 0.002),
              ("ckpt:20", 0.0), ("ckpt:20", 0.05), ("ckpt:60", 0.007), ("ckpt:100", 0.2), ("ckpt:140", 0.11)]
    for i, (point, delay) in enumerate(points):
        workdir = tmp_path / f"w{i}"
        result = _stop_at(config, workdir, signum, point, delay)
        if result.returncode == 0:  # the signal came after the run finished: nothing to test
            continue
        # resumed in this process: the stopped command is what is under test, and a second start-up
        # per point would double the test's time
        _check_stopped_and_resume(result, signum, config, workdir, reference, in_process=True,
                                  early_ok=point == "startup")


# ---- checkpoint metadata (item 4)

@pytest.fixture(scope="module")
def short_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("short")
    train(config_from_dict(small()), d, echo=QUIET)
    return load_state(d, 30)[0]


def _edit_step(meta):
    meta["step"] = 40


def _edit_step_back(meta):
    meta["step"] = 10


def _edit_fingerprint(meta):
    f = meta["fingerprint"]
    meta["fingerprint"] = ("0" if f[0] != "0" else "1") + f[1:]


@pytest.mark.parametrize("edit", [_edit_step, _edit_step_back, _edit_fingerprint])
def test_edited_metadata_falls_back_to_the_previous_checkpoint(tmp_path, short_reference, edit):
    train(config_from_dict(small(train={"steps": 20})), tmp_path, echo=QUIET)
    path = tmp_path / "checkpoints" / "20" / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    lines = []
    with pytest.warns(UserWarning, match=r"skipping checkpoint step 20: .*metadata"):
        summary = train(config_from_dict(small()), tmp_path, echo=lines.append)
    assert any("resumed from step 10" in line for line in lines), lines
    assert summary["steps"] == 30
    assert_trees_equal(load_state(tmp_path, 30)[0], short_reference)


# ---- one trainer per workdir (item 5)

def test_second_trainer_on_a_workdir_is_refused(tmp_path, long_reference, capsys):
    config, reference = long_reference
    workdir = tmp_path / "w"
    first = subprocess.Popen(_cmd(config, workdir), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: (workdir / "checkpoints" / "20").is_dir())
        first.send_signal(signal.SIGSTOP)  # it holds the lock, and cannot finish while the second starts up
        before = {p: p.stat().st_mtime_ns for p in [workdir / "config.yaml"]}
        second = subprocess.run(_cmd(config, workdir), cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"distthrml: error: {workdir} is in use by another run (PID {first.pid}); "
                                         "wait for it or stop it, or use another --workdir"), second.stderr
        assert {p: p.stat().st_mtime_ns for p in before} == before
    finally:
        first.kill()  # SIGKILL: the kernel drops its lock
        first.communicate()
    # the killed run left no lock behind: a new run resumes and ends as the uninterrupted one
    train(config_from_dict(LONG), workdir, echo=QUIET)
    assert_trees_equal(load_state(workdir, 300)[0], reference)


# ---- divergence and strict JSON (item 7)

def test_divergence_stops_with_a_named_error_after_saving_the_last_finite_state(tmp_path):
    # configs bound the learning rate (<= 10), so set an absurd one past validation: the loop's own
    # check must catch what the validator cannot foresee (adam: about +-1e29 a step; energies overflow float32 within a few)
    valid = config_from_dict(small())
    config = dataclasses.replace(valid, optim=dataclasses.replace(valid.optim, learning_rate=1e38))
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+ .*non-finite"):
        train(config, tmp_path, echo=QUIET)
    steps = saved_steps(tmp_path / "checkpoints")
    assert steps
    state, _ = load_state(tmp_path, steps[-1], config)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state["params"]))
    # a rerun resumes from that finite checkpoint and diverges again, with a one-line message
    with pytest.raises(TrainingDiverged) as again:
        train(config, tmp_path, echo=QUIET)
    assert "\n" not in str(again.value)
    assert saved_steps(tmp_path / "checkpoints")[-1] == steps[-1]


def test_summary_json_is_strict():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "summary.json"
        write_summary(path, {"a": float("nan"), "b": float("-inf"), "c": 1.5, "d": "x"})
        assert json.loads(path.read_text()) == {"a": None, "b": None, "c": 1.5, "d": "x"}


# ---- disk full (item 6)

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (we may run as root), unmounted afterwards; skips where mounting is refused."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: pathlib.Path, leave: int) -> None:
    """Fill the file system of `path` up to `leave` free bytes (about)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    os.close(fd)


def _disk_full_run(small_disk, tmp_path, leave: int) -> list[str]:
    raw = small(output={"tensorboard": True}, train={"steps": 20})
    train(config_from_dict(raw), small_disk / "w", echo=QUIET)
    raw["train"]["steps"] = 40
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    _fill(small_disk / "filler", leave)
    result = subprocess.run(_cmd(tmp_path / "c.yaml", small_disk / "w"), cwd=REPO, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 2, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("distthrml")]


# slow: it depends on how many bytes each file takes on a 1 MiB tmpfs, and in a fresh CI clone
# the run once found no error at all (fits or fails elsewhere); kept out of the default run until
# the disk is filled deterministically
@pytest.mark.slow
def test_disk_full_during_a_save_reports_the_checkpoint_error(small_disk, tmp_path):
    # room for the metrics and TensorBoard events, not for a checkpoint (about 80 KB)
    lines = _disk_full_run(small_disk, tmp_path, 40_000)
    assert len(lines) == 1, lines
    assert lines[0].startswith("distthrml: error: saving checkpoint step 30"), lines
    assert "previous checkpoint (step 20) is intact" in lines[0], lines


@pytest.mark.slow
def test_disk_full_at_start_is_one_line(small_disk, tmp_path):
    lines = _disk_full_run(small_disk, tmp_path, 0)
    assert len(lines) == 1 and lines[0].startswith("distthrml: error:"), lines


def test_a_stop_dropped_inside_a_gc_callback_is_raised_at_the_next_safe_point():
    """Python drops an exception raised by a signal handler that runs inside a garbage collector
    callback (JAX has one); the stop must not be lost with it."""
    import gc
    import os

    from cluster.train.stops import STOPS, Stopped

    def deliver_inside_gc(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before this callback returns

    assert STOPS.install()
    gc.callbacks.append(deliver_inside_gc)
    try:
        gc.collect()  # the handler's Stopped is dropped here
        gc.callbacks.remove(deliver_inside_gc)
        with pytest.raises(Stopped) as stop:
            STOPS.check()
        assert stop.value.exit_code == 143
        STOPS.check()  # raised once only
    finally:
        if deliver_inside_gc in gc.callbacks:
            gc.callbacks.remove(deliver_inside_gc)
        STOPS.uninstall()
