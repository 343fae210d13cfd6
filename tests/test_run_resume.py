"""Issue 14: `distthrml run --workdir` checkpoints a sampling run; a run killed by SIGKILL resumes on
another number of devices (or Ray workers) and writes the bytes of an uninterrupted run;
samples stream to a lazily readable `states.zarr`; one run per workdir; under Ray a killed
worker's group restarts and resumes; `ray job submit -- distthrml run` end to end."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from cluster.cli import main
from cluster.run.chunks import plan_chunks
from cluster.run.resume import due
from cluster.run.states_file import read_states

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).parent))

# big enough that a chunk takes a good fraction of a second (a kill lands mid-run), small enough
# for the default suite: 50 chunks of 200 sweeps of 96 x 96 spins x 8 chains
RAW = {
    "model": {"kind": "ising2d", "rows": 96, "cols": 96, "beta": 0.42},
    "sampling": {"chains": 8, "warmup": 2000, "samples": 200, "steps_per_sample": 40, "seed": 7},
    # a checkpoint every 2.5 chunks, at fixed points (the default cadence follows the time a save takes)
    "output": {"plots": False, "moments": True, "states": True, "progress": False, "checkpoint_every": 500},
}
DATA_FILES = ("samples.npz", "moments.npz")


def _config(tmp_path: pathlib.Path, raw: dict = RAW) -> pathlib.Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cmd(config, workdir, *flags) -> list[str]:
    return [sys.executable, "-m", "cluster.cli", "run", str(config), "--workdir", str(workdir), *flags]


def _files(folder: pathlib.Path) -> dict[str, bytes]:
    """The bytes of a run's data files, `states.zarr`'s stored chunks included."""
    out = {name: (folder / name).read_bytes() for name in DATA_FILES}
    for part in sorted((folder / "states.zarr").iterdir()):
        out[f"states.zarr/{part.name}"] = part.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run on one device, without checkpoints: its files and summary."""
    d = tmp_path_factory.mktemp("reference")
    # unsharded; not `--devices 1`, which would fix a fresh test process at one JAX device
    assert main(["run", str(_config(d)), "--out", str(d / "out"), "--parts", "1"]) == 0
    return _files(d / "out"), json.loads((d / "out" / "summary.json").read_text())


def _saved(workdir: pathlib.Path) -> list[int]:
    """The steps (chunks done) of the workdir's finished checkpoints ([0] when there is none)."""
    folder = workdir / "checkpoints"
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()] or [0] if folder.is_dir() else [0]


def _kill_after(proc: subprocess.Popen, workdir: pathlib.Path, chunks: int, timeout: float = 300) -> None:
    """SIGKILL `proc` as soon as a checkpoint after at least `chunks` chunks is saved."""
    deadline = time.monotonic() + timeout
    while max(_saved(workdir)) < chunks:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no checkpoint after {chunks} chunks in {workdir}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("parts_before,parts_after", [(4, 2), pytest.param(2, 4, marks=pytest.mark.slow)])
