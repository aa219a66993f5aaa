"""The search loop on rank 0: propose, answer from the cache, dispatch, observe, checkpoint.

Run through `python -m bqnn.search` (search.py decides the roles). The loop does not know how candidates are
trained: an `Executor` (run/executor.py) takes tasks and hands back finished ones: `InlineExecutor` trains in this
process (world size 1), mpi/manager.py's `MPIExecutor` sends them to worker ranks. No torch, no MPI.

Per iteration i (the paper's batch dispatch; run/dispatch.py holds both modes):
  1. propose: the strategy proposes `blocks_per_iteration` blocks (PNAS: a round of its own size); each gets the
     next candidate id, its canonical hash, and its block number N and costs under the limits (run/costs.py);
  2. dispatch: a block over the limits even at N = 1 is recorded as rejected, never trained; a block whose hash
     is in the reward cache is answered from it (a repeat); a block whose hash is being trained waits for that
     result; any other block goes to the executor. With pruning on, the rule (run/pruning.py) may stop a candidate
     at a rung; it is recorded as pruned, its reward from its rung accuracy (or a failure's);
  3. observe: when all results of i are in, the strategy observes every candidate in id order (repeats
     included), then ends the iteration (replay); the state is checkpointed as below.
A finished result is in search.h5 at most `checkpoint_interval` seconds (default 1) after it arrives: rank 0 writes
as soon as there are unsaved records and the last write is that old, so a worker lost to the OOM killer or a node
failure costs only the candidates in flight, results that arrive seconds apart are each written at once, and
sub-second iterations are written together. A new search writes its first checkpoint before any training.
Checkpoints are also written on SIGTERM/SIGUSR1/SIGINT and at the end; the candidates of the current iteration that
are not finished are stored as in flight and trained again on resume (run/snapshot.py), so an interrupted search
continues with exactly the blocks and Q-table of an uninterrupted one.
"""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, to_array
from ..blocks.reward import reward as compute_reward
from ..config import Config
from ..signals import StopFlag, Stopped
from ..strategies import Strategy, make_strategy
from ..training.result import Status, TrainResult, Where, candidate_seed
from . import checkpoint, progress, snapshot, status
from .candidates import Candidate, CandidateTable, candidate_dtype
from .costs import Costs
from .dispatch import DISPATCH
from .executor import Done, Executor, Task
from .iterations import Iterations
from .pruning import Pruner

# The longest rank 0 blocks waiting for results when nothing is due (seconds): stop flags are seen this often.
WAIT = 1.0


