"""Graceful stops: SIGTERM and SIGINT become a `Stopped` exception at a safe point of the loop.

A signal that arrives while stops are held (start-up, a checkpoint save) is remembered and
raised when the hold ends, so a save is never cut in half and start-up never dies mid-import.
`Stopped` derives from `BaseException`: handlers of ordinary errors (a failed save) cannot
swallow it. Python runs a signal handler wherever the main thread is, also inside a garbage
collector callback or a `__del__`, where a raised exception is only reported as "unraisable" and
dropped; the handler's `sys.unraisablehook` turns such a lost stop into a pending one, which the
next `check` (a safe point of a loop) raises.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A stop signal arrived; `signum` says which, `exit_code` is the shell's 128 + signum.

    **Arguments:**

    - `signum`: the signal's number.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """The process's SIGTERM/SIGINT handler with a hold count (one instance: `STOPS`)."""

    def __init__(self):
        self.pending: int | None = None
        self.holds = 0
        self.installed = False
        self.previous: dict = {}
        self.previous_unraisable = None

    def _handler(self, signum, frame):
        if self.holds:
            self.pending = self.pending or signum  # the first one decides the exit code
            return
        raise Stopped(signum)

    def install(self) -> bool:
        """Install the handler (main thread only; idempotent). Returns True if done here."""
        if self.installed or threading.current_thread() is not threading.main_thread():
            return False
        self.previous = {s: signal.signal(s, self._handler) for s in SIGNALS}
        self.previous_unraisable, sys.unraisablehook = sys.unraisablehook, self._unraisable
        self.installed = True
        return True

    def uninstall(self) -> None:
        """Restore the handlers that `install` replaced."""
        if self.installed:
            for s, handler in self.previous.items():
                signal.signal(s, handler if handler is not None else signal.SIG_DFL)
            sys.unraisablehook = self.previous_unraisable
            self.installed = False
        self.pending, self.holds = None, 0

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, Stopped):
            self.pending = self.pending or unraisable.exc_value.signum
        else:
            self.previous_unraisable(unraisable)

    def check(self) -> None:
        """A safe point: raise `Stopped` for a stop that is pending and not held (one whose
        exception was dropped where Python could not raise it)."""
        if not self.holds and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Stopped(signum)

    def hold(self) -> None:
        """Defer stop signals until the matching `release`."""
        self.holds += 1

    def release(self) -> None:
        """End one hold; raise `Stopped` now if a signal came during the last one."""
        self.holds = max(0, self.holds - 1)
        self.check()

    @contextlib.contextmanager
    def for_a_run(self):
        """`with STOPS.for_a_run():` around a run: installs the handler (unless the CLI already
        did) and holds stops through start-up, until the run's loop calls `release`; on exit
        restores the handlers this installed, or drops the holds the run left."""
        installed_here = self.install()
        self.hold()
        try:
            yield
        finally:
            if installed_here:
                self.uninstall()
            else:
                self.holds = 0

    @contextlib.contextmanager
    def held(self):
        """`with STOPS.held():` defers stop signals inside and raises a pending one at its end."""
        self.hold()
        try:
            yield
        except BaseException:
            self.holds = max(0, self.holds - 1)  # already unwinding: a pending stop waits for the next release
            raise
        self.release()


STOPS = StopSignals()
