"""Checkpoints of a sampling run (`distthrml run --workdir DIR`): after chosen chunks, the chains'
states and everything recorded so far are saved with Orbax (atomic, checksummed, the newest two
kept: `cluster.checkpoint`), so that rerunning the command continues where the run stopped.

A checkpoint holds the states in the unsharded program's global order and no key (chunk `c`'s
keys are a function of the seed and `c`), so it does not depend on the layout: a run checkpointed
on K devices (or W Ray workers) resumes on any other number, and ends with the samples of an
uninterrupted run on either, bit for bit (contract 4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from .. import checkpoint as ck
from ..config_file import ConfigError, diff_identity
from ..workloads.schema import model_keys
from .chunks import Chunk, Progress
from .config import RunConfig

KEEP_LAST = 2  # the newest, and one to fall back on if it is damaged


def identity(config: RunConfig, stream: str) -> dict:
    """What a run's samples depend on (its checkpoints resume only under the same): the model,
    the schedule and seed, the random stream the run samples with (`sampling.rng: auto` resolves
    it per layout), and what is recorded. Not the devices, parts, partition or launcher.

    **Arguments:**

    - `config`: the run's config.
    - `stream`: the random stream chosen for it (`cluster.run.stream.choose_stream`).
    """
    return {"model": model_keys(config.model), "sampling": dataclasses.asdict(config.sampling), "stream": stream,
            "moments": config.output.moments, "states": config.output.states}


def fingerprint(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# without `output.checkpoint_every`, saving may take at most this share of the sampling time (a
# save costs about 0.1 s plus the bytes; measured by benchmarks/checkpoint_cost.py)
MAX_OVERHEAD = 0.05


def due(chunks: list[Chunk], c: int, every: int | None, sampled_s: float = 0.0, last_save_s: float = 0.0) -> bool:
    """Whether to checkpoint after chunk `c`: always after the last chunk; with `every`, once the
    sweeps done pass a multiple of it; else once the sampling time since the last save is long
    enough that the last save's cost is at most `MAX_OVERHEAD` of it (the first chunk saves).

    **Arguments:**

    - `chunks`: the run's chunks.
    - `c`: the chunk just run.
    - `every`: `output.checkpoint_every` (sweeps), or None.
    - `sampled_s`: sampling seconds since the last save (or the start).
    - `last_save_s`: how long the last save took (0 before the first).
    """
    if c == len(chunks) - 1:
        return True
    if every is None:
        return sampled_s * MAX_OVERHEAD >= last_save_s
    before = sum(chunk.sweeps for chunk in chunks[:c])
    return (before + chunks[c].sweeps) // every > before // every


class RunCheckpoints:
    """The `checkpoints/` folder of a sampling run's workdir (used by the primary process only).

    **Arguments:**

    - `workdir`: the run's folder (its output folder).
    - `config`: the run's config.
    - `stream`: the random stream it samples with.
    - `chunks`: the run's chunks (a checkpoint must fit their plan).
    """

    def __init__(self, workdir: str | pathlib.Path, config: RunConfig, stream: str, chunks: list[Chunk]):
        self.identity, self.chunks = identity(config, stream), chunks
        self.store = ck.CheckpointStore(pathlib.Path(workdir) / "checkpoints", KEEP_LAST)

    def restore(self) -> tuple[Progress, pathlib.Path] | None:
        """The progress of the newest intact checkpoint and its folder, or None; a checkpoint of
        another config is refused, naming the keys that differ."""
        meta = self.store.latest_meta()
        if meta is not None and meta.get("fingerprint") != fingerprint(self.identity):
            diffs = diff_identity(self.identity, meta.get("identity", {}))
            raise ConfigError(f"{self.store.directory} holds checkpoints of another run ({'; '.join(diffs)}); "
                              "use another --workdir, or delete its checkpoints/ to start over")
        restored = self.store.restore_latest(None)
        if restored is None:
            return None
        tree, meta = restored
        done = int(meta["step"])
        if not 0 < done <= len(self.chunks):
            raise ck.CheckpointError(f"{self.store.step_dir(done)} is after chunk {done} of a run of {len(self.chunks)}")
        return Progress.from_tree(tree, done, float(meta["sample_seconds"])), self.store.step_dir(done)

    def save(self, progress: Progress) -> None:
        """Save `progress` as checkpoint `progress.chunks_done` (atomic)."""
        meta = {"step": progress.chunks_done, "sample_seconds": progress.sample_seconds,
                "fingerprint": fingerprint(self.identity), "identity": self.identity}
        self.store.save(progress.chunks_done, progress.tree(), meta)

    def close(self) -> None:
        self.store.close()
