"""DTMs (`model.kind: dtm`): the forward process, the step graph, data readers, the FID, the
penalty controller, config errors, and runs: outputs, resume bit for bit, `--init-step`, workdir
checks. Tiny configs; the CLI's SIGKILL test and the Ray launcher's are in test_dtm_runs.py."""

import copy
import gzip
import json
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from cluster.cli import main as cli_main
from cluster.config_file import ConfigError
from cluster.dtm import fid as fid_lib
from cluster.dtm import step as step_lib
from cluster.dtm.config import DEGREES, config_from_dict, load_dtm_config
from cluster.dtm.data import load_dataset, read_idx
from cluster.dtm.graph import build_step_graph, grid_offset_edges
from cluster.dtm.job import train_dtm
from cluster.dtm.schedule import coupling, flip_probability, make_schedule
from cluster.dtm.trainer import StepTrainer, step_dir
from cluster import checkpoint as ck

REPO = pathlib.Path(__file__).resolve().parents[1]
QUIET = lambda *a: None  # noqa: E731
TINY = {
    "data": {"source": "digits", "limit": 240},
    "model": {"kind": "dtm", "grid_side": 10, "degree": 8},
    "diffusion": {"steps": 2},
    "sampling": {"positive_warmup": 1, "positive_samples": 2, "negative_warmup": 2, "negative_samples": 2},
    "penalty": {"measure_every": 3, "replicas": 4, "conditions": 2, "warmup": 2, "lag": 3},
    "train": {"epochs": 2, "batch_size": 32},
    "generation": {"samples": 40, "sweeps": 4, "strip_chains": 2},
    "evaluation": {"every": 1, "classifier_hidden": 16},
    "output": {"progress": False, "tensorboard": False, "plots": False},
}


def tiny(**sections) -> dict:
    raw = copy.deepcopy(TINY)
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def step_state(workdir: pathlib.Path, t: int) -> tuple[dict, dict]:
    """The latest checkpoint of step t: (raw arrays by leaf path, meta)."""
    store = ck.CheckpointStore(step_dir(workdir, t) / "checkpoints", 10)
    try:
        step = store.steps()[-1]
    finally:
        store.close()
    meta = json.loads((step_dir(workdir, t) / "checkpoints" / str(step) / "meta" / "metadata").read_text())
    return step, meta


# --- the forward process -----------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["linear", "log"])
def test_schedule_marginals_compose_and_couplings_invert(schedule):
    s = make_schedule(config_from_dict(tiny(diffusion={"steps": 5, "schedule": schedule, "rate": 2.5})).diffusion)
    assert s.times[0] == 0 and s.times[-1] == 1 and np.all(np.diff(s.times) > 0)
    # flipping with q(t_{k-1}) then with the interval's p gives q(t_k): a Markov chain
    for k in range(1, 6):
        q, p = s.marginal[k - 1], s.interval[k]
        assert s.marginal[k] == pytest.approx(q * (1 - p) + (1 - q) * p, abs=1e-12)
        # q(x_t | x_{t-1}) = exp(Gamma s s') / (2 cosh Gamma): p / (1 - p) = exp(-2 Gamma)
        assert np.exp(-2 * s.gamma[k]) == pytest.approx(p / (1 - p), rel=1e-12)
    assert s.marginal[-1] < 0.5 and flip_probability(2.5, 1.0) == pytest.approx(s.marginal[-1])
    assert coupling(0.5) == pytest.approx(0.0)


def test_noisy_pair_flips_at_the_schedule_rates():
    x0 = jnp.zeros((4000, 64), bool)
    x_prev, x_t = step_lib.noisy_pair(jax.random.key(0), x0, jnp.float32(0.2), jnp.float32(0.3))
    n = x0.size
    for rate, want in ((np.mean(np.asarray(x_prev)), 0.2), (np.mean(np.asarray(x_prev) != np.asarray(x_t)), 0.3)):
        assert abs(rate - want) < 5 * np.sqrt(want * (1 - want) / n)


# --- the step graph ------------------------------------------------------------------------------

