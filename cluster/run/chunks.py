"""Running a schedule in chunks, so that a progress bar can advance between them.

A chunk is one `sample_with_observation` call that starts from the previous chunk's state.
Chunk `c` of a run uses the chain keys `split(fold_in(sampling_key, c), chains)`, so results
depend on the config and the seed only: not on the number of parts, the mesh or the bar.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import numpy as np

from distthrml.block_sampling import SamplingSchedule

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


@dataclasses.dataclass
class ChunkResults:
    """What a chunked run returns.

    **Fields:**

    - `records`: per record name, `[chains, observations]` over the whole run (warmup included).
    - `sweep`: `[observations]` sweep count at every observation.
    - `is_warmup`: `[observations]` whether the observation belongs to the warmup.
    - `final_state`: `[chains, n_slots]` global states at the end.
    - `snapshots`, `snapshot_sweep`: chain 0's global state at the start and after every chunk.
    - `moments`: summed `node`/`edge` counts over the sampling phase (or None).
    - `sample_seconds`: wall time of the chunks (compilation excluded).
    """

    records: dict
    sweep: np.ndarray
    is_warmup: np.ndarray
    final_state: np.ndarray
    snapshots: np.ndarray
    snapshot_sweep: np.ndarray
    moments: dict | None
    sample_seconds: float


def run_chunks(engine: Engine, chunks: list[Chunk], keys_base, state, chains: int, *, progress: bool = True, describe=None) -> ChunkResults:
    """Run `chunks` in order from `state`, advancing a progress bar per chunk (on a terminal).

    **Arguments:**

    - `engine`: the compiled sampler.
    - `chunks`: from `plan_chunks`.
    - `keys_base`: the run's sampling key; chunk `c` uses `split(fold_in(keys_base, c), chains)`.
    - `state`: `[chains, n_slots]` initial global states.
    - `chains`: number of chains.
    - `progress`: show the bar (on a terminal).
    - `describe`: optional `records -> str` shown after the bar (e.g. the current energy).
    """
    carry0 = engine.place(engine.observer.carry_init(engine.model.program), replicated=True)
    state = engine.place(state)
    for chunk in chunks:  # compile everything first: the bar then measures sampling only
        engine.compile(chunk.schedule, engine.place(_keys(keys_base, 0, chains)), state, carry0)

    records, sweeps, warm, moments = [], [], [], None
    snaps, snap_sweeps = [np.asarray(state[0])], [0]
    done, seconds = 0, 0.0
    bar = progress_bar(sum(c.sweeps for c in chunks), enabled=progress, unit="sweep")
    try:
        for c, chunk in enumerate(chunks):
            start = time.perf_counter()
            carry, rec = jax.block_until_ready(engine.run(chunk.schedule, engine.place(_keys(keys_base, c, chains)), state, carry0))
            seconds += time.perf_counter() - start
            state = carry["state"]
            rec = {k: np.asarray(v) for k, v in rec.items()}
            records.append(rec)
            s = chunk.schedule
            sweeps.append(done + s.n_warmup + s.steps_per_sample * np.arange(s.n_samples))
            warm.append(np.full(s.n_samples, chunk.warmup))
            done += chunk.sweeps
            snaps.append(np.asarray(state[0]))
            snap_sweeps.append(done)
            if not chunk.warmup and "node" in carry:
                add = {"node": carry["node"].sum(0), "edge": carry["edge"].sum(0)}
                moments = add if moments is None else {k: moments[k] + add[k] for k in add}
            bar.update(chunk.sweeps)
            if describe is not None:
                bar.set_postfix_str(describe(rec), refresh=False)
    finally:
        bar.close()
    return ChunkResults(
        {k: np.concatenate([r[k] for r in records], axis=1) for k in records[0]},
        np.concatenate(sweeps), np.concatenate(warm), np.asarray(state),
        np.stack(snaps), np.asarray(snap_sweeps),
        None if moments is None else {k: np.asarray(v) for k, v in moments.items()},
        seconds,
    )


def _keys(base, chunk: int, chains: int):
    return jax.random.split(jax.random.fold_in(base, chunk), chains)
