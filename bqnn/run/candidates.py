"""The candidate table: one record per candidate, the rows of search.h5's /candidates.

Used by rank 0's loop (run/master.py), the checkpoint (run/checkpoint.py) and the report. Records are
added by field name into a growing numpy structured array, so a checkpoint takes a slice instead of
converting Python objects. The column `blocks` is N, the blocks per stage of the candidate's network
(its name is part of the file format, docs/hdf5.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config import MAX_RUNGS
from ..training.result import MESSAGE_LEN


def candidate_dtype(max_index: int) -> np.dtype:
    return np.dtype([
        ("id", np.int64),
        ("iteration", np.int32),
        ("rank", np.int32),  # worker rank that trained it (0: rank 0 itself; -1: answered from the cache)
        ("nsc", np.int16, (max_index, 5)),
        ("hash", "S16"),  # canonical hash (blocks.canon.canonical_hash)
        ("status", np.int8),  # training.result.Status
        ("repeat", np.int8),  # 1: an already-trained block, answered from the reward cache
        ("accuracy", np.float64),  # early-stop validation accuracy, percent
        ("reward", np.float64),
        ("flops", np.int64),  # whole network, per image
        ("params", np.int64),
        ("density", np.float64),
        ("blocks", np.int16),  # N, blocks per stage of its network (BlockQNN-L adapts it; 0: none fits)
        ("seconds", np.float64),  # training time (0 for repeats)
        ("epochs", np.int16),
        ("restarts", np.int8),
        ("epsilon", np.float64),
        ("message", f"S{MESSAGE_LEN}"),
        ("rungs", np.float64, (MAX_RUNGS,)),  # validation accuracy at each pruning rung reached; -1: not reached
    ])


class CandidateTable:
    """Every candidate's record, in completion order, found by candidate id."""

    def __init__(self, dtype: np.dtype, capacity: int = 1024) -> None:
        self.rows = np.zeros(capacity, dtype)
        self.n = 0
        self.index: dict[int, int] = {}  # candidate id -> row

    def add(self, **fields: Any) -> None:
        """Append a record; every field of the dtype must be given, by name."""
        missing = set(self.rows.dtype.names or ()) - set(fields)
        if missing or len(fields) != len(self.rows.dtype.names or ()):
            raise KeyError(f"candidate record fields: missing {sorted(missing)}, unknown "
                           f"{sorted(set(fields) - set(self.rows.dtype.names or ()))}")
        if self.n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros(len(self.rows), self.rows.dtype)])
        row = self.rows[self.n]
        for name, value in fields.items():
            row[name] = value
        self.index[int(fields["id"])] = self.n
        self.n += 1

    def __contains__(self, cid: int) -> bool:
        return cid in self.index

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, cid: int) -> np.void:
        return self.rows[self.index[cid]]

    def array(self) -> np.ndarray:
        """All records, in completion order (a view: no copy)."""
        return self.rows[: self.n]

    def load(self, rows: np.ndarray) -> None:
        self.rows = np.zeros(max(1024, 2 * len(rows)), rows.dtype)
        self.rows[: len(rows)] = rows
        self.n = len(rows)
        self.index = {int(cid): i for i, cid in enumerate(rows["id"].tolist())}
