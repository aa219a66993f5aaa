"""The search's progress lines: one per iteration, and the summary at the end.

Used by rank 0's loop (run/master.py), which alone prints. A line per iteration has epsilon, the mean
and best reward of the iteration, candidates done / planned, repeats, failures (and rejections over the
limits, candidates pruned), the iteration's seconds, elapsed time and ETA (this run's pace: run/status.py), and
whatever the strategy adds; within an iteration longer than a minute, a line at least every minute says how much
of it is in, the best reward so far and what trains now. Pure formatting.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..blocks.code import format_nsc, from_array
from ..training.result import Status
from .executor import RankState


def fmt_time(seconds: float | None) -> str:
    """h:mm:ss; "-" for a time not known yet (an ETA before this run has a pace)."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def counts(rows: np.ndarray) -> tuple[int, int, int, int, int]:
    """(candidates, repeats, failed, rejected, pruned) of a candidate table."""
    repeats = int(rows["repeat"].sum())
    first = rows[rows["repeat"] == 0]
    rejected = int((first["status"] == Status.REJECTED).sum())
    pruned = int((first["status"] == Status.PRUNED).sum())
    failed = int((first["status"] != Status.OK).sum()) - rejected - pruned
    return len(rows), repeats, failed, rejected, pruned


def iteration_line(it: int, total: int, eps: float, rewards: Sequence[float], rows: np.ndarray, planned: int,
                   seconds: float, elapsed: float, eta: float | None, note: str) -> str:
    done, repeats, failed, rejected, pruned = counts(rows)
    width = len(str(total))
    return (f"iter {it + 1:>{width}}/{total}  eps {eps:.2f}  reward mean {np.mean(rewards):7.2f} "
            f"best {np.max(rewards):7.2f}  | candidates {done}/{planned} "
            f"repeats {repeats} failed {failed}{f' rejected {rejected}' if rejected else ''}"
            f"{f' pruned {pruned}' if pruned else ''}  | {seconds:6.1f}s  "
            f"elapsed {fmt_time(elapsed)}  ETA {fmt_time(eta)}" + (f"  | {note}" if note else ""))


def running_line(it: int, total: int, ids: range, rows: np.ndarray, ranks: Sequence[RankState], elapsed: float,
                 eta: float | None) -> str:
    """A line within a long iteration: how much of it is in, the best reward so far, what is training, the ETA."""
    mine = rows[np.isin(rows["id"], np.array(ids))] if len(ids) else rows[:0]
    trained = int((mine["repeat"] == 0).sum())
    training = [r for r in ranks if r.state == "training"]
    best = f"best so far {rows['reward'].max():.2f}" if len(rows) else "nothing recorded yet"
    width = len(str(total))
    return (f"  .. iter {it + 1:>{width}}/{total}: {len(mine)} of {len(ids)} candidates in ({trained} trained, "
            f"{len(mine) - trained} from the cache), {len(training)} training now; {best}  | "
            f"elapsed {fmt_time(elapsed)}  ETA {fmt_time(eta)}")


def final_lines(rows: np.ndarray, max_index: int, elapsed: float, results: Path, out: Path) -> list[str]:
    """The best block found and where the results are; nothing for an empty table."""
    if not len(rows):
        return []
    best = rows[int(np.argmax(rows["reward"]))]
    nsc = from_array(best["nsc"], max_index)
    return [f"done: {len(rows)} candidates in {fmt_time(elapsed)}; best reward "
            f"{best['reward']:.2f} (accuracy {best['accuracy']:.2f} %): {format_nsc(nsc)}",
            f"results: {results}; summary: python -m bqnn.report {out}"]
