"""Running a schedule in chunks, so that a progress bar can advance, samples can be streamed to
disk and checkpoints saved between them.

A chunk is one `sample_with_observation` call that starts from the previous chunk's state.
Chunk `c` of a run uses the chain keys `split(fold_in(sampling_key, c), chains)`, so results
depend on the config and the seed only: not on the number of parts, the mesh, the bar, or
where a run was stopped and resumed.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import numpy as np

from distthrml.block_sampling import SamplingSchedule

from ..multihost import to_host
from ..progress import progress_bar
from .engine import Engine

TARGET_CHUNKS = 40  # progress-bar steps to aim for, warmup and sampling together


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One call of the sampler: its schedule, and whether it belongs to the warmup."""

    schedule: SamplingSchedule
    warmup: bool

    @property
    def sweeps(self) -> int:
        s = self.schedule
        return s.n_warmup + (s.n_samples - 1) * s.steps_per_sample


def plan_chunks(warmup: int, samples: int, steps_per_sample: int) -> list[Chunk]:
    """Split `warmup` sweeps and `samples` observations (one every `steps_per_sample` sweeps)
    into chunks.

    Every distinct chunk schedule is compiled once (seconds each), so the chunk size is chosen
    to need as few schedules as possible (one when it divides both phases), and then to give
    about `TARGET_CHUNKS` chunks.

    **Arguments:**

    - `warmup`: warmup sweeps (observed too, for the traces, but not used in statistics).
    - `samples`: observations after the warmup.
    - `steps_per_sample`: sweeps between observations.
    """

    def cost(per_chunk: int) -> tuple[int, float]:
        sweeps = per_chunk * steps_per_sample
        schedules = 1 + bool(samples % per_chunk) + bool(warmup % sweeps)
        chunks = math.ceil(warmup / sweeps) + math.ceil(samples / per_chunk)
        return schedules, abs(math.log(chunks / TARGET_CHUNKS))

    per_chunk = min(range(1, samples + 1), key=cost)
    main = SamplingSchedule(steps_per_sample, per_chunk, steps_per_sample)
    chunk_sweeps = per_chunk * steps_per_sample
    chunks = [Chunk(main, True)] * (warmup // chunk_sweeps)
    if warmup % chunk_sweeps:
        chunks.append(Chunk(SamplingSchedule(warmup % chunk_sweeps, 1, 1), True))
    chunks += [Chunk(main, False)] * (samples // per_chunk)
    if samples % per_chunk:
        chunks.append(Chunk(SamplingSchedule(steps_per_sample, samples % per_chunk, steps_per_sample), False))
    return chunks


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a run has after its first `chunks_done` chunks, on the host: all a checkpoint holds,
    and (once every chunk is done) all the outputs are made of.

    **Fields:**

    - `chunks_done`: chunks run so far.
    - `state`: `[chains, n_slots]` global states (the unsharded program's order, whatever the
        layout that produced them).
    - `records`: per record name, `[chains, observations]` so far (warmup included).
    - `sweep`: `[observations]` sweep count at every observation.
    - `is_warmup`: `[observations]` whether the observation belongs to the warmup.
    - `snapshots`, `snapshot_sweep`: chain 0's global state at the start and after every chunk.
    - `moments`: summed `node`/`edge` counts over the sampling chunks so far (empty if not counted).
    - `sample_seconds`: wall time of the chunks run so far, across resumes (compilation excluded).
    """

    chunks_done: int
    state: np.ndarray
    records: dict
    sweep: np.ndarray
    is_warmup: np.ndarray
    snapshots: np.ndarray
    snapshot_sweep: np.ndarray
    moments: dict
    sample_seconds: float = 0.0

    @classmethod
    def start(cls, state: np.ndarray) -> Progress:
        """A run before its first chunk, from `[chains, n_slots]` initial states."""
        state = np.asarray(state)
        return cls(0, state, {}, np.zeros(0, np.int64), np.zeros(0, bool), state[:1].copy(), np.zeros(1, np.int64), {})

    def after(self, chunk: Chunk, records: dict, state: np.ndarray, moments: dict | None, seconds: float) -> Progress:
        """This progress followed by one more chunk.

        **Arguments:**

        - `chunk`: the chunk just run.
        - `records`: its records, `[chains, n_samples]` each.
        - `state`: `[chains, n_slots]` states after it.
        - `moments`: its moment counts (`node`, `edge` summed over chains), or None.
        - `seconds`: its wall time.
        """
        s = chunk.schedule
        done = int(self.snapshot_sweep[-1])
        merged = records if not self.records else {k: np.concatenate([self.records[k], records[k]], axis=1) for k in records}
        sums = self.moments
        if moments is not None and not chunk.warmup:
            sums = dict(moments) if not sums else {k: sums[k] + moments[k] for k in moments}
        return Progress(
            self.chunks_done + 1, state, merged,
            np.concatenate([self.sweep, done + s.n_warmup + s.steps_per_sample * np.arange(s.n_samples)]),
            np.concatenate([self.is_warmup, np.full(s.n_samples, chunk.warmup)]),
            np.concatenate([self.snapshots, state[:1]]), np.append(self.snapshot_sweep, done + chunk.sweeps),
            sums, self.sample_seconds + seconds,
        )

    def tree(self) -> dict:
        """The arrays of a checkpoint (`sample_seconds` and `chunks_done` go to its metadata)."""
        return {"state": self.state, "records": self.records, "sweep": self.sweep, "is_warmup": self.is_warmup,
                "snapshots": self.snapshots, "snapshot_sweep": self.snapshot_sweep, "moments": self.moments}

    @classmethod
    def from_tree(cls, tree: dict, chunks_done: int, sample_seconds: float) -> Progress:
        """The inverse of `tree` (a checkpoint may leave out the empty `moments`)."""
        arrays = {k: np.asarray(tree[k]) for k in ("state", "sweep", "is_warmup", "snapshots", "snapshot_sweep")}
        moments = {k: np.asarray(v) for k, v in (tree.get("moments") or {}).items()}
        records = {k: np.asarray(v) for k, v in tree["records"].items()}
        return cls(chunks_done, records=records, moments=moments, sample_seconds=sample_seconds, **arrays)


def run_chunks(engine: Engine, chunks: list[Chunk], keys_base, progress: Progress, chains: int, *,
               show_progress: bool = True, describe=None, after_chunk=None) -> Progress:
    """Run the chunks not yet done (`chunks[progress.chunks_done:]`), advancing a progress bar per
    chunk (on a terminal). The results are the same whether a run goes through at once or is
    resumed from any chunk, on any layout: chunk `c` draws from its own keys.

    **Arguments:**

    - `engine`: the compiled sampler.
    - `chunks`: from `plan_chunks`.
    - `keys_base`: the run's sampling key; chunk `c` uses `split(fold_in(keys_base, c), chains)`.
    - `progress`: where the run stands (`Progress.start` for a new run).
    - `chains`: number of chains.
    - `show_progress`: show the bar (on a terminal).
    - `describe`: optional `records -> str` shown after the bar (e.g. the current energy).
    - `after_chunk`: optional `f(chunk_index, progress, states)` called after every chunk, with
        the chunk's observed global states `[chains, n_samples, n_slots]` when the observer
        records them (else None): streams samples and saves checkpoints.
    """
    carry0 = engine.place(engine.observer.carry_init(engine.model.program), replicated=True)
    state = engine.place(progress.state)
    todo = range(progress.chunks_done, len(chunks))
    for c in todo:  # compile everything first: the bar then measures sampling only
        engine.compile(chunks[c].schedule, engine.place(_keys(keys_base, 0, chains)), state, carry0)

    total = sum(c.sweeps for c in chunks)
    bar = progress_bar(total, enabled=show_progress, unit="sweep", initial=int(progress.snapshot_sweep[-1]))
    try:
        for c in todo:
            chunk = chunks[c]
            start = time.perf_counter()
            carry, rec = jax.block_until_ready(engine.run(chunk.schedule, engine.place(_keys(keys_base, c, chains)), state, carry0))
            seconds = time.perf_counter() - start
            state = carry["state"]
            rec = {k: to_host(v) for k, v in rec.items()}
            states = rec.pop("state", None)
            moments = {"node": to_host(carry["node"]).sum(0), "edge": to_host(carry["edge"]).sum(0)} if "node" in carry else None
            progress = progress.after(chunk, rec, to_host(state), moments, seconds)
            if after_chunk is not None:
                after_chunk(c, progress, states)
            bar.update(chunk.sweeps)
            if describe is not None:
                bar.set_postfix_str(describe(rec), refresh=False)
    finally:
        bar.close()
    return progress


def _keys(base, chunk: int, chains: int):
    return jax.random.split(jax.random.fold_in(base, chunk), chains)
