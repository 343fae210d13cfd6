"""Writing a job's files without ever leaving a half-written or clobbered output folder.

Files go to a staging folder inside the output folder and are renamed over the old ones only
once all of them are written; a run that fails before that leaves the old files untouched.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np


class Staging:
    """A context manager that collects files and moves them into `out` on success.

    **Arguments:**

    - `out`: the output folder (created if needed).
    """

    def __init__(self, out: str | os.PathLike):
        self.out = pathlib.Path(out)
        self.written: list[pathlib.Path] = []

    def __enter__(self) -> Staging:
        self.out.mkdir(parents=True, exist_ok=True)
        # inside `out`, so that the final renames stay on one filesystem (atomic)
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out))
        return self

    def path(self, name: str) -> pathlib.Path:
        """Where to write the file `name` while staging."""
        return self.dir / name

    def npz(self, name: str, **arrays: Any) -> None:
        """Stage a compressed `.npz`."""
        with open(self.path(name), "wb") as f:
            np.savez_compressed(f, **arrays)

    def json(self, name: str, data: dict) -> None:
        """Stage a JSON file."""
        self.path(name).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                for staged in sorted(self.dir.iterdir()):
                    os.replace(staged, self.out / staged.name)
                    self.written.append(self.out / staged.name)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
