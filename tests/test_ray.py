"""Ray: a Ray Train (`JaxTrainer`) launch of 2 processes x 2 devices samples what 1 process x 4
devices samples, with every socket of the local instance on loopback; two-worker training
survives a SIGKILLed worker of either rank (FailureConfig restart, resume from the newest intact
checkpoint) bit-identically; `ray job submit` against a real local head."""

import copy
import ipaddress
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
import yaml

from cluster.devices import device_mesh
from cluster.ray_launch import LOOPBACK_ONLY, RayLaunch, launch_training
from cluster.ray_sample import LatticeJob, launch_sampling, sample_sharded
from cluster.train.config import config_from_dict
from cluster.train.run import train
from distthrml.sharding.launch import free_port

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from listening_sockets import ListenersOf  # noqa: E402
from test_train import assert_trees_equal, load_state, small  # noqa: E402

LAUNCH = dict(cpus_per_worker=1, local_cpus=2, object_store_mb=200)


def _no_ray_left():
    import ray

    assert not ray.is_initialized()


def test_ray_two_processes_by_two_devices_match_one_process_by_four(tmp_path):
    job = LatticeJob()
    out = launch_sampling(job, RayLaunch(workers=2, devices_per_worker=2, **LAUNCH), str(tmp_path / "ray"))
    _no_ray_left()
    assert (out["processes"], out["devices"]) == (2, 4)
    one_process = sample_sharded(job, device_mesh(jax.devices()[:4]))
    np.testing.assert_array_equal(out["samples"], one_process)


def test_a_local_ray_run_listens_on_loopback_only(tmp_path):
    """Every socket that the local Ray instance, its workers and the `jax.distributed` run over
    them listen on during a two-worker training run is on 127.0.0.1: they are services nobody
    else should reach."""
    config = config_from_dict(small(train={"steps": 4, "checkpoint_every": 2}, sharding={"parts": 2}))
    with ListenersOf(os.getpid()) as listeners:
        result = launch_training(config, tmp_path / "w", RayLaunch(workers=2, **LAUNCH))
    assert result.error is None, result.error
    names = {name for name, _, _ in listeners.found}
    # the poll saw the instance's own servers (else the check below would pass vacuously)
    assert {"gcs_server", "raylet"} <= names, listeners.found
    exposed = sorted(f for f in listeners.found if not ipaddress.ip_address(f[1]).is_loopback)
    assert not exposed, exposed


@pytest.mark.slow
def test_ray_train_survives_sigkill_of_either_worker(tmp_path):
    """Two workers train a 2-way sharded model. SIGKILL of rank 1 right after a checkpoint (before
    Ray Train has registered it), then of the restarted group's rank 0 after a later one: each time
    the group restarts and resumes from the workdir's newer checkpoint, and the run ends with the
    parameters of an uninterrupted local run, bit for bit."""
    raw = small(train={"steps": 120, "checkpoint_every": 20, "keep_last": 3}, sharding={"parts": 2})
    config = config_from_dict(raw)
    train(config, tmp_path / "local", echo=lambda *a: None)
    workdir = tmp_path / "ray-run"
    killed = []  # (rank, pid)

    def kill(rank: int, after_step: int, not_pid: int | None) -> bool:
        deadline = time.monotonic() + 400
        pid_file = workdir / f"ray-worker-{rank}.pid"
        while time.monotonic() < deadline:
            if (workdir / "checkpoints" / str(after_step)).exists() and pid_file.exists():
                pid = int(pid_file.read_text())
                if pid != not_pid:  # a worker of the current group
                    os.kill(pid, signal.SIGKILL)
                    killed.append((rank, pid))
                    return True
            time.sleep(0.02)
        return False

    def killer():
        first_rank0 = None
        if kill(1, 40, None):
            first_rank0 = int((workdir / "ray-worker-0.pid").read_text())
            kill(0, 80, first_rank0)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = launch_training(config, workdir, RayLaunch(workers=2, max_failures=2, **LAUNCH))
    thread.join()
    _no_ray_left()
    assert [rank for rank, _ in killed] == [1, 0], killed
    assert result.error is None and result.metrics["step"] == 120, result.error
    # the restarted workers are other processes, and the groups resumed rather than starting over
    for rank, pid in killed:
        assert int((workdir / f"ray-worker-{rank}.pid").read_text()) != pid
    steps = [int(r.split(",")[0]) for r in (workdir / "metrics.csv").read_text().splitlines()[1:]]
    assert steps.count(1) == 1, "a restarted group started over from step 0"
    a, _ = load_state(tmp_path / "local", 120)
    b, _ = load_state(workdir, 120)
    assert_trees_equal(a, b)


# the CLIs of this interpreter's environment, also when its bin/ is not on PATH
RAY = str(pathlib.Path(sys.executable).parent / "ray")
DISTTHRML = str(pathlib.Path(sys.executable).parent / "distthrml")