@pytest.mark.parametrize("degree", DEGREES)
def test_step_graph_has_the_chosen_degree_and_two_colours(degree):
    config = config_from_dict(tiny(model={"grid_side": 24, "degree": degree}))
    g = build_step_graph((8, 8), 24, config.offsets(), "spread", 0)
    deg = np.bincount(g.grid_edges.ravel(), minlength=g.n_grid)
    assert deg.max() == degree  # interior nodes; border nodes have fewer neighbours
    assert np.all(g.colors[g.grid_edges[:, 0]] != g.colors[g.grid_edges[:, 1]])
    pairs = np.sort(g.grid_edges, axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs) and np.all(pairs[:, 0] != pairs[:, 1])
    # every node's neighbours are exactly those at the offsets and their rotations, inside the grid
    r, c = 12, 12
    node = r * 24 + c
    got = set(pairs[pairs[:, 0] == node, 1]) | set(pairs[pairs[:, 1] == node, 0])
    want = {(r + a) * 24 + (c + b) for dy, dx in config.offsets() for a, b in ((dy, dx), (-dx, dy), (-dy, -dx), (dx, -dy))
            if 0 <= r + a < 24 and 0 <= c + b < 24}
    assert got == want


@pytest.mark.parametrize("placement", ["spread", "random"])
def test_pixels_are_spread_over_distinct_grid_nodes(placement):
    g = build_step_graph((16, 16), 40, [(0, 1)], placement, 3)
    assert len(np.unique(g.sites)) == 256 and len(g.latent) == 40 * 40 - 256
    assert set(g.latent).isdisjoint(g.sites)
    rows, cols = np.divmod(g.sites, 40)
    assert rows.max() - rows.min() > 30 and cols.max() - cols.min() > 30  # spread over the grid
    # the negative blocks cover the grid, the positive ones the latents, each node once
    assert sorted(np.concatenate(g.negative_index)) == list(range(1600))
    assert sorted(np.concatenate(g.positive_index)) == list(g.latent)


def test_offset_edges_are_array_native_at_scale():
    edges = grid_offset_edges(1024, [(0, 1), (4, 1)])
    assert edges.shape == (2 * 1023 * 1024 + 2 * 1020 * 1023, 2)


# --- data ----------------------------------------------------------------------------------------

def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(">u1").tobytes()


def test_idx_files_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (30, 6, 5)).astype(np.uint8)
    labels = np.arange(30, dtype=np.uint8) % 3
    (tmp_path / "x.idx").write_bytes(_idx(images))
    (tmp_path / "y.gz").write_bytes(gzip.compress(_idx(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "y.gz"), labels)
    config = config_from_dict(tiny(data={"source": "idx", "path": str(tmp_path / "x.idx"),
                                         "labels_path": str(tmp_path / "y.gz"), "limit": 0}))
    ds = load_dataset(config.data)
    assert ds.shape == (6, 5) and len(ds.train) + len(ds.heldout) == 30
    assert ds.train.dtype == bool and set(np.unique(ds.train_labels)) <= {0, 1, 2}


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08", "bad magic number"),
    (b"\x00\x00\x07\x03" + b"\x00" * 12, "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    (bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 9, "holds 17 bytes"),
])
def test_bad_idx_files_are_named(tmp_path, content, message):
    (tmp_path / "bad.idx").write_bytes(content)
    with pytest.raises(ConfigError, match=f"data.path: .*bad.idx.*{message}"):
        read_idx(tmp_path / "bad.idx")


def test_npz_and_digits16(tmp_path):
    x = np.random.default_rng(1).random((50, 7, 7))
    np.savez(tmp_path / "d.npz", data=x)
    ds = load_dataset(config_from_dict(tiny(data={"source": "npz", "path": str(tmp_path / "d.npz"), "limit": 0})).data)
    assert ds.shape == (7, 7) and ds.train_labels is None
    big = load_dataset(config_from_dict(tiny(data={"source": "digits16", "limit": 0})).data)
    small = load_dataset(config_from_dict(tiny(data={"limit": 0})).data)
    assert big.shape == (16, 16) and len(big.train) == len(small.train) == 1438
    # the upsampled images keep the digits' ink in the same places
    coarse = big.train.reshape(-1, 8, 2, 8, 2).mean(axis=(2, 4)).reshape(len(big.train), -1)
    assert np.mean((coarse > 0.5) == small.train) > 0.9


