"""A sharded run across real processes (jax.distributed, gloo) samples what one process samples."""

import ipaddress
import os
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import distthrml as dt
from distthrml.sharding.launch import launch_local

sys.path.insert(0, str(Path(__file__).parent))
import multiprocess_sampling

SCRIPT = str(Path(__file__).parent / "multiprocess_sampling.py")


@pytest.mark.parametrize("rng", ["per_node", pytest.param("thrml", marks=pytest.mark.slow)])
def test_two_processes_match_one_process(tmp_path, monkeypatch, rng):
    """In both random streams (chosen through DISTTHRML_RNG, which the processes inherit)."""
    monkeypatch.setenv("DISTTHRML_RNG", rng)
    out = tmp_path / "samples.npz"
    launch_local([sys.executable, SCRIPT, str(out)], n_processes=2, devices_per_process=2, timeout=300)
    got = np.load(out)
    assert int(got["processes"]) == 2 and int(got["devices"]) == 4

    program, init, keys, nodes, schedule = multiprocess_sampling.build()
    assert program.rng == rng
    one_process = dt.sample_states(keys, dt.shard_program(program, 4), schedule, init, [], nodes)[0]
    unsharded = jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], nodes))(keys, init)[0]
    np.testing.assert_array_equal(got["samples"], np.asarray(one_process))
    np.testing.assert_array_equal(got["samples"], np.asarray(unsharded))
    assert int(got["halo_bytes"]) == dt.shard_program(program, 4).halo_bytes_per_sweep() > 0


def test_failed_rank_is_reported_and_others_stopped(tmp_path):
    with pytest.raises(RuntimeError, match="rank"):
        launch_local([sys.executable, "-c", "import sys, time, os; r = int(os.environ['DISTTHRML_PROCESS_ID']); "
                      "sys.exit(3) if r == 1 else time.sleep(60)"], n_processes=2, timeout=30)


def test_not_launched_means_single_process(monkeypatch):
    from distthrml.sharding import distributed

    monkeypatch.delenv(distributed.COORDINATOR, raising=False)
    assert distributed.initialize_from_env() is False


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_pinned_ranks_run_on_their_own_cpus():
    script = "import os; print(sorted(os.sched_getaffinity(0)), os.environ['DISTTHRML_CPUS'])"
    done = launch_local([sys.executable, "-c", script], n_processes=2, cpus_per_process=1, timeout=60)
    cpus = sorted(os.sched_getaffinity(0))
    assert [d.stdout.split() for d in done] == [[f"[{cpus[0]}]", str(cpus[0])], [f"[{cpus[1]}]", str(cpus[1])]]
    with pytest.raises(ValueError, match="need"):
        launch_local(["true"], n_processes=len(cpus) + 1, cpus_per_process=1)


def test_a_local_launch_listens_on_loopback_only(tmp_path):
    """The coordinator of `launch_local` (and every other socket rank 0 listens on) binds
    127.0.0.1, not every interface: they are unauthenticated services."""
    out = tmp_path / "listening.txt"
    script = str(Path(__file__).parent / "listening_sockets.py")
    launch_local([sys.executable, script, str(out)], n_processes=2, devices_per_process=1, timeout=300)
    sockets = [line.split() for line in out.read_text().splitlines()]
    assert sockets, "rank 0 reported no listening socket: the coordinator should be one"
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in sockets), sockets
