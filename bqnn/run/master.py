"""The search loop on rank 0: strategy, reward cache, dispatch, rewards, checkpoints.

Run through `python -m bqnn.search` (search.py decides the roles). The loop
does not know how candidates are trained: an `Executor` (run/executor.py) takes tasks
and hands back finished ones: `InlineExecutor` trains in this process (world size 1),
mpi/manager.py's `MPIExecutor` sends them to worker ranks. No torch, no MPI.

Per iteration i (batch dispatch, the paper's):
  1. the strategy proposes `blocks_per_iteration` blocks (PNAS: a round of its own
     size); each gets the next candidate id, its canonical hash, its block number N
     under the limits (blocks/budget.py) and its analytic params/FLOPs/density;
  2. a block over the limits even at N = 1 is recorded as rejected, never trained;
     a block whose hash is in the reward cache is answered from it (a repeat);
     a block whose hash is already being trained waits for that result; any
     other block is submitted;
  2b. with pruning on (`[pruning]`, run/pruning.py), a candidate that reports a rung below the rule's cut-off
     is stopped there and recorded as pruned, its reward from its rung accuracy (or a failure's);
  3. when all results of i are in, the strategy observes every candidate in id
     order (repeats included), then ends the iteration (replay); the state is
     checkpointed as below.
A finished result is in search.h5 at most `checkpoint_interval` seconds (default 1) after it
arrives: rank 0 writes as soon as there are unsaved records and the last write is that old, so a
worker lost to the OOM killer or a node failure costs only the candidates in flight, results that
arrive seconds apart are each written at once, and sub-second iterations are written together.
Checkpoints are also written on SIGTERM/SIGUSR1/SIGINT and at the end; the candidates of the current
iteration that are not finished are stored as in flight and trained again on resume, so
an interrupted search continues with exactly the blocks and Q-table of an
uninterrupted one.
"""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..blocks import budget
from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, from_array, to_array
from ..blocks.graph import graph
from ..blocks.reward import reward as compute_reward
from ..config import Config, to_json
from ..data.shapes import dataset_shape
from ..signals import StopFlag, Stopped
from ..strategies import Strategy, make_strategy
from ..training.result import Status, candidate_seed, clip_text
from . import checkpoint, progress
from .candidates import CandidateTable, candidate_dtype
from .executor import Done, Executor, Task
from .pruning import Pruner, rung_row

# The longest rank 0 blocks waiting for results when nothing is due (seconds): stop flags are seen this often.
WAIT = 1.0