# --- FID and penalty -----------------------------------------------------------------------------

def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + np.array([1.0, 0.0, -1.0])
    # ||mu||^2 + tr(I + 4I - 2 * 2I) = 2 + 3
    assert fid_lib.frechet_distance(a, b) == pytest.approx(5.0, abs=0.1)
    assert fid_lib.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_classifier_is_cached_and_reused(tmp_path):
    ds = load_dataset(config_from_dict(tiny()).data)
    f1 = fid_lib.feature_map(ds.train, ds.train_labels, 8, 0, tmp_path / "c.npz")
    stamp = (tmp_path / "c.npz").stat().st_mtime_ns
    f2 = fid_lib.feature_map(ds.train, ds.train_labels, 8, 0, tmp_path / "c.npz")
    assert (tmp_path / "c.npz").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(f1(ds.heldout), f2(ds.heldout))
    assert np.mean(f1.classes(ds.heldout) == ds.heldout_labels) > 0.5  # it does classify
    fid_lib.feature_map(ds.train, ds.train_labels, 9, 0, tmp_path / "c.npz")  # other settings: retrained
    assert (tmp_path / "c.npz").stat().st_mtime_ns != stamp


def test_penalty_controller():
    c = config_from_dict(tiny(penalty={"target": 0.1, "increase": 2.0, "decrease": 0.5, "minimum": 0.01, "maximum": 1.0,
                                       "smoothing": 0.5}))
    update = lambda lam, smooth, rho, config=c: tuple(step_lib.update_penalty(np.array([lam, smooth]), rho, config))  # noqa: E731
    assert update(0.1, np.nan, 0.3) == pytest.approx((0.2, 0.3))  # the first measurement is taken as it is
    assert update(0.1, 0.3, 0.0) == pytest.approx((0.2, 0.15))  # the average is still above the target
    assert update(0.1, 0.1, 0.0) == pytest.approx((0.05, 0.05))
    assert update(0.8, 0.9, 0.9)[0] == 1.0 and update(0.015, 0.0, 0.0)[0] == 0.01  # within [minimum, maximum]
    off = config_from_dict(tiny(penalty={"enabled": False}))
    assert update(0.5, 0.9, 0.9, off) == pytest.approx((0.0, 0.9))


# --- config errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("sections, message", [
    ({"model": {"degree": 10}}, r"model.degree must be one of \[4, 8, 12, 16, 20, 24\]"),
    ({"model": {"offsets": [[1, 1]]}}, r"model.offsets\[0\] \[1, 1\]: dy \+ dx must be odd"),
    ({"model": {"offsets": [[0, 1], [-1, 0]]}}, r"model.offsets\[1\] .* repeats"),
    ({"model": {"offsets": [[0, 1, 2]]}}, r"model.offsets\[0\] must be a pair"),
    ({"model": {"grid_sid": 3}}, r"unknown key\(s\) in 'model': \['grid_sid'\]; 'grid_sid' \(did you mean 'grid_side'\?\)"),
    ({"diffusion": {"steps": 0}}, r"diffusion.steps must be in \[1, 1000\]"),
    ({"diffusion": {"rate": float("nan")}}, r"'diffusion.rate' must be finite"),
    ({"diffusion": {"schedule": "cosine"}}, r"diffusion.schedule must be 'linear' or 'log'"),
    ({"data": {"source": "mnist"}}, r"data.source must be one of"),
    ({"data": {"source": "idx"}}, r"data.path is required when data.source is 'idx'"),
    ({"penalty": {"initial": 50.0}}, r"penalty.initial must be in \[penalty.minimum, penalty.maximum\]"),
    ({"penalty": {"replicas": 1}}, r"penalty.replicas must be >= 2"),
    ({"generation": {"anneal_stages": 9, "sweeps": 4}}, r"generation.anneal_stages \(9\) must not exceed"),
    ({"optim": {"ema": 1.0}}, r"optim.ema must be in \[0, 1\)"),
    ({"sharding": {"parts": 0}}, r"sharding.parts must be in \[1, 1024\]"),
    ({"train": {"epochs": 0}}, r"train.epochs must be >= 1"),
])
def test_config_errors_name_the_key(sections, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tiny(**sections))


