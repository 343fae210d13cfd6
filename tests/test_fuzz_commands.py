"""Issue 17 fuzz, end to end: seeded random bad configs and bad input files fed to the commands
themselves (`distthrml run`, `train`, `emulate`, through `cluster.cli.main` as the console
script calls it). Every case must end, within a time bound, either in exit status 2 with one
line `distthrml: error: ...` naming what is wrong, or in exit status 0 with outputs that are
strict JSON and finite arrays; never in a traceback, a hang or a NaN.

Each case starts from a tiny valid config of one command (so that valid mutations run in
seconds) and applies 1-3 mutations: a key set to a bad value (wrong type, huge, negative, zero,
NaN, inf, empty), a key deleted or misspelled, a section replaced, or the input file the config
names (an edge list, a graph or data npz) replaced by a damaged one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import pathlib
import random
import signal

import numpy as np
import pytest
import yaml

from cluster.cli import main

NUMBERS = [-1, 0, 1, 3, 2.5, 0.9999, 1e-40, 1e300, -1e300, math.nan, math.inf, -math.inf, 2**64, 100_000, 10**9]
OTHERS = [None, "x", "", [1], {"a": 1}, True]
# keys that only set how long a run works: a huge value there is a legitimately long run, not bad input
DURATION_KEYS = {"warmup", "samples", "steps_per_sample", "steps", "negative_samples", "positive_samples",
                 "negative_steps_per_sample", "positive_steps_per_sample"}
# seconds a case may take: valid tiny runs take a few, and every refusal happens before compiling
TIME_BOUND_S = 120


def _run_base(tmp: pathlib.Path) -> dict:
    return {
        "devices": "auto",
        "model": {"kind": "ising2d", "rows": 8, "cols": 8, "beta": 0.3, "coupling": 1.0, "field": 0.0},
        "sampling": {"chains": 2, "warmup": 4, "samples": 3, "steps_per_sample": 1, "seed": 0},
        "sharding": {"method": "metis", "seed": 0, "chains_axis": 1},
        "output": {"dir": str(tmp / "out"), "plots": False, "samples": True, "moments": True, "snapshots": 2,
                   "progress": False},
    }


RUN_MODELS = [
    {"kind": "ising2d", "rows": 8, "cols": 8, "beta": 0.3, "coupling": 1.0, "field": 0.0},
    {"kind": "potts2d", "rows": 8, "cols": 8, "beta": 0.5, "coupling": 1.0, "categories": 3},
    {"kind": "pegasus", "m": 2, "beta": 0.3, "coupling": -1.0, "field": 0.1},
    {"kind": "random_regular", "n": 20, "degree": 3, "seed": 1, "beta": 0.3, "coupling": 1.0, "field": 0.0},
    {"kind": "edge_list", "path": "edges.txt", "weights": 2, "beta": 0.3, "coupling": 1.0, "field": 0.0},
]


def _train_base(tmp: pathlib.Path) -> dict:
    return {
        "data": {"source": "digits", "threshold": 0.5, "holdout_fraction": 0.2, "seed": 0},
        "model": {"graph": "local", "hidden_rows": 2, "hidden_cols": 2, "window": 1.5, "visible_edges": True,
                  "beta": 1.0, "init_scale": 0.01},
        "sampling": {"negative_chains": 4, "negative_samples": 2, "negative_steps_per_sample": 1,
                     "positive_samples": 1, "positive_steps_per_sample": 1},
        "optim": {"optimizer": "adam", "learning_rate": 0.03},
        "train": {"steps": 2, "batch_size": 8, "seed": 0, "checkpoint_every": 1, "keep_last": 2, "eval_every": 1},
        "sharding": {"parts": 1},
        "output": {"plots": False, "tensorboard": False, "progress": False, "autocorrelation_sweeps": 4},
    }


def _emulate_base(tmp: pathlib.Path) -> dict:
    return {
        "model": {"kind": "ising2d", "rows": 8, "cols": 8, "beta": 0.3},
        "chips": {"capacity": 20, "time_per_color_step": 1e-8},
        "links": {"topology": "ring", "count": 4, "bandwidth": 1e10, "latency": 5e-8, "state_bits": 1},
        "energy": {"per_flip": 2e-15, "per_bit": 1e-12},
        "mapping": {"parts": None, "method": "metis", "seed": 0, "placement": "greedy_swap"},
        "run": {"sample": True, "chains": 2, "warmup": 2, "samples": 2, "steps_per_sample": 1, "seed": 0},
        "output": {"dir": str(tmp / "out"), "plots": False},
    }


# ---- input files: a good one, and damaged variants -------------------------------------------------

GOOD_EDGES = "# u v J\n0 1 1.0\n1 2 0.5\n2 3 -1.5\n3 0 1.0\n0 2 0.7\n3 4 1.0\n"
BAD_EDGE_TEXTS = [
    "", "# only a comment\n", "0 1 nan\n1 2 1\n", "0 1 inf\n", "0 1 1e300\n", "0 -1 1\n", "0 0 1\n1 2 1\n",
    "0 1 1\n1 0 1\n", "0 1.5 1\n", "0 1\n1\n", "a b c\n", "0 99999999999999999999 1\n", "0 1 1 1 1\n2\n",
    "\x00\x01\x02garbage\xff\n", "0 1 1\n0 1 1\n", "0,1,1\n", "1e3 2e3 1\n", "0 3000000000 1\n",
]


def _bad_npy(path: pathlib.Path, rng: random.Random) -> None:
    choice = rng.randrange(5)
    if choice == 0:
        np.save(path, np.array([[0.5, 1.0], [1.0, 2.0]]))  # float ids
    elif choice == 1:
        np.save(path, np.array([0, 1, 2]))  # not (E, 2)
    elif choice == 2:
        np.save(path, np.array([[0, 1], [1, -3]]))
    elif choice == 3:
        path.write_bytes(b"\x93NUMPY garbage")
    else:
        np.save(path, np.zeros((0, 2), np.int64))


def _write_graph_npz(path: pathlib.Path, rng: random.Random | None) -> None:
    """`model.graph: npz` for train: edges over 64 visible + 4 hidden nodes (damaged if `rng`)."""
    hidden = 4
    edges = np.array([[v, 64 + v % hidden] for v in range(64)], np.int64)
    n_hidden: object = hidden
    if rng is None:
        np.savez(path, edges=edges, n_hidden=n_hidden)
        return
    choice = rng.randrange(7)
    if choice == 0:
        np.savez(path, edges=edges.astype(float) + 0.5, n_hidden=n_hidden)
    elif choice == 1:
        np.savez(path, edges=edges)  # n_hidden missing
    elif choice == 2:
        np.savez(path, edges=np.vstack([edges, [[0, 10_000]]]), n_hidden=n_hidden)
    elif choice == 3:
        path.write_bytes(b"PK\x03\x04 not a zip at all")
    elif choice == 4:
        np.savez(path, edges=np.vstack([edges, [[3, 3]]]), n_hidden=n_hidden)
    elif choice == 5:
        np.savez(path, edges=edges, n_hidden=np.nan)
    else:
        np.savez(path, edges=edges[:, :1], n_hidden=n_hidden)


def _write_data_npz(path: pathlib.Path, rng: random.Random) -> None:
    """`data.source: npz` for train, damaged in one of several ways."""
    good = np.random.default_rng(0).random((40, 8, 8))
    choice = rng.randrange(6)
    if choice == 0:
        bad = good.copy()
        bad[3, 2, 1] = np.nan
        np.savez(path, data=bad)
    elif choice == 1:
        np.savez(path, data=np.full((40, 8, 8), np.inf))
    elif choice == 2:
        np.savez(path, data=good[:1])  # one image: nothing left after the hold-out
    elif choice == 3:
        np.savez(path, images=good)  # no "data" array
    elif choice == 4:
        np.savez(path, data=good.reshape(40, -1)[:, :63])  # not a square image, no shape
    else:
        np.savez(path, data=np.zeros((40, 8, 8)))  # constant data


# ---- mutations ---------------------------------------------------------------------------------------

def _bad_value(key: str, current, rng: random.Random):
    """A replacement for `current`: mostly a number for a number (out of range, non-finite, huge),
    else a value of another type."""
    if isinstance(current, (int, float)) and not isinstance(current, bool) and rng.random() < 0.75:
        value = rng.choice(NUMBERS)
        if key in DURATION_KEYS and isinstance(value, (int, float)) and abs(value) >= 100_000:
            value = -value
        return value
    return rng.choice(NUMBERS + OTHERS)


def _mutate_keys(raw: dict, rng: random.Random) -> None:
    section = rng.choice(sorted(raw))
    body = raw[section]
    if isinstance(body, dict) and body and rng.random() < 0.9:
        key = rng.choice(sorted(body))
        choice = rng.random()
        if choice < 0.8:
            body[key] = _bad_value(key, body[key], rng)
        elif choice < 0.9:
            del body[key]
        else:
            body[key[:-1] + "x"] = body.pop(key)  # a misspelled key
    else:
        raw[section] = rng.choice(NUMBERS + OTHERS)


def make_case(seed: int, tmp: pathlib.Path) -> tuple[list[str], str]:
    """The command line of fuzz case `seed` (files written into `tmp`) and its command's name."""
    rng = random.Random(seed)
    command = ("run", "train", "emulate")[seed % 3]
    (tmp / "edges.txt").write_text(GOOD_EDGES)
    if command == "train":
        raw = _train_base(tmp)
    else:
        raw = _run_base(tmp) if command == "run" else _emulate_base(tmp)
        raw["model"] = dict(rng.choice(RUN_MODELS))
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        if command != "train" and isinstance(raw["model"], dict) and raw["model"].get("kind") == "edge_list" and kind < 0.6:
            if rng.random() < 0.8:
                (tmp / "edges.txt").write_text(rng.choice(BAD_EDGE_TEXTS))
            else:
                raw["model"]["path"] = "edges.npy"
                raw["model"].pop("weights", None)
                _bad_npy(tmp / "edges.npy", rng)
        elif command == "train" and isinstance(raw["model"], dict) and isinstance(raw["data"], dict) and kind < 0.35:
            if rng.random() < 0.5:
                raw["model"].update(graph="npz", graph_path=str(tmp / "graph.npz"))
                _write_graph_npz(tmp / "graph.npz", rng)
            else:
                raw["data"].update(source="npz", path=str(tmp / "data.npz"))
                _write_data_npz(tmp / "data.npz", rng)
        else:
            _mutate_keys(raw, rng)
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    argv = [command, str(config)]
    if command == "train":
        argv += ["--workdir", str(tmp / "work"), "--launcher", "local"]
    return argv, command


