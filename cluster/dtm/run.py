"""The DTM driver: lock the workdir, resume every step, train them to each evaluation epoch (in
this process or in Ray actors), evaluate, merge the metrics, draw the figures, write the summary.

Rounds end at the evaluation epochs (`evaluation.every`) and the last epoch; within a round every
step trains independently (one after another here, at once under Ray). Every output is rebuilt
from the steps' checkpoints and metrics, so a rerun after any interruption resumes.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from collections.abc import Callable

import yaml

from ..config_file import ConfigError
from ..progress import progress_bar
from .. import checkpoint as ck
from ..config_file import diff_identity
from ..lock import WorkdirLock
from ..train.stops import STOPS, Stopped
from .config import DTMConfig

OUTPUTS = ["steps", "metrics.csv", "tensorboard", "config.yaml", "summary.json", "classifier.npz", "samples.png",
           "denoising.png", "fid.png", "autocorrelation.png", "data.png"]


def round_ends(config: DTMConfig, start: int) -> list[int]:
    """The epochs after `start` at which every step stops for an evaluation (and the last)."""
    E, every = config.train.epochs, config.evaluation.every
    ends = {E}
    if every and config.evaluation.enabled:
        ends |= set(range(every, E + 1, every))
    return sorted(e for e in ends if e > start) or [E]


def _stored_meta(workdir: pathlib.Path) -> dict | None:
    """The newest intact metadata of any step's checkpoints (for the config check), or None."""
    for directory in sorted((workdir / "steps").glob("t*/checkpoints")):
        store = ck.CheckpointStore(directory, 100)
        try:
            meta = store.latest_meta()
        finally:
            store.close()
        if meta is not None:
            return meta
    return None


def check_workdir(config: DTMConfig, workdir: pathlib.Path, force: bool, echo: Callable) -> None:
    """Refuse a workdir holding another config's checkpoints (or a Boltzmann machine run's),
    unless `force`: then move the earlier outputs to `workdir/replaced-N/`."""
    other_kind = (workdir / "checkpoints").is_dir()
    meta = None if other_kind else _stored_meta(workdir)
    if not other_kind and (meta is None or meta.get("fingerprint") == config.fingerprint()):
        return
    if other_kind:
        why = "checkpoints of a Boltzmann machine run (model.kind is not dtm)"
    else:
        why = "checkpoints of a different config (" + ("; ".join(diff_identity(config.identity(), meta.get("identity", {})))
                                                        or "fingerprint differs") + ")"
    if not force:
        raise ConfigError(f"{workdir} holds {why}; use another --workdir, or --force to move the old run aside and start over")
    from ..train.run import OUTPUTS as BM_OUTPUTS

    dest = ck.move_aside(workdir, sorted(set(OUTPUTS) | set(BM_OUTPUTS)))
    echo(f"--force: moved the earlier run's outputs to {dest}")


def drive(config: DTMConfig, workdir: str | pathlib.Path, *, force: bool, echo: Callable, init_steps: dict,
          ray_launch=None) -> dict:
    """`cluster.dtm.job.train_dtm` in this process: the steps train here, or in Ray actors when
    `ray_launch` is given (Ray must then be initialised).

    **Arguments:**

    - `config`, `workdir`, `force`, `echo`, `init_steps`: as `train_dtm`.
    - `ray_launch`: the Ray settings, or None.
    """
    workdir = pathlib.Path(workdir).absolute()
    with STOPS.for_a_run():  # a stop signal during start-up waits until there is a loop to stop
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            with WorkdirLock(workdir):
                return _drive_locked(config, workdir, force, echo, init_steps, ray_launch)
        except Stopped as stop:
            echo(f"stopped by {stop} during start-up")
            return {"epochs": None, "total_epochs": config.train.epochs, "stopped_by": str(stop), "exit_code": stop.exit_code}


def _drive_locked(config, workdir, force, echo, init_steps, ray_launch) -> dict:
    from . import data as data_lib

    check_workdir(config, workdir, force, echo)
    dataset = data_lib.load_dataset(config.data)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    started = time.perf_counter()
    if ray_launch is not None:
        from .launch import RaySteps

        steps = RaySteps(config, workdir, init_steps, ray_launch, echo)
    else:
        from .launch import LocalSteps

        steps = LocalSteps(config, workdir, dataset, init_steps, echo)
    try:
        return _rounds(config, workdir, dataset, steps, echo, started, ray_launch is not None)
    finally:
        steps.close()


def _rounds(config, workdir, dataset, steps, echo, started, under_ray) -> dict:
    from .report import Report

    T, E = config.diffusion.steps, config.train.epochs
    epochs = steps.epochs()
    start = min(epochs.values())
    report = Report(config, workdir, dataset, start)
    from .trainer import iterations_per_epoch

    ipe = iterations_per_epoch(len(dataset.train), config.train.batch_size)
    bars = {t: progress_bar(E * ipe, enabled=config.output.progress, initial=epochs[t] * ipe, desc=f"step {t}",
                            unit="it", position=t - 1, mininterval=0.5) for t in range(1, T + 1)}

    def tick(t: int, done: int) -> None:
        bars[t].update(done - bars[t].n)

    stop = None
    result = None
    try:
        STOPS.release()
        for end in round_ends(config, start):
            results = steps.train_until(end, None if under_ray else tick)
            STOPS.check()  # a stop whose exception Python dropped (see train/stops.py)
            for t, r in results.items():
                tick(t, end * ipe)
            report.steps_done(results)
            if config.evaluation.enabled and (end == E or (config.evaluation.every and end % config.evaluation.every == 0)):
                result = report.evaluate(end, [results[t]["ema"] for t in range(1, T + 1)])
                echo(f"epoch {end}: FID {result['fid']:.3f} (floor {result['fid_floor']:.3f}, ceiling "
                     f"{result['fid_ceiling']:.3f})")
    except Stopped as err:
        stop = err
        echo(f"stopped by {err}; the steps saved their progress")
    finally:
        STOPS.hold()
        for bar in bars.values():
            bar.close()
    epochs = steps.epochs()
    summary = {"epochs": min(epochs.values()), "total_epochs": E, "steps": T, "launcher": "ray" if under_ray else "local",
               "wall_s": time.perf_counter() - started}
    if stop is not None:
        summary.update(stopped_by=str(stop), exit_code=stop.exit_code)
    summary.update(report.finish(result, echo))
    write_json(workdir / "summary.json", summary)
    return summary


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_json(path: pathlib.Path, data: dict) -> None:
    """Strict JSON (non-finite numbers become null), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, allow_nan=False))
    tmp.replace(path)
