"""Orbax checkpoints of a long job (`train`, `run`): one directory per step, saved atomically,
the last K kept.

Each step directory holds two Orbax items: `state` (a pytree of arrays: a training run's
parameters, optimizer state, chains and key; a sampling run's chains and what it recorded) and
`meta` (JSON: step, config, a SHA-256 of the state's bytes and one of the metadata itself, whose
step must match the directory's).
Orbax writes into a temporary directory and renames it when complete, so a crash mid-save leaves
no step directory that lists as finished; the checksums catch a finished directory damaged
afterwards (truncated or edited files), and restore then falls back to the previous step with a
warning.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from distthrml.errors import DistThrmlError


class CheckpointError(DistThrmlError):
    """A checkpoint could not be written or none could be read."""


def tree_checksum(tree) -> str:
    """SHA-256 over the leaves' dtypes, shapes and bytes, in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def meta_checksum(meta: dict) -> str:
    """SHA-256 of the metadata (every key but `meta_checksum` itself), as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != "meta_checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def meta_problem(meta, step: int | None) -> str | None:
    """Why `meta` cannot be trusted (edited, or for another step than its directory's), or None.

    **Arguments:**

    - `meta`: the `meta` item as read.
    - `step`: the step its directory is named after, or None (a copy with another name).
    """
    if not isinstance(meta, dict) or meta.get("meta_checksum") != meta_checksum(meta):
        return "its metadata does not match the recorded checksum"
    if step is not None and meta.get("step") != step:
        return f"its metadata says step {meta.get('step')!r}, its directory step {step}"
    return None


def _dir_step(path: pathlib.Path) -> int | None:
    return int(path.name) if path.name.isdigit() else None


def _this_process_only() -> ocp.options.MultiprocessingOptions:
    """Orbax options for I/O by this process alone: in a multi-process run only process 0 saves
    and restores (the others get its choice by broadcast), so Orbax must not wait for them."""
    return ocp.options.MultiprocessingOptions(
        primary_host=jax.process_index(),
        active_processes={jax.process_index()} if jax.process_count() > 1 else None,
    )


def _restore_args(target) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())


def read_checkpoint_dir(path: str | pathlib.Path, target) -> tuple[dict, dict]:
    """Read one step directory (of this store, or a copy of one, e.g. a Ray Train checkpoint).

    **Arguments:**

    - `path`: the step directory.
    - `target`: a pytree of arrays with the state's structure, shapes and dtypes.

    **Returns:** `(state, meta)` with numpy leaves; raises `CheckpointError` if unreadable or if
    the state does not match its recorded checksum.
    """
    path = pathlib.Path(path)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler(), multiprocessing_options=_this_process_only()) as ckptr:
            out = ckptr.restore(path, args=_restore_args(target))
        state, meta = jax.tree.map(np.asarray, out["state"]), out["meta"]
    except Exception as err:  # Orbax raises many types for damaged files
        raise CheckpointError(f"checkpoint {path} is unreadable: {type(err).__name__}: {err}") from err
    problem = meta_problem(meta, _dir_step(path))
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: {problem}")
    if meta.get("checksum") != tree_checksum(state):
        raise CheckpointError(f"checkpoint {path} is corrupt: its state does not match the recorded checksum")
    return state, meta


class CheckpointStore:
    """The `checkpoints/` folder of a workdir.

    **Arguments:**

    - `directory`: where step directories go.
    - `keep_last`: how many of the latest checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, keep_last: int):
        self.directory = pathlib.Path(directory).absolute()
        # created here: Orbax refuses create=True when only some processes take part
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep_last,
            create=False,
            # synchronous: "saved" must mean on disk before training continues or the process exits
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
            multiprocessing_options=_this_process_only(),
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        """Finished checkpoints' steps, ascending (unfinished temporary directories never count)."""
        return sorted(self.manager.all_steps())

    def step_dir(self, step: int) -> pathlib.Path:
        return self.directory / str(step)

    def latest_meta(self) -> dict | None:
        """The newest readable and intact `meta` item (for the config check), or None."""
        for step in reversed(self.steps()):
            try:
                meta = json.loads((self.step_dir(step) / "meta" / "metadata").read_text())
            except (OSError, ValueError):
                continue
            if meta_problem(meta, step) is None:
                return meta
        return None

    def save(self, step: int, state, meta: dict) -> pathlib.Path:
        """Save `state` (a pytree of arrays) and `meta` as checkpoint `step`; atomic.

        **Arguments:**

        - `step`: the number of finished training steps.
        - `state`: parameters, optimizer state, chains, key (numpy or jax arrays).
        - `meta`: JSON-able metadata; a checksum of `state` is added.
        """
        state = jax.tree.map(np.asarray, state)
        meta = dict(meta, checksum=tree_checksum(state))
        meta["meta_checksum"] = meta_checksum(meta)
        previous = self.steps()
        try:
            self.manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True
            )
            self.manager.wait_until_finished()
        except Exception as err:
            kept = f"the previous checkpoint (step {previous[-1]}) is intact" if previous else "no earlier checkpoint exists"
            raise CheckpointError(f"saving checkpoint step {step} in {self.directory} failed ({type(err).__name__}: {err}); {kept}") from err
        return self.step_dir(step)

    def restore_latest(self, target) -> tuple[dict, dict] | None:
        """The newest checkpoint that reads back and matches its checksum; older ones are tried
        (with a warning naming the skipped one) when the newest is damaged, and the damaged ones are
        moved to `corrupt-checkpoints/` beside this folder. None if there is none.

        **Arguments:**

        - `target`: a pytree with the state's structure, shapes and dtypes.
        """
        steps = self.steps()
        for step in reversed(steps):
            try:
                restored = read_checkpoint_dir(self.step_dir(step), target)
            except CheckpointError as err:
                warnings.warn(f"skipping checkpoint step {step}: {err}", stacklevel=2)
                continue
            self._quarantine([s for s in steps if s > step])
            return restored
        if steps:
            raise CheckpointError(f"no readable checkpoint in {self.directory} (tried steps {steps})")
        return None

    def _quarantine(self, steps: list[int]) -> None:
        # damaged checkpoints move out of the way (the run will write these steps again), kept for inspection
        if not steps:
            return
        dest = self.directory.parent / "corrupt-checkpoints"
        dest.mkdir(exist_ok=True)
        for step in steps:
            n = 0
            while (dest / f"{step}-{n}").exists():
                n += 1
            shutil.move(str(self.step_dir(step)), str(dest / f"{step}-{n}"))
        self.manager.reload()

    def close(self) -> None:
        self.manager.close()


