"""Stop signals and exit codes: the one table and the one stop exception every rank and entry point uses.

Used by the entry points (search, train) and the layers they drive:

    stop = StopFlag(); stop.install()        # SIGTERM, SIGUSR1 (SLURM's --signal), SIGINT are recorded
    ...
    stop.restore()                           # the handlers that were there before (library use)
    return stop.exit_code                    # 143 (TERM, USR1), 130 (INT), 0 without a signal

An entry point run as a program calls `hold()` before its heavy imports (numpy, h5py, MPI start-up take a
second or more): a stop signal in that window is held instead of killing the process with status 15, and the
first StopFlag installed afterwards (or a worker, through `held()`) acts on it: the job still exits 143. When its
work is over it calls `ignore()`, so that no signal arriving during the interpreter's teardown changes the exit code.

`Stopped` is raised out of training when the job is stopping: by the handler itself while the flag is
`interruptible` (one process training inline: the checkpoint is written within seconds, not after the
candidate), or by a trainer whose `interrupt` callback says stop (an MPI worker told to STOP). It is a
BaseException so that a trainer's `except Exception` (a failed candidate is a result) never swallows it.
A leaf: imports nothing of bqnn.
"""
from __future__ import annotations

import signal
from types import FrameType
from typing import Any

# Exit code of every rank when a stop signal ends the job.
EXIT_CODES: dict[int, int] = {signal.SIGTERM: 143, signal.SIGUSR1: 143, signal.SIGINT: 130}
STOP_SIGNALS = tuple(EXIT_CODES)

_held: list[int] = []  # stop signals received between hold() and the first StopFlag.install()


def _hold_handler(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)


def hold() -> None:
    """Hold stop signals until a StopFlag is installed (start-up of a program; not for library use)."""
    for s in STOP_SIGNALS:
        signal.signal(s, _hold_handler)


def ignore() -> None:
    """From now on, stop signals do nothing: a program whose work is over (checkpointed, or finished) calls this
    before it ends. Python's own finalization puts back the default action of every signal it handled, which
    kills: a second SIGTERM (the scheduler's warning, then scancel; a second kill; mpiexec forwarding each one)
    arriving then would end the process with status 15 instead of 143 (issue 25). An ignored signal stays ignored."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def held() -> int | None:
    """The first stop signal received while held, if any."""
    return _held[0] if _held else None


def exit_code(signum: int | None) -> int:
    """The exit code for a stop by `signum` (0: no signal)."""
    return 0 if signum is None else EXIT_CODES.get(signum, 143)


class Stopped(BaseException):
    """The job is stopping; `signum` is the signal that stopped it (None: told to stop by another rank)."""

    def __init__(self, signum: int | None = None) -> None:
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """Records the first stop signal. While `interruptible` is set (training in this process) the handler
    raises `Stopped` so that the caller checkpoints at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.interruptible = False
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self.interruptible:
            self.interruptible = False
            raise Stopped(signum)

    def install(self) -> None:
        for s in STOP_SIGNALS:
            self._previous[s] = signal.signal(s, self.handler)
        if self.signum is None and _held:  # arrived during start-up (hold)
            self.signum = _held[0]

    def restore(self) -> None:
        """Put back the handlers `install` replaced (bqnn called from another program)."""
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous.clear()

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)
