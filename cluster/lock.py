"""One run per workdir (`train`, checkpointed `run`): an exclusive `fcntl.flock` on `workdir/.lock`.

The kernel drops a flock when its holder dies, also on SIGKILL, so a crashed run never leaves
the workdir locked; the file only records the holder's PID for the error message.
"""

from __future__ import annotations

import fcntl
import os
import pathlib

from .config_file import ConfigError


class WorkdirBusyError(ConfigError):
    """Another process runs in this workdir."""


class WorkdirLock:
    """Hold the workdir's lock from `acquire` until `release` (or the process's end).

    **Arguments:**

    - `workdir`: the run's workdir (must exist).
    """

    def __init__(self, workdir: pathlib.Path):
        self.path = pathlib.Path(workdir) / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `WorkdirBusyError` at once, naming the holder's PID."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkdirBusyError(f"{self.path.parent} is in use by another run (PID {holder}); "
                                   "wait for it or stop it, or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the PID left behind is harmless
            self.fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
