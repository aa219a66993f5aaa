"""How many torch threads a CPU-training process gives its next candidate: the cores it may use less what other
processes use now (`trainer.threads = 0`, the default).

    share = CoreShare(upper=torch.get_num_threads())   # once, when the trainer is made (its static share)
    torch.set_num_threads(share.next())                 # before each candidate

The static share (training/device.py: the cores srun bound the task to, else the node's cores divided among its
workers) is the upper bound. Over the last interval (the previous candidate, or the data loading before the first),
the non-idle time of the CPUs this process may run on (/proc/stat, per CPU) less this process's own CPU time is what
the others used; the cores left free, rounded, is the thread count, at least 1. Measured on a 2-core machine
(bench/README.md, "Threads"): beside one busy process, two threads made the demo's first iteration 2.4 times slower
than alone (their OpenMP barriers wait for a thread the neighbour holds off its core), one thread was as fast as
alone; with the machine to itself, two threads are faster by a third. When the neighbour leaves, the next candidate
takes the freed core again.

A different thread count sums some gradients in another order: the rewards of a rerun can differ in their last
digits. `trainer.threads = N` fixes the count (and `trainer.deterministic = true` fixes it at the static share).
Without /proc/stat (not Linux) the count is the static share.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
MIN_INTERVAL = 0.05  # seconds: a shorter window measures clock ticks, not load


def busy_seconds(cpus: set[int], stat: Path = PROC_STAT) -> float | None:
    """Non-idle seconds of `cpus` since boot (user, nice, system, irq, softirq, steal); None if unreadable."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    seen = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        if len(fields) < 8:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        total += user + nice + system + irq + softirq + steal
        seen += 1
    return total / tick if seen else None


def own_seconds() -> float:
    """CPU seconds this process has used, every thread."""
    t = os.times()
    return t.user + t.system


def threads_for(cores: int, others: float, upper: int) -> int:
    """The cores `others` (a load in cores) leave free, rounded, within 1..upper."""
    return max(1, min(upper, int(cores - others + 0.5)))


class CoreShare:
    def __init__(self, upper: int, cpus: set[int] | None = None, stat: Path = PROC_STAT) -> None:
        self.upper = max(1, upper)
        self.cpus = set(cpus if cpus is not None else os.sched_getaffinity(0))
        self.stat = stat
        self.others = 0.0  # the load of the other processes over the last interval, in cores
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        busy = busy_seconds(self.cpus, self.stat)
        return None if busy is None else (busy, own_seconds(), time.monotonic())

    def next(self) -> int:
        """The thread count for the candidate that starts now."""
        now = self._sample()
        if now is None or self._last is None:
            return self.upper
        busy0, own0, t0 = self._last
        busy1, own1, t1 = now
        if t1 - t0 < MIN_INTERVAL:
            return threads_for(len(self.cpus), self.others, self.upper)
        self._last = now
        self.others = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))
        return threads_for(len(self.cpus), self.others, self.upper)
