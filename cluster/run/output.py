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
import zipfile
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
        """Stage a compressed `.npz` (byte for byte a function of the arrays: see `write_npz`)."""
        write_npz(self.path(name), arrays)

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


# every member's timestamp: numpy's own writer stamps the current time, so two runs that compute
# the same arrays (an uninterrupted run and a resumed one) would write different bytes
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed `.npz` that `np.load` reads, whose bytes depend on `arrays` only.

    **Arguments:**

    - `path`: the file.
    - `arrays`: name -> array.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