def test_small_grids_are_named_before_anything_is_compiled(tmp_path):
    for model, message in (({"grid_side": 6}, "grid_side 6 is smaller than the 8x8 images"),
                           ({"grid_side": 8, "placement": "random"}, "leaving no latent nodes")):
        with pytest.raises(ConfigError, match=message):
            train_dtm(config_from_dict(tiny(model=model)), tmp_path / "w", echo=QUIET)


def test_cli_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny(penalty={"target": 2.0})))
    assert cli_main(["train", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.yaml" in err and "penalty.target must be in (0, 1)" in err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny()))
    for flag, message in (("2=x", "does not exist"), ("5=" + str(tmp_path), "not one of the config's steps 1..2"),
                          ("two", "expected STEP=PATH")):
        assert cli_main(["train", str(good), "--workdir", str(tmp_path / "w"), "--init-step", flag]) == 2
        assert message in capsys.readouterr().err
    # Boltzmann machine configs name DTM-only sections and unknown kinds
    bm = yaml.safe_load((REPO / "configs" / "train_digits.yaml").read_text())
    for change, message in ((lambda r: r.update(penalty={}), "apply to model.kind: dtm only"),
                            (lambda r: r["model"].update(kind="rbm"), "model.kind must be one of")):
        raw = copy.deepcopy(bm)
        change(raw)
        path.write_text(yaml.safe_dump(raw))
        assert cli_main(["train", str(path), "--workdir", str(tmp_path / "w")]) == 2
        assert message in capsys.readouterr().err


def test_sizes_beyond_this_machine_are_named(tmp_path, capsys):
    for sections, key in (({"model": {"grid_side": 8000}}, "model.grid_side"),
                          ({"generation": {"samples": 2_000_000_000}}, "generation.samples")):
        path = tmp_path / "big.yaml"
        path.write_text(yaml.safe_dump(tiny(**sections)))
        assert cli_main(["train", str(path), "--workdir", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err
        assert f"{key}: " in err and "GiB" in err and err.count("\n") == 1


def test_shipped_configs_load():
    for name in ("dtm_digits", "mebm_digits", "dtm_large"):
        config = load_dtm_config(REPO / "configs" / f"{name}.yaml")
        assert config.model.kind == "dtm"
    a, b = (load_dtm_config(REPO / "configs" / f"{n}.yaml") for n in ("dtm_digits", "mebm_digits"))
    # the baseline differs in its number of steps (and the generation sweeps per step) only
    assert a.diffusion.steps == 4 and b.diffusion.steps == 1
    assert a.generation.sweeps * a.diffusion.steps == b.generation.sweeps * b.diffusion.steps
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["diffusion"].pop("steps"), d["generation"].pop("sweeps")
    assert da == db


# --- runs ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-epoch run of the tiny config, with figures and TensorBoard."""
    w = tmp_path_factory.mktemp("ref")
    summary = train_dtm(config_from_dict(tiny(output={"plots": True, "tensorboard": True})), w, echo=QUIET)
    return w, summary


def test_run_writes_outputs_and_fid_with_floor_and_ceiling(reference):
    w, summary = reference
    on_disk = json.loads((w / "summary.json").read_text())
    for key in ("fid", "fid_floor", "fid_ceiling"):
        assert isinstance(on_disk[key], float) and on_disk[key] == pytest.approx(summary[key])
    assert on_disk["fid_floor"] < on_disk["fid_ceiling"]
    assert sum(on_disk["class_histogram"]) == 40 and len(on_disk["class_histogram"]) == 10
    assert on_disk["epochs"] == 2 and set(on_disk["per_step"]) == {"1", "2"}
    rows = (w / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["epoch", "t", "iteration"] and "fid" in header and "autocorrelation" in header
    assert len(rows) == 1 + 2 * 2 + 2  # two steps' epochs, and an evaluation after each epoch
    for png in ("samples.png", "denoising.png", "fid.png", "autocorrelation.png", "data.png"):
        assert (w / png).stat().st_size > 2000, png
    assert list((w / "tensorboard").glob("events.out.tfevents.*"))
    assert (w / "classifier.npz").is_file()


def test_extended_run_and_rerun_are_bit_identical(reference, tmp_path):
    ref, _ = reference
    # one epoch, then extended to two: the same states as the uninterrupted run
    train_dtm(config_from_dict(tiny(train={"epochs": 1})), tmp_path, echo=QUIET)
    lines = []
    summary = train_dtm(config_from_dict(tiny()), tmp_path, echo=lines.append)
    assert any("step 2: resumed from iteration 6" in line for line in lines)
    for t in (1, 2):
        (sa, ma), (sb, mb) = step_state(ref, t), step_state(tmp_path, t)
        assert sa == sb == 12 and ma["checksum"] == mb["checksum"]
    assert summary["fid"] == json.loads((ref / "summary.json").read_text())["fid"]


def test_a_stop_inside_an_epoch_resumes_bit_identical(reference, tmp_path):
    from cluster.train.stops import Stopped

    ref, _ = reference
    config = config_from_dict(tiny())
    ds = load_dataset(config.data)
    trainer = StepTrainer(config, tmp_path, 2, ds.train, ds.shape, echo=QUIET)

    def stop_at(t, done):
        if done == 9:
            raise Stopped(15)

    with pytest.raises(Stopped):
        trainer.train_until(2, stop_at)
    trainer.close()
    assert step_state(tmp_path, 2)[0] == 9  # the progress was saved on the way out
    train_dtm(config, tmp_path, echo=QUIET)
    assert step_state(tmp_path, 2)[1]["checksum"] == step_state(ref, 2)[1]["checksum"]


def test_init_step_takes_another_runs_parameters(reference, tmp_path):
    ref, _ = reference
    config = config_from_dict(tiny(optim={"learning_rate": 0.001}))  # another run, the same step graph
    ds = load_dataset(config.data)
    trainer = StepTrainer(config, tmp_path, 1, ds.train, ds.shape, init_from=str(ref), echo=QUIET)
    theirs = StepTrainer(config_from_dict(tiny()), ref, 1, ds.train, ds.shape, echo=QUIET)
    try:
        for k in ("biases", "weights", "inputs"):
            np.testing.assert_array_equal(np.asarray(trainer.progress.state["params"][k]),
                                          np.asarray(theirs.progress.state["params"][k]))
        assert trainer.progress.iteration == 0
    finally:
        trainer.close()
        theirs.close()
    other = config_from_dict(tiny(model={"grid_side": 11}))
    with pytest.raises(ConfigError, match=r"another step graph \(model.grid_side: 10 there, 11 here\)"):
        StepTrainer(other, tmp_path / "x", 1, ds.train, ds.shape, init_from=str(ref), echo=QUIET)


def test_workdir_of_another_config_is_refused_unless_forced(reference, tmp_path):
    ref, _ = reference
    import shutil

    shutil.copytree(ref / "steps", tmp_path / "steps")
    with pytest.raises(ConfigError, match=r"different config \(optim.learning_rate: 0.005 in the workdir, 0.01 now\)"):
        train_dtm(config_from_dict(tiny(optim={"learning_rate": 0.01}, train={"epochs": 1})), tmp_path, echo=QUIET)
    lines = []
    train_dtm(config_from_dict(tiny(optim={"learning_rate": 0.01}, train={"epochs": 1})), tmp_path, force=True,
              echo=lines.append)
    assert (tmp_path / "replaced-0" / "steps" / "t1").is_dir()
    assert not any("resumed" in line for line in lines)