# a head on loopback only (see cluster.ray_launch.LOOPBACK_ONLY), with token authentication; the
# token is the test's own, not ~/.ray/auth_token, which other Ray instances on the machine share
HEAD_ENV = {**LOOPBACK_ONLY, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@pytest.fixture
def ray_head(tmp_path, monkeypatch):
    """A real `ray start --head` on 127.0.0.1, stopped (its process group only) afterwards."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):  # this process's JobSubmissionClient
        monkeypatch.setenv(name, HEAD_ENV[name])
    port, dashboard = free_port(), free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--include-dashboard", "true",
         "--num-cpus", "2", "--object-store-memory", str(200 * 2**20), "--disable-usage-stats"],
        stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "XLA_FLAGS")}, **HEAD_ENV},
    )
    from ray.job_submission import JobSubmissionClient

    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 180
    client, last = None, None
    while time.monotonic() < deadline and client is None:
        try:
            # the token as a header: Ray caches its token loader per process, and an earlier
            # test's Ray in this process may have cached none
            client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {HEAD_ENV['RAY_AUTH_TOKEN']}"})
        except Exception as err:  # the dashboard is still starting
            last = err
            time.sleep(1)
    try:
        assert client is not None, f"{last!r}\n{(tmp_path / 'head.log').read_text()}"
        yield address, client
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.slow
def test_ray_job_submit_to_a_local_head(tmp_path, ray_head):
    """`distthrml train` and a checkpointed `distthrml run` over 2 workers, submitted as Ray jobs."""
    address, client = ray_head
    config = tmp_path / "train.yaml"
    raw = copy.deepcopy(yaml.safe_load((REPO / "configs" / "train_digits.yaml").read_text()))
    raw["train"]["steps"] = 60
    config.write_text(yaml.safe_dump(raw))
    workdir = tmp_path / "job"
    env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "XLA_FLAGS")}, **HEAD_ENV}
    subprocess.run(
        [RAY, "job", "submit", "--address", address, "--submission-id", "distthrml-test", "--no-wait", "--",
         DISTTHRML, "train", str(config), "--workdir", str(workdir)],
        check=True, capture_output=True, env=env,
    )
    # a checkpointed sampling run, submitted beside it
    run_config = tmp_path / "run.yaml"
    run_config.write_text(yaml.safe_dump({"model": {"kind": "ising2d", "rows": 32, "cols": 32, "beta": 0.3},
                                          "sampling": {"chains": 4, "warmup": 20, "samples": 10, "steps_per_sample": 2},
                                          "output": {"plots": False, "progress": False}}))
    subprocess.run(
        [RAY, "job", "submit", "--address", address, "--submission-id", "distthrml-run-test", "--no-wait", "--",
         DISTTHRML, "run", str(run_config), "--workdir", str(tmp_path / "run"), "--workers", "2"],
        check=True, capture_output=True, env=env,
    )
    for job in ("distthrml-test", "distthrml-run-test"):
        deadline = time.monotonic() + 400
        status = None
        while time.monotonic() < deadline:
            status = str(client.get_job_status(job))
            if status.endswith(("SUCCEEDED", "FAILED", "STOPPED")):
                break
            time.sleep(2)
        assert status.endswith("SUCCEEDED"), client.get_job_logs(job)[-3000:]
    run_logs = client.get_job_logs("distthrml-run-test")
    assert "finished on 2 Ray worker(s)" in run_logs
    run_summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert run_summary["processes"] == 2 and (tmp_path / "run" / "checkpoints").is_dir()
    logs = client.get_job_logs("distthrml-test")
    assert "ray train finished" in logs
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["heldout_pll_trained"] > summary["heldout_pll_untrained"]
    assert (workdir / "checkpoints" / "60").is_dir() and (workdir / "metrics.csv").is_file()
    assert (workdir / "ray" / "distthrml-train").is_dir()  # Ray Train's records of the run


@pytest.mark.slow
def test_ray_two_workers_train_a_four_way_sharded_model(tmp_path):
    """`distthrml train --launcher ray --workers 2 --devices-per-worker 2` with sharding.parts 4:
    both workers run the sharded step, the run finishes and writes its outputs."""
    raw = yaml.safe_load(pathlib.Path("configs/train_digits.yaml").read_text())
    raw["train"].update(steps=20, checkpoint_every=10, eval_every=10)
    raw["sharding"]["parts"] = 4
    config = tmp_path / "train4.yaml"
    config.write_text(yaml.safe_dump(raw))
    workdir = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RAY_ADDRESS")}
    done = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "train", str(config), "--workdir", str(workdir), "--launcher", "ray",
         "--workers", "2", "--devices-per-worker", "2"],
        env=env, capture_output=True, text=True, timeout=600, cwd=pathlib.Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray train finished" in done.stdout + done.stderr
    rows = (workdir / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1 and (workdir / "checkpoints").is_dir()
