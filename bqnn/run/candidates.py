"""The candidate's one record, and the table of them that rank 0 keeps: the rows of search.h5's /candidates.

Used by rank 0's loop (run/master.py), the checkpoint (run/checkpoint.py), the report and the golden digests.
`Candidate` is declared once: it extends what the trainer returns (`training.result.TrainResult`) and where it
ran (`Where`) with what rank 0 knows of the task and computes (its id, code, hash, costs, reward). The numpy
layout of the table, the MPI reply and search.h5 are derived from these declarations (bqnn/records.py), so a new
field is one line here (or there), plus its default for older files. The column `blocks` is N, the blocks per
stage of the candidate's network (its name is part of the file format, docs/hdf5.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np

from ..blocks.code import NSC_WIDTH
from ..records import Col, columns, dtype, get, put
from ..training.result import TrainResult, Where


@dataclass
class Candidate(TrainResult, Where):
    """One candidate: the trainer's result, where it ran, and what rank 0 knows of it."""

    id: Annotated[int, Col("i8")] = 0
    iteration: Annotated[int, Col("i4")] = 0
    nsc: Annotated[np.ndarray, Col("i2", ("max_index", NSC_WIDTH))] = field(
        default_factory=lambda: np.zeros((0, NSC_WIDTH), np.int16))
    hash: Annotated[str, Col("S16")] = ""  # canonical hash (blocks.canon.canonical_hash)
    repeat: Annotated[int, Col("i1")] = 0  # 1: an already-trained block, answered from the reward cache
    reward: Annotated[float, Col("f8")] = 0.0
    flops: Annotated[int, Col("i8")] = 0  # whole network, per image
    params: Annotated[int, Col("i8")] = 0
    density: Annotated[float, Col("f8")] = 0.0
    blocks: Annotated[int, Col("i2")] = 0  # N, blocks per stage of its network (BlockQNN-L adapts it; 0: none fits)
    epsilon: Annotated[float, Col("f8")] = 0.0


# What a file written before a field existed holds in its place (records.upgrade); fields not named take zeros.
# `blocks` of schema 1 is the configured N, which only the file's config knows (run/checkpoint.py).
DEFAULTS: dict[str, Any] = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                            for f in dataclasses.fields(Candidate) if f.name in ("started", "ended", "rank")}
DEFAULTS["rungs"] = -1.0  # run/pruning.NOT_REACHED: no rung reached


def candidate_dtype(max_index: int) -> np.dtype:
    return dtype(Candidate, max_index=max_index)


class CandidateTable:
    """Every candidate's record, in completion order, found by candidate id."""

    def __init__(self, dtype: np.dtype, capacity: int = 1024) -> None:
        self.rows = np.zeros(capacity, dtype)
        self.n = 0
        self.index: dict[int, int] = {}  # candidate id -> row

    def add(self, candidate: Candidate) -> None:
        """Append a candidate's record, every field by name."""
        if self.n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros(len(self.rows), self.rows.dtype)])
        put(self.rows[self.n], candidate)
        self.index[candidate.id] = self.n
        self.n += 1

    def __contains__(self, cid: int) -> bool:
        return cid in self.index

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, cid: int) -> np.void:
        return self.rows[self.index[cid]]

    def record(self, cid: int) -> Candidate:
        """The candidate with id `cid`, as a record."""
        c: Candidate = get(Candidate, self[cid])
        return c

    def array(self) -> np.ndarray:
        """All records, in completion order (a view: no copy)."""
        return self.rows[: self.n]

    def load(self, rows: np.ndarray) -> None:
        self.rows = np.zeros(max(1024, 2 * len(rows)), rows.dtype)
        self.rows[: len(rows)] = rows
        self.n = len(rows)
        self.index = {int(cid): i for i, cid in enumerate(rows["id"].tolist())}


FIELDS = tuple(name for name, _ in columns(Candidate))
