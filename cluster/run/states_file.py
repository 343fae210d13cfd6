"""`states.zarr`: every chain's state at every sampling observation, streamed to disk chunk by
chunk (Zarr through TensorStore, which Orbax already brings), so that a run of many chains x
millions of nodes never holds its samples in memory; it reads back lazily, a slice at a time.

The array is `[chains, samples, nodes]` in node order: spins as int8 +-1, categories as uint8.
While the run goes on it is `.states-partial.zarr` in the output folder (a resumed run continues
it); it becomes `states.zarr` only when the run ends, so an earlier run's file stays intact
until then.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np

from ..config_file import ConfigError

FINAL, PARTIAL = "states.zarr", ".states-partial.zarr"
CHUNK_BYTES = 2**24  # about 16 MiB per stored chunk


def _spec(path: pathlib.Path) -> dict:
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}


class StatesFile:
    """The states of a run, written as it goes.

    **Arguments:**

    - `out`: the output folder.
    - `shape`: `(chains, samples, nodes)`.
    - `categorical`: uint8 categories (else int8 spins).
    - `per_chunk`: observations per run chunk (the stored chunks follow them).
    - `resume`: continue the partial file of an interrupted run instead of starting one.
    """

    def __init__(self, out: str | pathlib.Path, shape: tuple[int, int, int], categorical: bool, per_chunk: int,
                 resume: bool):
        import tensorstore as ts

        self.out = pathlib.Path(out)
        self.path = self.out / PARTIAL
        self.pending = None
        dtype = "|u1" if categorical else "|i1"
        if resume:
            if not self.path.is_dir() and (self.out / FINAL).is_dir():
                self.path = self.out / FINAL  # the run had finished: a rerun rewrites its other files only
            if not self.path.is_dir():
                raise ConfigError(f"{self.path} (the samples streamed before the run was stopped) is missing; "
                                  "delete the workdir's checkpoints/ to start the run over")
            self.array = ts.open(_spec(self.path), open=True).result()
            if tuple(self.array.shape) != tuple(shape) or self.array.dtype.numpy_dtype != np.dtype(dtype):
                raise ConfigError(f"{self.path} holds {self.array.shape} {self.array.dtype}, not this run's {shape}")
            return
        chains, samples, nodes = shape
        per_chunk = max(1, min(per_chunk, samples))
        node_chunk = int(max(1, min(nodes, CHUNK_BYTES // (chains * per_chunk))))
        metadata = {"dtype": dtype, "shape": list(shape), "chunks": [chains, per_chunk, node_chunk],
                    "compressor": {"id": "zlib", "level": 1}}
        self.out.mkdir(parents=True, exist_ok=True)
        self.array = ts.open({**_spec(self.path), "metadata": metadata}, create=True, delete_existing=True).result()

    def write(self, first: int, states: np.ndarray) -> None:
        """Start storing `states` `[chains, n, nodes]` as samples `first .. first + n - 1`; the
        write goes on while the next chunk samples (`flush` waits for it)."""
        self.flush()
        self.pending = self.array[:, first : first + states.shape[1], :].write(states)

    def flush(self) -> None:
        """Wait until every write started so far is on disk."""
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def finish(self) -> pathlib.Path:
        """Rename the finished file to `states.zarr` (replacing an earlier run's)."""
        self.flush()
        final = self.out / FINAL
        if self.path == final:
            return final
        old = self.out / ".states-replaced.zarr"
        if final.exists():
            final.rename(old)
        self.path.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final


def read_states(path: str | pathlib.Path):
    """Open a run's `states.zarr` lazily: index it (`[chain, sample]`, slices) and call
    `.read().result()` to get numpy arrays.

    **Arguments:**

    - `path`: the `states.zarr` folder.
    """
    import tensorstore as ts

    return ts.open(_spec(pathlib.Path(path)), open=True, read=True).result()
