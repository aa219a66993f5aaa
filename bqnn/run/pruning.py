"""The pruning rule, in one place: is a candidate at a rung clearly losing? No torch, no MPI.

Made by the entry point and given to the loop and to the executor as it is built (`executor(decide=pruner.decide)`);
configured by `[pruning]` (config/schema.py):

    [pruning]
    rule = "median"        # or "halving"; "none" (the default) trains every candidate to the end
    rungs = [1, 3, 6]      # epochs after which a candidate reports its validation accuracy
    quantile = 0.5         # median: stop below this quantile of the rung's accuracies
    reduction = 3          # halving: stop unless among the best 1/reduction (quantile 1 - 1/reduction)
    min_candidates = 16    # a rung stops nothing until this many candidates have reached it

The loop tells the pruner every trained candidate it records (`record`); an executor asks `decide(task, epoch,
accuracy)` when a training candidate reports a rung (at once in one process; when the worker's EPOCH message
arrives under MPI) and carries the answer back (the trainer's `on_epoch` answer, or a PRUNE message); when the result
comes back, `settle` makes a decision stand: a candidate that finished before rank 0's PRUNE reached it is recorded
as pruned at that rung, so a record never depends on message timing. Executors and trainers carry these messages
and know nothing of the rule.

A candidate at rung r is compared with the accuracies other candidates had at r: the *reference*. With batch
dispatch (the paper's) the reference is every trained candidate of the earlier iterations, fixed while an
iteration runs, so the decisions do not depend on which worker finishes first, and a resumed search (whose
reference is read back from search.h5's `rungs` column) prunes exactly as an uninterrupted one. With async
dispatch it is every candidate recorded so far. Repeats (answered from the reward cache) are not in it, and
candidates that failed have no rung accuracies. Only candidates that reached r count towards
`min_candidates`, so the first iteration is never pruned.
"""
from __future__ import annotations

import numpy as np

from ..config import MAX_RUNGS, PruningConfig
from ..training.result import Status, TrainResult, pruned_result
from .executor import Task

NOT_REACHED = -1.0  # a rung a candidate did not reach, in the `rungs` column (not NaN: records stay comparable)


def rung_row(accuracies: list[float]) -> np.ndarray:
    """A record's `rungs` column: the accuracies reached, NOT_REACHED for the others."""
    row = np.full(MAX_RUNGS, NOT_REACHED)
    row[: len(accuracies)] = accuracies
    return row


class Pruner:
    def __init__(self, cfg: PruningConfig, asynchronous: bool = False) -> None:
        self.cfg = cfg
        self.enabled = cfg.rule != "none"
        self.asynchronous = asynchronous
        self.rungs = tuple(cfg.rungs) if self.enabled else ()
        self.quantile = cfg.quantile if cfg.rule == "median" else 1.0 - 1.0 / cfg.reduction
        self._rows = np.zeros((256, MAX_RUNGS))  # the `rungs` column of every trained candidate recorded ...
        self._iterations = np.zeros(256, np.int64)  # ... and its iteration
        self._n = 0
        self._per_iteration: dict[int, int] = {}  # iteration -> trained candidates recorded
        self._key: object = None
        self._cut: list[float | None] = []  # per rung: below this, a candidate is stopped (None: too few yet)
        self.stopped: dict[int, int] = {}  # candidate id -> the rung epoch it was stopped at

    def record(self, iteration: int, rungs: np.ndarray) -> None:
        """A trained candidate (not a repeat) joins the reference."""
        if self._n == len(self._iterations):
            self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)])
            self._iterations = np.concatenate([self._iterations, np.zeros_like(self._iterations)])
        self._rows[self._n], self._iterations[self._n] = rungs, iteration
        self._n += 1
        self._per_iteration[iteration] = self._per_iteration.get(iteration, 0) + 1

    def cutoffs(self, before: int | None = None) -> list[float | None]:
        """Per rung, the accuracy below which a candidate is stopped: the rule's quantile of what the reference
        reached there (the candidates of iterations before `before`, or all when None); None where fewer than
        `min_candidates` reached the rung. Computed again only when the reference changed."""
        n = self._n if before is None else sum(c for it, c in self._per_iteration.items() if it < before)
        key = (before, n)
        if key != self._key:
            rows = self._rows[: self._n]
            if before is not None:
                rows = rows[self._iterations[: self._n] < before]
            self._key, self._cut = key, self.cutoffs_for(rows)
        return self._cut

    def cutoffs_for(self, rows: np.ndarray) -> list[float | None]:
        """The cut-offs that the reference `rows` (a `rungs` column, one row per candidate) gives, per rung."""
        cut: list[float | None] = []
        for k in range(len(self.rungs)):
            reached = rows[:, k][rows[:, k] >= 0]
            cut.append(float(np.quantile(reached, self.quantile)) if len(reached) >= self.cfg.min_candidates else None)
        return cut

    def decide(self, task: Task, epoch: int, accuracy: float) -> bool:
        """Stop `task` at the rung after `epoch` epochs, where its validation accuracy is `accuracy`? Batch dispatch
        compares it with the earlier iterations' candidates, async with every candidate recorded so far."""
        if epoch not in self.rungs:
            return False
        cut = self.cutoffs(None if self.asynchronous else task.iteration)[self.rungs.index(epoch)]
        if cut is not None and accuracy < cut:
            self.stopped[task.id] = epoch
            return True
        return False

    def settle(self, task: Task, result: TrainResult) -> TrainResult:
        """The result to record: a candidate stopped at a rung that finished before the stop reached it is pruned
        there all the same (its seconds are what it really took)."""
        epoch = self.stopped.pop(task.id, None)
        if epoch is not None and result.status == Status.OK:
            pruned = pruned_result(self.rungs, result.rungs, epoch, result.restarts)
            pruned.seconds = result.seconds
            return pruned
        return result
