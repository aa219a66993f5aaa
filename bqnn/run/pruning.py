"""The pruning rule on rank 0: is a candidate at a rung clearly losing? No torch, no MPI.

Used by run/master.py (`Pruner.prune`) whenever a training candidate reports a rung (training/result.py:
`on_rung` in one process, the EPOCH message from a worker); configured by `[pruning]` (config/schema.py):

    [pruning]
    rule = "median"        # or "halving"; "none" (the default) trains every candidate to the end
    rungs = [1, 3, 6]      # epochs after which a candidate reports its validation accuracy
    quantile = 0.5         # median: stop below this quantile of the rung's accuracies
    reduction = 3          # halving: stop unless among the best 1/reduction (quantile 1 - 1/reduction)
    min_candidates = 16    # a rung stops nothing until this many candidates have reached it

A candidate at rung r is compared with the accuracies other candidates had at r: the *reference*. With batch
dispatch (the paper's) the reference is every trained candidate of the earlier iterations, fixed while an
iteration runs, so the decisions do not depend on which worker finishes first, and a resumed search (whose
reference is read back from search.h5's `rungs` column) prunes exactly as an uninterrupted one. With async
dispatch it is every candidate recorded so far. Repeats (answered from the reward cache) are not in it, and
candidates that failed have no rung accuracies. Only candidates that reached r count towards
`min_candidates`, so the first iteration is never pruned.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config import MAX_RUNGS, PruningConfig

NOT_REACHED = -1.0  # a rung a candidate did not reach, in the `rungs` column (not NaN: records stay comparable)


def rung_row(accuracies: list[float]) -> np.ndarray:
    """A record's `rungs` column: the accuracies reached, NOT_REACHED for the others."""
    row = np.full(MAX_RUNGS, NOT_REACHED)
    row[: len(accuracies)] = accuracies
    return row


_UNSET = object()  # no reference read yet


class Pruner:
    def __init__(self, cfg: PruningConfig) -> None:
        self.cfg = cfg
        self.enabled = cfg.rule != "none"
        self.rungs = tuple(cfg.rungs) if self.enabled else ()
        self.quantile = cfg.quantile if cfg.rule == "median" else 1.0 - 1.0 / cfg.reduction
        self._key: object = _UNSET
        self._cut: list[float | None] = []  # per rung: below this, a candidate is stopped (None: too few yet)

    def cutoffs(self, key: object, reference: Callable[[], np.ndarray]) -> list[float | None]:
        """Per rung, the accuracy below which a candidate is stopped, from `reference()` (the `rungs` column of the
        reference candidates, one row each); None where fewer than `min_candidates` reached the rung. `key`
        names the reference: while it is unchanged, neither it nor the cut-offs are computed again."""
        if key != self._key:
            rows = reference()
            cut: list[float | None] = []
            for k in range(len(self.rungs)):
                column = rows[:, k] if len(rows) else np.zeros(0)
                reached = column[column >= 0]
                cut.append(float(np.quantile(reached, self.quantile)) if len(reached) >= self.cfg.min_candidates
                           else None)
            self._key, self._cut = key, cut
        return self._cut

    def prune(self, epoch: int, accuracy: float, key: object, reference: Callable[[], np.ndarray]) -> bool:
        """Stop a candidate whose validation accuracy after `epoch` epochs (a rung) is `accuracy`? The reference as
        for `cutoffs`."""
        if epoch not in self.rungs:
            return False
        cut = self.cutoffs(key, reference)[self.rungs.index(epoch)]
        return cut is not None and accuracy < cut
