"""Metrics: a CSV file, TensorBoard event files and a progress bar (on a terminal only).

On resume the CSV is cut back to the restored step and TensorBoard is told to purge later
events, so the curves of a resumed run look like those of an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import pathlib

from ..progress import progress_bar

FIELDS = ["step", "moment_gap", "grad_norm", "heldout_pll", "train_pll", "samples_per_s", "wall_s"]


def read_csv(path: pathlib.Path) -> list[dict]:
    """The rows of a metrics CSV as floats (empty fields as NaN)."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


class MetricsLog:
    """Writes metrics rows; only the process that owns the workdir's outputs creates one.

    **Arguments:**

    - `workdir`: where `metrics.csv` and `tensorboard/` go.
    - `start_step`: the step the run starts (or resumes) from; later rows are dropped.
    - `total_steps`: for the progress bar.
    - `tensorboard`: write TensorBoard events too.
    - `progress`: show a progress bar (on a terminal).
    """

    def __init__(self, workdir: pathlib.Path, start_step: int, total_steps: int, *, tensorboard: bool, progress: bool):
        self.path = workdir / "metrics.csv"
        kept = [r for r in read_csv(self.path) if r["step"] <= start_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            for r in kept:
                writer.writerow({k: _fmt(r.get(k)) for k in FIELDS})
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(workdir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.bar = progress_bar(total_steps, enabled=progress, initial=start_step, desc="train", unit="step",
                                mininterval=0.5)

    def log(self, row: dict) -> None:
        """Append one row (keys from `FIELDS`; missing ones are left empty)."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow({k: _fmt(row.get(k)) for k in FIELDS})
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and v is not None and not (isinstance(v, float) and math.isnan(v)):
                    self.writer.add_scalar(f"train/{k}", v, int(row["step"]))
        postfix = {"gap": f"{row['moment_gap']:.4f}", "samples/s": f"{row['samples_per_s']:.0f}"}
        if row.get("heldout_pll") is not None:
            postfix["heldout_pll"] = f"{row['heldout_pll']:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(int(row["step"]) - self.bar.n)

    def close(self) -> None:
        """Close the bar and the TensorBoard writer (both, even if the first fails)."""
        try:
            self.bar.close()
        finally:
            if self.writer is not None:
                writer, self.writer = self.writer, None
                writer.close()


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(int(v)) if isinstance(v, int) else f"{float(v):.6g}"