class Master:
    def __init__(self, cfg: Config, out: str | Path, executor: Executor, stop: StopFlag,
                 log: Callable[[str], None] = print, state: checkpoint.SearchState | None = None,
                 main_is_bad: bool = False, pruner: Pruner | None = None) -> None:
        self.cfg, self.out, self.executor, self.stop, self.log = cfg, Path(out), executor, stop, log
        self.strategy: Strategy = make_strategy(cfg)
        self.total = self.strategy.total_iterations
        self.n = cfg.search.blocks_per_iteration
        self.max_index = cfg.space.max_index
        self.policy = DISPATCH[cfg.search.dispatch]()
        self.pruner = pruner if pruner is not None else Pruner(cfg.pruning, cfg.search.dispatch == "async")
        self.records = CandidateTable(candidate_dtype(self.max_index))
        self.costs = Costs(cfg)
        self.cache: dict[str, int] = {}  # block hash -> id of the record that answers it
        self.iterations = Iterations()
        self.iteration = 0  # the next iteration to complete
        self.next_id = 0
        self.tasks: dict[int, Task] = {}  # proposed candidates of the iterations not yet complete
        self.running: set[str] = set()  # hashes being trained
        self.waiting: dict[str, list[Task]] = {}  # hash -> candidates waiting for that training
        self.resume_inflight: list[Task] = []
        self.clock = snapshot.Clock()
        self.pace = status.Pace()  # this run's trainings, for the ETA
        self.last_line = time.perf_counter()  # the last progress line
        self.last_save = time.perf_counter()
        self.unsaved = 0  # records added since the last checkpoint
        # resumed from search.h5.bak because search.h5 was bad: the first save must not make the bad file the backup
        self.backup_next_save = not main_is_bad
        if state is not None:
            snapshot.restore(self, state)
        self.clock.runs += 1

    # ------------------------------------------------------------ the loop
    def run(self) -> int:
        """Run to the end or to a stop signal; returns the process exit code. DIR/status.json shows the loop live
        (run/status.py) until it ends, and then how it ended."""
        if not checkpoint.exists(self.out):  # a new search: its directory must take a checkpoint before any training
            self._check_space()
            self.save()
        writer = status.StatusWriter(self.out, lambda: status.build(self), self.cfg.search.status_interval)
        ended = "failed"
        try:
            code = self._run()
            ended = "finished" if code == 0 else "stopped"
            return code
        finally:
            writer.close(status.build(self, ended))

    def _run(self) -> int:
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
        for line in progress.final_lines(self.records.array(), self.max_index, self.clock.elapsed(),
                                         self.out / checkpoint.FILENAME, self.out):
            self.log(line)
        return 0

    def _loop(self) -> None:
        for task in self.resume_inflight:  # candidates proposed before the stop and not finished
            self.dispatch(task)
        self.resume_inflight = []
        while self.iteration < self.total:
            if self.stop.signum is not None:
                raise Stopped(self.stop.signum)
            self.policy.propose(self)
            finished = self.executor.wait(timeout=self._wait_timeout())
            self.policy.finished(self, finished)
            for done in finished:
                self._on_result(done)
            while self.iteration < self.total and self._complete(self.iteration):
                self._end_iteration(self.iteration)
            if time.perf_counter() - self.last_line >= self.cfg.search.progress_interval:
                self._progress_line()
            if self.unsaved and time.perf_counter() - self.last_save >= self.cfg.search.checkpoint_interval:
                self.save()

    def _wait_timeout(self) -> float:
        """How long the executor may block: until the unsaved records are due, at most WAIT."""
        if not self.unsaved:
            return WAIT
        due = self.last_save + self.cfg.search.checkpoint_interval - time.perf_counter()
        return min(WAIT, max(0.0, due))

    def new_task(self, nsc: NSC, iteration: int, epsilon: float, cid: int | None = None) -> Task:
        """A proposed block as a candidate: the next id (or `cid`), its hash, training seed and block number N."""
        if cid is None:
            cid, self.next_id = self.next_id, self.next_id + 1
        h = canonical_hash(nsc)
        return Task(cid, iteration, epsilon, nsc, h, candidate_seed(self.cfg.search.seed, h),
                    self.costs.of(nsc, h).blocks)

    def dispatch(self, task: Task) -> None:
        """Answer a candidate from the reward cache, hold it for the same block in training, reject it over the
        limits, or send it to be trained."""
        self.tasks[task.id] = task
        if task.hash in self.cache:  # trained before: answered from the reward cache
            self._record_repeat(task, self.cache[task.hash])
        elif task.hash in self.running:  # being trained right now: wait for that result
            self.waiting.setdefault(task.hash, []).append(task)
        elif not task.blocks_per_stage:  # over the limits even at N = 1: recorded and cached like a failure
            from ..blocks import budget

            self.cache[task.hash] = task.id
            self._record(task, TrainResult(Status.REJECTED, message=budget.rejection(self.cfg.limits,
                                                                                   self.cfg.network)), Where())
        else:
            self.running.add(task.hash)
            self.executor.submit(task)

    def _on_result(self, done: Done) -> None:
        task = done.task
        self.running.discard(task.hash)
        self.cache[task.hash] = task.id
        self._record(task, self.pruner.settle(task, done.result), done.where)
        for duplicate in self.waiting.pop(task.hash, []):
            self._record_repeat(duplicate, task.id)

    def observe(self, cid: int) -> None:
        """The strategy learns candidate `cid`'s reward."""
        self.strategy.observe(self.tasks[cid].nsc, float(self.records[cid]["reward"]))

    def _complete(self, it: int) -> bool:
        if it >= len(self.iterations):
            return False
        ids = self.iterations.ids(it)
        return self.next_id >= ids.stop and all(i in self.records for i in ids)

    def _end_iteration(self, it: int) -> None:
        ids = self.iterations.ids(it)
        self.policy.completing(self, it)
        self.strategy.end_iteration(it)
        for i in ids:
            self.tasks.pop(i, None)
        self.iteration += 1
        self.unsaved += 1  # the iteration's Q-updates are state too
        rewards = [float(self.records[i]["reward"]) for i in ids] or [float("nan")]
        seconds = self.clock.lap()
        planned = self.strategy.planned_candidates(self.n)
        self.log(progress.iteration_line(it, self.total, self.strategy.epsilon(it), rewards, self.records.array(),
                                         planned, seconds, self.clock.elapsed(),
                                         self.pace.eta(max(0, planned - len(self.records))),
                                         self.strategy.note(it)))
        self.last_line = time.perf_counter()
        sys.stdout.flush()

    def _progress_line(self) -> None:
        """Within a long iteration: what is in, the best so far, the ETA."""
        it = self.iteration
        ids = self.iterations.ids(it) if it < len(self.iterations) else range(0)
        planned = self.strategy.planned_candidates(self.n)
        self.log(progress.running_line(it, self.total, ids, self.records.array(), self.executor.ranks(),
                                       self.clock.elapsed(), self.pace.eta(max(0, planned - len(self.records)))))
        self.last_line = time.perf_counter()
        sys.stdout.flush()

    def status_counts(self) -> dict[str, object]:
        """The counts of the live status (run/status.py)."""
        rows = self.records.array()
        done, repeats, failed, rejected, pruned = progress.counts(rows)
        return {"strategy": self.strategy.name, "candidates": done, "planned": self.strategy.planned_candidates(self.n),
                "trained": done - repeats - rejected, "repeats": repeats, "failed": failed, "rejected": rejected,
                "pruned": pruned, "in_flight": len(self.running),
                "best_reward": float(rows["reward"].max()) if done else None, "elapsed": self.clock.elapsed(),
                "run": self.clock.runs, "run_trained": self.pace.trained, "epochs": self.cfg.trainer.epochs}

    # --------------------------------------------------------------- records
    def _record(self, task: Task, result: TrainResult, where: Where, repeat: bool = False) -> None:
        """The candidate's record: the task, the result, where it ran, and its reward (eq. 7) computed here."""
        cost = self.costs.of(task.nsc, task.hash)
        scored = result.status == Status.OK or (result.status == Status.PRUNED and self.cfg.pruning.reward == "rung")
        accuracy = result.accuracy if scored else self.cfg.reward.failure_accuracy
        self.records.add(Candidate(
            **asdict(result), **asdict(where), id=task.id, iteration=task.iteration,
            nsc=to_array(task.nsc, self.max_index), hash=task.hash, repeat=int(repeat),
            reward=compute_reward(accuracy, cost.flops, cost.density, self.cfg.reward), flops=cost.flops,
            params=cost.params, density=cost.density, blocks=cost.blocks, epsilon=task.epsilon))
        if not repeat:
            self.pruner.record(task.iteration, self.records[task.id]["rungs"])
        self.pace.add(repeat, result.status)
        self.unsaved += 1
        self.policy.recorded(self, task)

    def _record_repeat(self, task: Task, source_id: int) -> None:
        """A block trained before, answered from its record: the same result, no training, no rank."""
        src = self.records.record(source_id)
        result = TrainResult(src.status, src.accuracy, 0.0, src.epochs, src.restarts, src.message, src.rungs)
        self._record(task, result, Where(), repeat=True)

    # ------------------------------------------------------------ checkpoint
    def _check_space(self) -> None:
        """Warn (once, before training) when the directory lacks room for the whole search's checkpoints."""
        free, need = checkpoint.space(self.out, snapshot.take(self), self.strategy.planned_candidates(self.n))
        if free < need:
            print(f"warning: {self.out} has {free:,} bytes free; this search's checkpoints will need about "
                  f"{need:,} (search.h5, its .bak and the next one being written)", file=sys.stderr, flush=True)

    def save(self) -> None:
        """Checkpoint now; a write that fails raises checkpoint.CheckpointWriteError (one line)."""
        checkpoint.save(self.out, snapshot.take(self), backup=self.backup_next_save)
        self.backup_next_save = True
        self.last_save = time.perf_counter()
        self.unsaved = 0

    def elapsed(self) -> float:
        return self.clock.elapsed()
