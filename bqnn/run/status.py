"""The live status of a search: what each rank is doing, the counts, this run's pace and the ETA, in
DIR/status.json (docs/status.md describes every key).

Written by rank 0: a thread of its own replaces the file every `EVERY` seconds (write to a temporary name, then
rename: a reader never sees half a file; not fsynced: it is a view of the search, not its state, and a checkpoint
never waits for it). Read by `python -m bqnn.status DIR` (bqnn/status.py), the dashboard and the report:

    writer = StatusWriter(out, lambda: build(loop))   # started by the loop; .close("finished") at the end
    doc = read(out)                                   # the last status written, or None
    running, why = alive(out)                         # is a search running in `out` now?

The ETA comes from this run's pace only (trainings finished per second since this run's first one, so an earlier
run's pace on other hardware does not mislead a resumed one) and from the share of this run's candidates that
needed a training (repeats answered from the reward cache cost nothing). No torch, no MPI.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from ..training.result import Status
from .executor import Executor
from .lock import LOCKNAME, parse, stale_reason

FILENAME = "status.json"
EVERY = 2.0  # seconds between writes
FORMAT = "bqnn-status"


class Pace:
    """This run's candidates and trainings, for the ETA."""

    def __init__(self) -> None:
        self.recorded = 0  # candidates recorded in this run (repeats included)
        self.trained = 0  # of which were trainings (not repeats, not rejected over the limits)
        self.first: float | None = None  # when this run's first training ended (perf_counter)
        self.last: float | None = None

    def add(self, repeat: bool, status: int) -> None:
        self.recorded += 1
        if not repeat and status != Status.REJECTED:
            now = time.perf_counter()
            self.trained += 1
            self.first = now if self.first is None else self.first
            self.last = now

    def per_second(self) -> float | None:
        """Trainings finished per second, measured from this run's first to its last (None: too few yet)."""
        if self.first is None or self.last is None or self.trained < 3 or self.last <= self.first:
            return None
        return (self.trained - 1) / (self.last - self.first)

    def eta(self, remaining: int) -> float | None:
        """Seconds until `remaining` more candidates are recorded, at this run's pace and share of trainings."""
        rate = self.per_second()
        if rate is None or self.recorded == 0:
            return None if remaining else 0.0
        return remaining * (self.trained / self.recorded) / rate


class Loop(Protocol):
    """What the status reads of rank 0's loop (run/master.py)."""

    out: Path
    executor: Executor
    iteration: int
    total: int
    next_id: int
    pace: Pace

    def status_counts(self) -> dict[str, Any]: ...


def build(m: Loop, state: str = "running") -> dict[str, Any]:
    """The status document of loop `m` now."""
    counts = m.status_counts()
    remaining = max(0, counts["planned"] - counts["candidates"])
    eta = m.pace.eta(remaining) if state == "running" else 0.0
    rate = m.pace.per_second()
    return {"format": FORMAT, "state": state, "updated": time.time(), "host": socket.gethostname(),
            "pid": os.getpid(), "out": str(m.out), "iteration": m.iteration, "iterations_total": m.total,
            **counts, "queued": m.executor.queued(),
            "trainings_per_hour": None if rate is None else rate * 3600.0, "eta_seconds": eta,
            "ranks": [asdict(r) for r in m.executor.ranks()]}


def write(out: Path, doc: dict[str, Any]) -> None:
    tmp = out / f".{FILENAME}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(doc, allow_nan=False, default=float))
        os.replace(tmp, out / FILENAME)
    except (OSError, ValueError):  # a full disk or a value JSON cannot hold: the next write tries again
        tmp.unlink(missing_ok=True)


class StatusWriter:
    """Replaces DIR/status.json every `every` seconds from a thread; `close(state)` writes the last one."""

    def __init__(self, out: Path, make: Any, every: float = EVERY) -> None:
        self.out, self.make, self.every = Path(out), make, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bqnn-status", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                doc = self.make()
            except RuntimeError:  # the loop changed a table while it was read: the next round reads it again
                continue
            write(self.out, doc)

    def close(self, final: dict[str, Any] | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if final is not None:
            write(self.out, final)


def read(out: str | Path) -> dict[str, Any] | None:
    """The last status written in `out`, or None (no search wrote one, or it is not a status)."""
    try:
        doc = json.loads((Path(out) / FILENAME).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def alive(out: str | Path) -> tuple[bool, str]:
    """Whether a search runs in `out` now, and why bqnn thinks so: its lock is held by a live process (on this host:
    its pid runs; elsewhere: renewed within the stale limit)."""
    try:
        holder = parse((Path(out) / LOCKNAME).read_text())
    except (OSError, ValueError):
        return False, "no search holds its lock"
    why = stale_reason(holder)
    if why is not None:
        return False, f"the lock's holder is gone ({why})"
    return True, f"pid {holder['pid']} on {holder['host']} holds its lock"