class Master:
    def __init__(self, cfg: Config, out: str | Path, executor: Executor, stop: StopFlag,
                 log: Callable[[str], None] = print, state: checkpoint.SearchState | None = None,
                 main_is_bad: bool = False) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.executor = executor
        self.stop = stop
        self.log = log
        self.strategy: Strategy = make_strategy(cfg)
        self.total = self.strategy.total_iterations
        self.n = cfg.search.blocks_per_iteration
        self.max_index = cfg.space.max_index
        self.in_channels, self.size, self.num_classes = dataset_shape(cfg.data)
        self.records = CandidateTable(candidate_dtype(self.max_index))
        self.pruner = Pruner(cfg.pruning)
        if self.pruner.enabled:
            executor.decide = self._decide
        self.cache: dict[str, int] = {}  # hash -> id of the record that answers it
        self.metrics: dict[str, tuple[int, int, float, int]] = {}  # hash -> (params, flops, density, blocks)
        self.iteration = 0
        self.next_id = 0
        self.elapsed_before = 0.0
        self.cpu_before = 0.0
        self.cpu_start = time.process_time()
        self.runs = 0
        self.util_before: dict[int, tuple[float, float]] = {}
        # Iteration i holds the candidate ids starts[i] .. starts[i] + sizes[i] - 1, in proposal order.
        self.sizes: list[int] = []
        self.starts: list[int] = []
        self.tasks: dict[int, Task] = {}  # proposed candidates of the iterations not yet complete
        self.running: set[str] = set()  # hashes being trained
        self.waiting: dict[str, list[Task]] = {}  # hash -> candidates waiting for that training
        self.resume_inflight: list[Task] = []
        self.t_start = time.perf_counter()
        self.t_iteration = self.t_start
        self.last_save = time.perf_counter()
        self.unsaved = 0  # records added since the last checkpoint
        # resumed from search.h5.bak because search.h5 was bad: the first save must not make the bad file the backup
        self.backup_next_save = not main_is_bad
        if state is not None:
            self._restore(state)
        self.runs += 1

    # ----------------------------------------------------------- bookkeeping
    def _metrics(self, nsc: NSC, h: str) -> tuple[int, int, float, int]:
        if h not in self.metrics:
            n, cost = budget.fit(nsc, self.cfg.network, self.cfg.limits, self.in_channels, self.size,
                                 self.num_classes)
            self.metrics[h] = (cost.params, cost.flops, graph(nsc).density, n)
        return self.metrics[h]

    def _task(self, nsc: NSC, iteration: int, epsilon: float, cid: int | None = None) -> Task:
        if cid is None:
            cid, self.next_id = self.next_id, self.next_id + 1
        h = canonical_hash(nsc)
        return Task(cid, iteration, epsilon, nsc, h, candidate_seed(self.cfg.search.seed, h), self._metrics(nsc, h)[3])

    def _new_iteration(self, size: int) -> None:
        self.starts.append(self.next_id)
        self.sizes.append(size)

    def _ids(self, it: int) -> range:
        return range(self.starts[it], self.starts[it] + self.sizes[it])

    def _record(self, task: Task, status: int, accuracy: float, seconds: float, epochs: int, restarts: int,
                rank: int, message: str, repeat: bool, rungs: np.ndarray | list[float] | None = None) -> None:
        """Add the candidate's record to the table, its reward computed here (eq. 7)."""
        params, flops, density, n = self._metrics(task.nsc, task.hash)
        scored = status == Status.OK or (status == Status.PRUNED and self.cfg.pruning.reward == "rung")
        acc_for_reward = accuracy if scored else self.cfg.reward.failure_accuracy
        self.records.add(
            id=task.id, iteration=task.iteration, rank=rank, nsc=to_array(task.nsc, self.max_index),
            hash=task.hash.encode(), status=status, repeat=int(repeat), accuracy=accuracy,
            reward=compute_reward(acc_for_reward, flops, density, self.cfg.reward), flops=flops, params=params,
            density=density, blocks=n, seconds=seconds, epochs=epochs, restarts=restarts, epsilon=task.epsilon,
            message=clip_text(message), rungs=rungs if isinstance(rungs, np.ndarray) else rung_row(rungs or []))
        self.unsaved += 1

    def _record_repeat(self, task: Task, source_id: int) -> None:
        src = self.records[source_id]
        self._record(task, int(src["status"]), float(src["accuracy"]), 0.0, int(src["epochs"]),
                     int(src["restarts"]), -1, src["message"].decode("utf-8", "replace"), True, src["rungs"].copy())

    def _decide(self, task: Task, epoch: int, accuracy: float) -> bool:
        """Stop `task` at the rung after `epoch` epochs? Batch dispatch compares it with the candidates of the earlier
        iterations only (fixed while this one runs, so the decision does not depend on finishing order); async with
        every candidate recorded so far (run/pruning.py)."""
        rows = self.records.array()
        if self.cfg.search.dispatch == "async":
            return self.pruner.prune(epoch, accuracy, ("async", len(rows)),
                                     lambda: rows[rows["repeat"] == 0]["rungs"])
        return self.pruner.prune(epoch, accuracy, ("batch", task.iteration),
                                 lambda: rows[(rows["repeat"] == 0) & (rows["iteration"] < task.iteration)]["rungs"])

    def _reward_of(self, cid: int) -> float:
        return float(self.records[cid]["reward"])

    # ------------------------------------------------------------ the loop
    def run(self) -> int:
        """Run to the end or to a stop signal; returns the process exit code."""
        if not checkpoint.exists(self.out):  # a new search: its directory must take a checkpoint before any training
            self._check_space()
            self.save()
        try:
            self._loop()
        except Stopped:
            pass
        if self.stop.signum is not None:
            self.save()
            self.log(f"stopped by signal {signal.Signals(self.stop.signum).name}: checkpoint written at "
                     f"iteration {min(self.iteration + 1, self.total)}/{self.total}, {len(self.records)} candidates "
                     f"done; run the same command to resume")
            return self.stop.exit_code
        self.save()
        self._final_summary()
        return 0

    def _loop(self) -> None:
        asynchronous = self.cfg.search.dispatch == "async"
        for task in self.resume_inflight:  # candidates proposed before the stop and not finished
            self._dispatch(task, asynchronous)
        self.resume_inflight = []
        while self.iteration < self.total:
            if self.stop.signum is not None:
                raise Stopped(self.stop.signum)
            self._propose(asynchronous)
            finished = self.executor.wait(timeout=self._wait_timeout())
            if asynchronous and finished:  # feed the workers that just finished before the Q-updates:
                self._propose(asynchronous)  # they would otherwise wait for them (docs/choices.md)
            for done in finished:
                self._on_result(done, asynchronous)
            while self.iteration < self.total and self._iteration_complete(self.iteration):
                self._complete_iteration(self.iteration, asynchronous)
            if self.unsaved and time.perf_counter() - self.last_save >= self.cfg.search.checkpoint_interval:
                self.save()

    def _wait_timeout(self) -> float:
        """How long the executor may block: until the unsaved records are due, at most WAIT."""
        if not self.unsaved:
            return WAIT
        due = self.last_save + self.cfg.search.checkpoint_interval - time.perf_counter()
        return min(WAIT, max(0.0, due))

    def _propose(self, asynchronous: bool) -> None:
        """batch: the whole current iteration at once, after the previous one is complete.
        async: one block at a time, whenever a worker would otherwise idle, from whatever
        iteration comes next, sampled with the Q-table as it is now."""
        if not asynchronous:
            if len(self.sizes) == self.iteration:  # not proposed yet
                eps = self.strategy.epsilon(self.iteration)
                blocks = self.strategy.propose(self.iteration, self.n)
                self._new_iteration(len(blocks))
                for nsc in blocks:
                    self._dispatch(self._task(nsc, self.iteration, eps), asynchronous)
            return
        while self.executor.idle_slots() > 0:  # async: fixed-size iterations (config.check)
            if not self.sizes or self.next_id == self.starts[-1] + self.sizes[-1]:
                if len(self.sizes) == self.total:
                    return
                self._new_iteration(self.n)
            it = len(self.sizes) - 1
            (nsc,) = self.strategy.propose(it, 1)
            self._dispatch(self._task(nsc, it, self.strategy.epsilon(it)), asynchronous)

    def _dispatch(self, task: Task, asynchronous: bool) -> None:
        self.tasks[task.id] = task
        if task.hash in self.cache:  # trained before: answered from the reward cache
            self._record_repeat(task, self.cache[task.hash])
            self._finish(task, asynchronous)
        elif task.hash in self.running:  # being trained right now: wait for that result
            self.waiting.setdefault(task.hash, []).append(task)
        elif not task.blocks_per_stage:  # over the limits even at N = 1: recorded and cached like a failure
            self.cache[task.hash] = task.id
            self._record(task, int(Status.REJECTED), 0.0, 0.0, 0, 0, -1,
                         budget.rejection(self.cfg.limits, self.cfg.network), False)
            self._finish(task, asynchronous)
        else:
            self.running.add(task.hash)
            self.executor.submit(task)

    def _on_result(self, done: Done, asynchronous: bool) -> None:
        r, t = done.result, done.task
        self.running.discard(t.hash)
        self.cache[t.hash] = t.id
        self._record(t, int(r.status), r.accuracy, r.seconds, r.epochs, r.restarts, done.rank, r.message, False,
                     r.rungs)
        self._finish(t, asynchronous)
        for dup in self.waiting.pop(t.hash, []):
            self._record_repeat(dup, t.id)
            self._finish(dup, asynchronous)

    def _finish(self, task: Task, asynchronous: bool) -> None:
        """The candidate's record is in the table."""
        if asynchronous:  # async: the Q-update as the result arrives
            self.strategy.observe(task.nsc, self._reward_of(task.id))

    def _iteration_complete(self, it: int) -> bool:
        if it >= len(self.sizes):
            return False
        ids = self._ids(it)
        return self.next_id >= ids.stop and all(i in self.records for i in ids)

    def _complete_iteration(self, it: int, asynchronous: bool) -> None:
        ids = self._ids(it)
        if not asynchronous:  # batch: the Q-updates in candidate-id order, whatever the completion order
            for i in ids:
                self.strategy.observe(self.tasks[i].nsc, self._reward_of(i))
        self.strategy.end_iteration(it)
        for i in ids:
            self.tasks.pop(i, None)
        self.iteration += 1
        self.unsaved += 1  # the iteration's Q-updates are state too
        rewards = [self._reward_of(i) for i in ids] or [float("nan")]
        now = time.perf_counter()
        self._progress(it, self.strategy.epsilon(it), rewards, now - self.t_iteration)
        self.t_iteration = now

    # --------------------------------------------------------------- output
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def _progress(self, it: int, eps: float, rewards: list[float], seconds: float) -> None:
        elapsed = self.elapsed()
        eta = elapsed / self.iteration * (self.total - self.iteration) if self.iteration else 0.0
        self.log(progress.iteration_line(it, self.total, eps, rewards, self.records.array(),
                                         self.strategy.planned_candidates(self.n), seconds, elapsed, eta,
                                         self.strategy.note(it)))
        sys.stdout.flush()

    def _final_summary(self) -> None:
        for line in progress.final_lines(self.records.array(), self.max_index, self.elapsed(),
                                         self.out / checkpoint.FILENAME, self.out):
            self.log(line)

    # ----------------------------------------------------------- checkpoint
    def state(self) -> checkpoint.SearchState:
        candidates = self.records.array()
        inflight = sorted((t for t in self.tasks.values() if t.id not in self.records), key=lambda t: t.id)
        arrays, attrs = self.strategy.state()
        util = dict(self.util_before)  # ranks of earlier runs, possibly another world size
        for r, b, i in zip(*(a.tolist() for a in self.executor.utilization()), strict=True):
            pb, pi = util.get(r, (0.0, 0.0))
            util[r] = (pb + b, pi + i)
        ranks = sorted(util)
        return checkpoint.SearchState(
            config_json=to_json(self.cfg),
            max_index=self.max_index,
            strategy=self.strategy.name,
            iteration=self.iteration,
            iterations_total=self.total,
            next_id=self.next_id,
            elapsed=self.elapsed(),
            master_cpu=self.cpu_before + time.process_time() - self.cpu_start,
            runs=self.runs,
            world_size=self.executor.world_size,
            candidates=candidates,
            cache_hash=np.array([h.encode() for h in self.cache], dtype="S16"),
            cache_id=np.array(list(self.cache.values()), dtype=np.int64),
            inflight_id=np.array([t.id for t in inflight], dtype=np.int64),
            inflight_iteration=np.array([t.iteration for t in inflight], dtype=np.int32),
            inflight_epsilon=np.array([t.epsilon for t in inflight], dtype=np.float64),
            inflight_nsc=(np.stack([to_array(t.nsc, self.max_index) for t in inflight]) if inflight
                          else np.zeros((0, self.max_index, 5), np.int16)),
            strategy_arrays=arrays,
            strategy_attrs=attrs,
            util_rank=np.array(ranks, dtype=np.int32),
            util_busy=np.array([util[r][0] for r in ranks], dtype=np.float64),
            util_idle=np.array([util[r][1] for r in ranks], dtype=np.float64),
            iteration_sizes=np.array(self.sizes, dtype=np.int64),
        )

    def _check_space(self) -> None:
        """Warn (once, before training) when the directory lacks room for the whole search's checkpoints."""
        free, need = checkpoint.space(self.out, self.state(), self.strategy.planned_candidates(self.n))
        if free < need:
            print(f"warning: {self.out} has {free:,} bytes free; this search's checkpoints will need about "
                  f"{need:,} (search.h5, its .bak and the next one being written)", file=sys.stderr, flush=True)

    def save(self) -> None:
        """Checkpoint now; a write that fails raises checkpoint.CheckpointWriteError (one line)."""
        checkpoint.save(self.out, self.state(), backup=self.backup_next_save)
        self.backup_next_save = True
        self.last_save = time.perf_counter()
        self.unsaved = 0

    def _restore(self, s: checkpoint.SearchState) -> None:
        self.iteration, self.next_id, self.elapsed_before, self.runs = s.iteration, s.next_id, s.elapsed, s.runs
        self.cpu_before = s.master_cpu
        self.strategy.load_state(s.strategy_arrays, s.strategy_attrs)
        self.records.load(s.candidates)
        for row in s.candidates:
            self.metrics[row["hash"].decode()] = (int(row["params"]), int(row["flops"]), float(row["density"]),
                                                  int(row["blocks"]))
        sizes = s.iteration_sizes.tolist()
        if not sizes and s.next_id:  # schema 1: every iteration had blocks_per_iteration candidates
            sizes = [self.n] * -(-s.next_id // self.n)
        start = 0
        for size in sizes:
            self.starts.append(start)
            self.sizes.append(size)
            start += size
        for h, cid in zip(s.cache_hash.tolist(), s.cache_id.tolist(), strict=True):
            self.cache[h.decode()] = int(cid)
        self.util_before = {int(r): (float(b), float(i))
                            for r, b, i in zip(s.util_rank, s.util_busy, s.util_idle, strict=True)}
        # The iterations in progress: finished candidates are in the history, the others were in flight.
        first = self.starts[self.iteration] if self.iteration < len(self.starts) else s.next_id
        for row in s.candidates:
            if int(row["id"]) >= first:
                t = self._task(from_array(row["nsc"], self.max_index), int(row["iteration"]), float(row["epsilon"]),
                               int(row["id"]))
                self.tasks[t.id] = t
        for cid, i, e, n in zip(s.inflight_id, s.inflight_iteration, s.inflight_epsilon, s.inflight_nsc, strict=True):
            t = self._task(from_array(n, self.max_index), int(i), float(e), int(cid))
            self.tasks[t.id] = t
            self.resume_inflight.append(t)
