"""Waiting for something to happen without spinning a core: the one probe-and-nap schedule of every MPI wait.

Used by rank 0's manager (mpi/manager.py), the workers (mpi/worker.py) and the start-up broadcast
(mpi/launch.py):

    wait = Backoff(first=5e-5, hot=1e-4, idle=1e-2, window=0.2)
    while not probe():
        wait.nap(since=last_traffic)     # short naps while traffic is recent, then doubling up to `idle`
    wait.reset()                         # after traffic: start again from the first nap

MPI's blocking receives spin a core each (MPICH); a node's ranks share cores, so every wait here probes
and sleeps. Right after traffic the next message is likely soon, so naps stay at most `hot` for `window`
seconds after the last traffic; after that they double up to `idle`.
"""
from __future__ import annotations

import time

# Rank 0 keeps the short naps for MASTER_WINDOW seconds after its last message; a worker for WORKER_WINDOW
# after its result (rank 0 answers within a millisecond when it has work; many fast-polling workers on a
# shared node would take the CPU rank 0 needs).
FIRST_NAP, HOT_NAP, IDLE_NAP = 5e-5, 1e-4, 1e-2
MASTER_WINDOW, WORKER_WINDOW = 0.2, 0.002


def next_nap(nap: float, waited: float, window: float, hot: float = HOT_NAP, idle: float = IDLE_NAP) -> float:
    """The nap after `nap`, `waited` seconds after the last traffic."""
    return min(nap * 2, hot if waited < window else idle)


class Backoff:
    def __init__(self, first: float = FIRST_NAP, hot: float = HOT_NAP, idle: float = IDLE_NAP,
                 window: float = 0.0) -> None:
        self.first, self.hot, self.idle, self.window = first, hot, idle, window
        self.current = first

    def reset(self) -> None:
        self.current = self.first

    def nap(self, since: float) -> None:
        """Sleep the current nap, then lengthen it; `since`: perf_counter() of the last traffic."""
        time.sleep(self.current)
        self.current = next_nap(self.current, time.perf_counter() - since, self.window, self.hot, self.idle)


def precise_naps() -> bool:
    """Ask Linux to end this process's sleeps on time: the default timer slack (50 us) lets a 50 us nap
    last 100-150 us, which is most of a task's round trip (bench/mpi.py). A no-op elsewhere; returns
    whether it took effect."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(29, 1, 0, 0, 0) == 0)  # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        return False