def newest_checkpoint(store: CheckpointStore | None, other: str | pathlib.Path | None,
                      target) -> tuple[dict, dict, pathlib.Path] | None:
    """The newest intact checkpoint of two sources: the workdir's store and another step
    directory (the copy Ray Train hands a restarted worker group, which lags the workdir when a
    worker dies between a save and its report, and leads it when the workdir is lost).

    **Arguments:**

    - `store`: the workdir's checkpoints, or None.
    - `other`: a step directory, or None.
    - `target`: a pytree with the state's structure, shapes and dtypes.

    **Returns:** `(state, meta, path)` of the newer one (the workdir's on a tie), or None if
    neither source holds a checkpoint; raises `CheckpointError` if checkpoints exist but none is
    readable.
    """
    found, errors = [], []
    if other is not None:
        try:
            state, meta = read_checkpoint_dir(other, target)
            found.append((int(meta["step"]), 0, state, meta, pathlib.Path(other)))
        except CheckpointError as err:
            warnings.warn(f"skipping the handed-over checkpoint: {err}", stacklevel=2)
            errors.append(err)
    if store is not None:
        try:
            restored = store.restore_latest(target)
        except CheckpointError as err:
            errors.append(err)
            restored = None
        if restored is not None:
            state, meta = restored
            found.append((int(meta["step"]), 1, state, meta, store.step_dir(int(meta["step"]))))
    if not found:
        if errors:
            raise CheckpointError("; ".join(str(e) for e in errors))
        return None
    _, _, state, meta, path = max(found, key=lambda f: f[:2])
    return state, meta, path


def move_aside(workdir: pathlib.Path, names: list[str]) -> pathlib.Path:
    """Move earlier outputs of a workdir into `workdir/replaced-N/` (nothing is deleted)."""
    n = 0
    while (workdir / f"replaced-{n}").exists():
        n += 1
    dest = workdir / f"replaced-{n}"
    dest.mkdir()
    for name in names:
        if (workdir / name).exists():
            shutil.move(str(workdir / name), str(dest / name))
    return dest
