"""The driver's outputs: `metrics.csv` (every step's epoch rows merged with the evaluation rows),
TensorBoard events, evaluations, figures and the summary's figures."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable

import numpy as np

from . import plots
from .config import DTMConfig
from .trainer import read_rows, step_dir, write_rows

FIELDS = ["epoch", "t", "iteration", "moment_gap", "grad_norm", "correlation", "autocorrelation", "penalty",
          "samples_per_s", "wall_s", "fid", "fid_floor", "fid_ceiling"]


class Report:
    """Outputs of one driver run, resumed at epoch `start`.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir.
    - `dataset`: the loaded dataset.
    - `start`: the epoch every step has reached (evaluations after it are dropped and redone).
    """

    def __init__(self, config: DTMConfig, workdir: pathlib.Path, dataset, start: int):
        self.config, self.workdir, self.dataset = config, workdir, dataset
        self.path = workdir / "metrics.csv"
        self.evals = [r for r in read_rows(self.path) if math.isnan(r.get("t", math.nan)) and r["epoch"] <= start]
        self.evaluator = None
        self.writer = None
        if config.output.tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(workdir / "tensorboard"), purge_step=start + 1 if start else None)
        self._write()

    def _step_rows(self) -> list[dict]:
        rows = []
        for t in range(1, self.config.diffusion.steps + 1):
            rows += [dict(r, t=t) for r in read_rows(step_dir(self.workdir, t) / "metrics.csv")]
        return rows

    def _write(self) -> None:
        rows = self._step_rows() + self.evals
        rows.sort(key=lambda r: (r["epoch"], r.get("t", math.nan) if not math.isnan(r.get("t", math.nan)) else 1e9))
        write_rows(self.path, rows, FIELDS)

    def steps_done(self, results: dict) -> None:
        """Record the epoch rows the steps just trained (`{t: {"rows": [...]}}`)."""
        if self.writer is not None:
            for t, r in results.items():
                for row in r["rows"]:
                    for k in ("moment_gap", "autocorrelation", "penalty", "samples_per_s", "correlation"):
                        v = row.get(k)
                        if v is not None and math.isfinite(v):
                            self.writer.add_scalar(f"step{t}/{k}", v, int(row["epoch"]))
        self._write()

    def evaluate(self, epoch: int, params: list[dict]) -> dict:
        """Generate and score with every step's parameters at `epoch`; recorded as a row."""
        if self.evaluator is None:
            from .evaluate import Evaluator
            from .graph import build_step_graph

            c, ds = self.config, self.dataset
            graph = build_step_graph(ds.shape, c.model.grid_side, c.offsets(), c.model.placement, c.model.placement_seed)
            self.evaluator = Evaluator(c, graph, ds, self.workdir / "classifier.npz")
        result = self.evaluator(params)
        row = {"epoch": epoch, **{k: result[k] for k in ("fid", "fid_floor", "fid_ceiling")}}
        self.evals = [r for r in self.evals if r["epoch"] != epoch] + [row]
        if self.writer is not None:
            for k in ("fid", "fid_floor", "fid_ceiling"):
                self.writer.add_scalar(f"eval/{k}", result[k], epoch)
        self._write()
        return result

    def finish(self, result: dict | None, echo: Callable) -> dict:
        """Close TensorBoard, draw the figures, and return the summary's figures."""
        if self.writer is not None:
            self.writer.close()
        c, ds = self.config, self.dataset
        rows = self._step_rows()
        out: dict = {"dataset": ds.name, "image_shape": list(ds.shape), "n_train": int(len(ds.train)),
                     "n_heldout": int(len(ds.heldout))}
        per_step = {}
        for t in range(1, c.diffusion.steps + 1):
            mine = [r for r in rows if r["t"] == t]
            acf = [r["autocorrelation"] for r in mine if math.isfinite(r["autocorrelation"])]
            per_step[t] = {
                "autocorrelation_last": acf[-1] if acf else None,
                "autocorrelation_mean": float(np.mean(acf)) if acf else None,
                "penalty_last": mine[-1]["penalty"] if mine else None,
                "samples_per_s": float(np.median([r["samples_per_s"] for r in mine])) if mine else None,
            }
        out["per_step"] = {str(t): v for t, v in per_step.items()}
        means = [v["autocorrelation_mean"] for v in per_step.values() if v["autocorrelation_mean"] is not None]
        out["autocorrelation_mean"] = float(np.mean(means)) if means else None
        if result is not None:
            out.update({k: result[k] for k in ("fid", "fid_floor", "fid_ceiling", "class_histogram")})
            echo(f"classifier-FID {result['fid']:.3f} (floor {result['fid_floor']:.3f}: held-out vs training; "
                 f"ceiling {result['fid_ceiling']:.3f}: noise vs held-out)")
        if not c.output.plots:
            return out
        w = self.workdir
        plots.image_grid(ds.train, ds.shape, w / "data.png", f"training data ({ds.name})")
        if rows:
            plots.mixing_curves(rows, w / "autocorrelation.png", c.penalty.target, c.penalty.lag)
        if self.evals:
            plots.fid_curve(sorted(self.evals, key=lambda r: r["epoch"]), w / "fid.png")
        if result is not None:
            from .schedule import make_schedule

            plots.image_grid(result["chain"][0], ds.shape, w / "samples.png",
                             f"generated x_0 (T={c.diffusion.steps}, FID {result['fid']:.2f}; floor "
                             f"{result['fid_floor']:.2f}, ceiling {result['fid_ceiling']:.2f})")
            if c.generation.strip_chains:
                plots.denoising_strip(result["chain"], ds.shape, make_schedule(c.diffusion).times, w / "denoising.png",
                                      c.generation.strip_chains)
        echo(f"wrote {w}/{{metrics.csv,summary.json,samples.png,denoising.png,fid.png,autocorrelation.png,data.png}}")
        return out
