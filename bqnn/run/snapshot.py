"""Rank 0's loop to a SearchState and back: what a checkpoint holds of it, and how a resumed loop is rebuilt.

Used by run/master.py (`take` before every save, `restore` when resuming):

    state = take(master)           # the loop now, as run/state.py's record
    restore(master, state)         # the loop as it was: records, cache, iterations, strategy, clocks, in flight

What is in flight when the state is taken (proposed, not yet recorded) is kept as such and trained again on
resume; the candidates of the iteration in progress that are recorded are rebuilt as tasks, so the iteration
completes as it would have. No torch, no MPI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..blocks.code import NSC, empty_codes, from_array, to_array
from ..config import Config, to_json
from ..strategies import Strategy
from .candidates import CandidateTable
from .costs import Cost, Costs
from .executor import Executor, Task
from .iterations import Iterations
from .pruning import Pruner
from .state import SearchState


@dataclass
class Clock:
    """The search's time: elapsed and rank 0's CPU over every run, runs so far, per-rank utilization of earlier
    runs (their world size may differ), and the current iteration's start."""

    elapsed_before: float = 0.0
    cpu_before: float = 0.0
    runs: int = 0
    util_before: dict[int, tuple[float, float]] = field(default_factory=dict)  # rank -> (busy, idle) seconds
    started: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=time.process_time)
    iteration_started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start

    def lap(self) -> float:
        """Seconds since the last lap (the iteration that just ended)."""
        now = time.perf_counter()
        seconds, self.iteration_started = now - self.iteration_started, now
        return seconds


class Master(Protocol):
    """What a snapshot takes of the loop (run/master.py), and restores."""

    cfg: Config
    strategy: Strategy
    executor: Executor
    records: CandidateTable
    costs: Costs
    pruner: Pruner
    cache: dict[str, int]
    iterations: Iterations
    tasks: dict[int, Task]
    resume_inflight: list[Task]
    clock: Clock
    iteration: int
    next_id: int
    n: int
    total: int
    max_index: int

    def new_task(self, nsc: NSC, iteration: int, epsilon: float, cid: int | None = None) -> Task: ...


def take(m: Master) -> SearchState:
    inflight = sorted((t for t in m.tasks.values() if t.id not in m.records), key=lambda t: t.id)
    arrays, attrs = m.strategy.state()
    util = dict(m.clock.util_before)
    for r, b, i in zip(*(a.tolist() for a in m.executor.utilization()), strict=True):
        pb, pi = util.get(r, (0.0, 0.0))
        util[r] = (pb + b, pi + i)
    ranks = sorted(util)
    return SearchState(
        config_json=to_json(m.cfg), max_index=m.max_index, strategy=m.strategy.name, iteration=m.iteration,
        iterations_total=m.total, next_id=m.next_id, elapsed=m.clock.elapsed(), master_cpu=m.clock.cpu(),
        runs=m.clock.runs, world_size=m.executor.world_size, candidates=m.records.array(),
        cache_hash=np.array([h.encode() for h in m.cache], dtype="S16"),
        cache_id=np.array(list(m.cache.values()), dtype=np.int64),
        inflight_id=np.array([t.id for t in inflight], dtype=np.int64),
        inflight_iteration=np.array([t.iteration for t in inflight], dtype=np.int32),
        inflight_epsilon=np.array([t.epsilon for t in inflight], dtype=np.float64),
        inflight_nsc=(np.stack([to_array(t.nsc, m.max_index) for t in inflight]) if inflight
                      else empty_codes(m.max_index)),
        strategy_arrays=arrays, strategy_attrs=attrs,
        util_rank=np.array(ranks, dtype=np.int32), util_busy=np.array([util[r][0] for r in ranks], dtype=np.float64),
        util_idle=np.array([util[r][1] for r in ranks], dtype=np.float64), iteration_sizes=m.iterations.array())


def restore(m: Master, s: SearchState) -> None:
    m.iteration, m.next_id = s.iteration, s.next_id
    m.clock = Clock(s.elapsed, s.master_cpu, s.runs, {int(r): (float(b), float(i)) for r, b, i in
                                                      zip(s.util_rank, s.util_busy, s.util_idle, strict=True)})
    m.strategy.load_state(s.strategy_arrays, s.strategy_attrs)
    m.records.load(s.candidates)
    for row in s.candidates:
        m.costs.remember(row["hash"].decode(), Cost(int(row["params"]), int(row["flops"]), float(row["density"]),
                                                    int(row["blocks"])))
        if not row["repeat"]:
            m.pruner.record(int(row["iteration"]), row["rungs"])
    sizes = s.iteration_sizes.tolist()
    if not sizes and s.next_id:  # schema 1: every iteration had blocks_per_iteration candidates
        sizes = [m.n] * -(-s.next_id // m.n)
    for size in sizes:
        m.iterations.open(size)
    for h, cid in zip(s.cache_hash.tolist(), s.cache_id.tolist(), strict=True):
        m.cache[h.decode()] = int(cid)
    # The iterations in progress: finished candidates are in the history, the others were in flight.
    first = m.iterations.first_id(m.iteration, s.next_id)
    for row in s.candidates:
        if int(row["id"]) >= first:
            t = m.new_task(from_array(row["nsc"], m.max_index), int(row["iteration"]), float(row["epsilon"]),
                           int(row["id"]))
            m.tasks[t.id] = t
    for cid, i, e, n in zip(s.inflight_id, s.inflight_iteration, s.inflight_epsilon, s.inflight_nsc, strict=True):
        t = m.new_task(from_array(n, m.max_index), int(i), float(e), int(cid))
        m.tasks[t.id] = t
        m.resume_inflight.append(t)
