"""DTM runs across processes: SIGKILL during training then rerun gives the uninterrupted run's
parameters bit for bit (through the CLI), and Ray actors (loopback Ray) train the steps to the
same bits as the local launcher. Both start several processes: slow tests."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cluster.dtm.config import config_from_dict
from cluster.dtm.job import train_dtm
from cluster.ray_launch import RayLaunch

from test_dtm import QUIET, REPO, step_state, tiny


def _checksums(workdir: pathlib.Path, T: int) -> list[tuple[int, str]]:
    return [(s, m["checksum"]) for s, m in (step_state(workdir, t) for t in range(1, T + 1))]


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_identical(tmp_path):
    raw = tiny(train={"epochs": 8}, evaluation={"enabled": False})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    train_dtm(config_from_dict(raw), tmp_path / "full", echo=QUIET)
    cmd = [sys.executable, "-m", "cluster.cli", "train", str(config), "--workdir", str(tmp_path / "killed"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "killed" / "steps" / "t1" / "checkpoints" / "18"  # step 1 after 3 of its 8 epochs
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to save at exit
    proc.wait()
    assert marker.exists(), "no checkpoint appeared before the deadline"
    killed_at = step_state(tmp_path / "killed", 1)[0]
    assert killed_at < 48, "the run finished before it was killed"
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"step 1: resumed from iteration {killed_at}" in rerun.stdout
    assert _checksums(tmp_path / "killed", 2) == _checksums(tmp_path / "full", 2)


@pytest.mark.slow
def test_ray_actors_train_the_same_bits_as_the_local_launcher(tmp_path):
    import ray

    config = config_from_dict(tiny(diffusion={"steps": 3}, evaluation={"every": 0}))
    local = train_dtm(config, tmp_path / "local", echo=QUIET)
    launch = RayLaunch(workers=2, cpus_per_worker=1, local_cpus=2, object_store_mb=200)
    remote = train_dtm(config, tmp_path / "ray", echo=QUIET, ray_launch=launch)
    assert not ray.is_initialized()  # the driver ran in its own process
    assert remote["launcher"] == "ray" and local["launcher"] == "local"
    assert _checksums(tmp_path / "ray", 3) == _checksums(tmp_path / "local", 3)
    assert remote["fid"] == local["fid"]