def test_a_killed_run_resumes_on_other_devices_with_the_same_bytes(tmp_path, reference, parts_before, parts_after):
    config, workdir = _config(tmp_path), tmp_path / "work"
    killed = subprocess.Popen(_cmd(config, workdir, "--devices", str(parts_before), "--parts", str(parts_before)),
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _kill_after(killed, workdir, 8)
    assert not (workdir / "summary.json").exists(), "the run ended before the kill: nothing was tested"
    resumed = subprocess.run(_cmd(config, workdir, "--devices", str(parts_after), "--parts", str(parts_after)),
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after chunk" in resumed.stdout
    files, summary = reference
    assert _files(workdir) == files
    again = json.loads((workdir / "summary.json").read_text())
    assert again["resumed_after_chunk"] >= 8 and again["sharding"]["parts"] == parts_after
    assert again["observables"] == summary["observables"]


def test_samples_stream_to_a_lazily_readable_zarr(tmp_path, reference):
    """`states.zarr` holds every chain at every observation, in node order; its last sample is the
    final state of samples.npz, and the whole file matches the run's recorded energies."""
    files, _ = reference
    folder = tmp_path / "ref"
    folder.mkdir()
    for name, data in files.items():  # the reference's bytes, laid out again
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    states = read_states(folder / "states.zarr")
    chains, samples, nodes = states.shape
    assert (chains, samples, nodes) == (8, 200, 96 * 96)
    last = states[:, samples - 1].read().result()  # one slice read, not the array
    saved = np.load(folder / "samples.npz")
    np.testing.assert_array_equal(last.reshape(chains, 96, 96), saved["final_state"])
    spins = states[:, ::50].read().result().reshape(chains, -1, 96, 96).astype(np.int64)
    bonds = spins * np.roll(spins, 1, axis=-1) + spins * np.roll(spins, 1, axis=-2)
    np.testing.assert_allclose(-bonds.sum((-1, -2)) / nodes, saved["energy"][:, ::50], rtol=0, atol=1e-6)


def test_a_second_run_on_a_workdir_is_refused_and_a_finished_one_rewrites_its_files(tmp_path, capsys):
    raw = {**RAW, "sampling": {**RAW["sampling"], "warmup": 4, "samples": 4, "steps_per_sample": 1}}
    config, workdir = _config(tmp_path, raw), tmp_path / "work"
    from cluster.lock import WorkdirLock

    workdir.mkdir()
    lock = WorkdirLock(workdir)
    lock.acquire()
    try:
        assert main(["run", str(config), "--workdir", str(workdir)]) == 2
        assert f"{workdir} is in use by another run (PID {os.getpid()})" in capsys.readouterr().err
    finally:
        lock.release()
    assert main(["run", str(config), "--workdir", str(workdir)]) == 0
    first = _files(workdir)
    (workdir / "samples.npz").unlink()
    assert main(["run", str(config), "--workdir", str(workdir)]) == 0  # resumes after the last chunk
    assert "resumed after chunk" in capsys.readouterr().out
    assert _files(workdir) == first


def test_checkpoints_of_another_run_are_refused(tmp_path, capsys):
    raw = {**RAW, "sampling": {**RAW["sampling"], "warmup": 4, "samples": 4, "steps_per_sample": 1}}
    workdir = tmp_path / "work"
    assert main(["run", str(_config(tmp_path, raw)), "--workdir", str(workdir)]) == 0
    other = {**raw, "model": {**raw["model"], "beta": 0.3}}
    assert main(["run", str(_config(tmp_path, other)), "--workdir", str(workdir)]) == 2
    assert "holds checkpoints of another run (model.beta: 0.42 in the workdir, 0.3 now)" in capsys.readouterr().err


def test_checkpoint_cadence():
    chunks = plan_chunks(100, 20, 5)  # 40 chunks of 5 sweeps
    assert [c.sweeps for c in chunks] == [5] * 40
    every_30 = [c for c in range(len(chunks)) if due(chunks, c, 30)]
    assert every_30 == [5, 11, 17, 23, 29, 35, 39]  # after sweeps 30, 60, ..., 180, and the last chunk
    # by time: a save that took 0.1 s waits for 2 s of sampling (5%); the first chunk saves
    assert due(chunks, 0, None, sampled_s=0.01, last_save_s=0.0)
    assert not due(chunks, 3, None, sampled_s=1.9, last_save_s=0.1)
    assert due(chunks, 3, None, sampled_s=2.0, last_save_s=0.1)
    assert due(chunks, 39, None, sampled_s=0.0, last_save_s=10.0)  # the last chunk always


# ---- under Ray ---------------------------------------------------------------------------------

# unbuffered: the test reads the worker PIDs from the output while the run goes on
RAY_ENV = {**{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RAY_ADDRESS")}, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_ray_run_survives_sigkill_of_a_worker_then_of_its_command_and_resumes_locally(tmp_path, reference):
    """Two Ray workers sample 2-way sharded. SIGKILL of rank 1 after a checkpoint restarts the group,
    which resumes from it; SIGKILL of the command itself later takes its Ray driver, instance and
    workers down with it (nothing runs on in the workdir); the checkpoints of the 2-process run then
    resume in one local process, which ends with the reference's bytes."""
    import psutil

    config, workdir = _config(tmp_path), tmp_path / "work"
    proc = subprocess.Popen(_cmd(config, workdir, "--launcher", "ray", "--workers", "2"), cwd=REPO, env=RAY_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        os.kill(_worker_pid(output, rank=1, workdir=workdir, chunks=6), signal.SIGKILL)
        deadline = time.monotonic() + 600
        while not any("resumed after chunk" in line for line in output):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(output)[-4000:]
            time.sleep(0.05)
        resumed_at = max(_saved(workdir))
        _wait_until(lambda: max(_saved(workdir)) > resumed_at, "".join(output))  # the restarted group saved
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (workdir / "summary.json").exists(), "the run ended before the kill: nothing was tested"
    _wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family),
                f"left running: {[p.pid for p in family if p.is_running()]}")
    local = subprocess.run(_cmd(config, workdir, "--devices", "1"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr
    assert "resumed after chunk" in local.stdout
    files, _ = reference
    assert _files(workdir) == files


def _wait_until(predicate, message: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message[-4000:]
        time.sleep(0.1)


def _worker_pid(output: list[str], rank: int, workdir: pathlib.Path, chunks: int, timeout: float = 600) -> int:
    """The PID of Ray Train worker `rank` (from the start-up lines Ray prints), once a checkpoint
    after at least `chunks` chunks is saved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(output):  # "... - (ip=127.0.0.1, pid=7061) world_rank=1, local_rank=1, ..."
            if f") world_rank={rank}," in line and max(_saved(workdir)) >= chunks:
                return int(line.split("(ip=")[1].split("pid=")[1].split(")")[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker {rank} or no checkpoint after {chunks} chunks:\n{''.join(output)[-3000:]}")
