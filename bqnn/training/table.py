"""The table trainer (`trainer.kind = "table"`, `trainer.table = PATH`): a candidate's training answered from a
landscape table of real trainings (landscape/table.py), as NAS-Bench-101 and -201 answer theirs. No torch.

Used through training/factory.py by rank 0 (world size 1) and by MPI workers, like the simulated trainer:

    trainer = TableTrainer(cfg)            # TableError (one line) if the table is missing, damaged or not this search's
    result = trainer.train(nsc, seed)       # one of the block's seeds, picked by `seed`

A block's answer is one real training of it: the seed `table.seeds[k]` with k = `seed` mod the number of its
recorded trainings, so the same candidate seed always gets the same training, and candidates of searches with other
`search.seed` draw other trainings of the same block (the real seed-to-seed noise). The accuracy, the status
(a training that failed in the table fails here), the restarts, the rung accuracies (the curve at the rung epochs:
pruning works) and the training seconds are that training's; a candidate pruned after k of E epochs is charged k/E
of its seconds. The trainer answers at once, or sleeps `trainer.table_time_scale` x the seconds (in slices, so that
a stop or rank 0's pruning answer arrives as it would in a real training: pruning under MPI needs a scale > 0).

The search must be the table's recipe: its space (a `space.max_index` up to the table's), network, data and
training keys must equal the recipe's, or the search is refused at start-up naming the keys.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC
from ..config import Config, diff, from_json
from ..landscape.table import Table, TableError
from .result import OnEpoch, Poll, Status, TrainResult, ask, pruned_result, rung_epochs

SLICE = 0.05  # seconds between looks for a stop or a pruning answer while sleeping
# Keys that decide what a training gives: a search answered from the table must have the table's values.
RECIPE_SECTIONS = ("network", "data")
RECIPE_TRAINER_KEYS = ("epochs", "batch_size", "lr", "betas", "adam_eps", "lr_decay", "lr_step", "restart_lr_factor",
                       "max_restarts", "amp")


def mismatch(cfg: Config, recipe: Config) -> list[str]:
    """The keys in which `cfg` is not the table's recipe (empty: it is)."""
    keys = [k for k in diff(recipe, cfg) if k.split(".")[0] in RECIPE_SECTIONS
            or (k.startswith("trainer.") and k.split(".")[1] in RECIPE_TRAINER_KEYS)
            or (k.startswith("space.") and k != "space.max_index")]
    if cfg.space.max_index > recipe.space.max_index:
        keys.append("space.max_index")
    return keys


class TableTrainer:
    def __init__(self, cfg: Config, table: Table | None = None) -> None:
        self.table = table if table is not None else Table.read(Path(cfg.trainer.table))
        recipe = from_json(self.table.recipe)
        wrong = mismatch(cfg, recipe)
        if wrong:
            raise TableError(f"trainer.table {cfg.trainer.table}: this search is not the table's recipe ("
                             f"{', '.join(wrong)} differ); use the table's job file, e.g. --config jobs/landscape.toml")
        self.scale = cfg.trainer.table_time_scale
        self.rungs = rung_epochs(cfg.pruning)
        self.epochs = self.table.epochs

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, poll: Poll = None,
              blocks_per_stage: int = 0, on_epoch: OnEpoch = None) -> TrainResult:
        row = self.table.row(canonical_hash(nsc))
        if row is None:
            return TrainResult(Status.ERROR, message="the block is not in the landscape table (outside its space)")
        s = self.table.pick(row, seed)
        if s is None:
            return TrainResult(Status.ERROR, message="the landscape table has no training of this block yet")
        status = Status(int(self.table.status[row, s]))
        seconds = float(self.table.seconds[row, s])
        restarts = int(self.table.restarts[row, s])
        curve = [float(a) for a in self.table.curve[row, s]]
        if status != Status.OK:
            self._sleep(seconds, poll)
            return TrainResult(status, seconds=seconds, restarts=restarts,
                               message=f"as trained for the landscape table (seed {self.table.seeds[s]})")
        reported: list[float] = []
        for epoch in range(1, self.epochs + 1):
            stop_at = self._sleep(seconds / self.epochs, poll)
            if not stop_at:
                told = curve[epoch - 1] if epoch in self.rungs else None
                if told is not None:
                    reported.append(told)
                if on_epoch is not None and on_epoch(epoch, told) and told is not None:
                    stop_at = epoch
            if stop_at:
                result = pruned_result(self.rungs, reported, stop_at, restarts)
                result.seconds = seconds * stop_at / self.epochs
                return result
        return TrainResult(Status.OK, accuracy=curve[-1], seconds=seconds, epochs=self.epochs, restarts=restarts,
                           rungs=reported)

    def _sleep(self, seconds: float, poll: Poll) -> int:
        """Sleep `seconds` x the time scale in slices, asking `poll` after each (and once without sleeping):
        the rung epoch rank 0 stopped the candidate at, or 0 (signals.Stopped when the job stops)."""
        end = time.perf_counter() + seconds * self.scale
        while True:
            halt = ask(poll)
            if halt:
                return halt
            left = end - time.perf_counter()
            if left <= 0:
                return 0
            time.sleep(min(left, SLICE))