# ---- checks ------------------------------------------------------------------------------------------

class Hang(BaseException):
    """The case ran past `TIME_BOUND_S` (a BaseException: the commands' own handlers must not
    take it for an error of theirs)."""


def _strict_json(path: pathlib.Path) -> None:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    json.loads(path.read_text(), parse_constant=refuse)


def _finite_outputs(folder: pathlib.Path) -> None:
    for path in folder.rglob("*.json"):
        _strict_json(path)
    for path in folder.rglob("*.npz"):
        with np.load(path) as data:
            for name in data.files:
                a = data[name]
                if np.issubdtype(a.dtype, np.floating):
                    assert np.isfinite(a).all(), f"{path}:{name} holds non-finite numbers"


def run_case(seed: int, tmp: pathlib.Path) -> str:
    """Run fuzz case `seed` in `tmp` and check how it ended. **Returns:** its error line, or "ok"."""
    argv, command = make_case(seed, tmp)

    def on_alarm(signum, frame):
        raise Hang(f"case {seed} ({' '.join(argv)}) ran past {TIME_BOUND_S} s")

    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BOUND_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as stop:  # argparse's own usage errors
                status = stop.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    config = (tmp / "config.yaml").read_text()
    assert "Traceback" not in text, f"case {seed}: a traceback\n{config}\n{text}"
    assert status in (0, 2), f"case {seed}: exit status {status}\n{config}\n{text}"
    if status == 2:
        errors = [line for line in text.splitlines() if line.startswith("distthrml: error:")]
        assert len(errors) == 1 and len(errors[0]) > len("distthrml: error: ") + 10, f"case {seed}:\n{config}\n{text}"
        return errors[0]
    _finite_outputs(tmp)
    return "ok"


@pytest.mark.parametrize("seed", range(45))
def test_fuzz_commands(seed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a mutated relative output.dir lands in the case's folder
    run_case(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(45, 260))
def test_fuzz_commands_slow(seed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_case(seed, tmp_path)
