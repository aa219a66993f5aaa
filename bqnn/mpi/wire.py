"""Message tags and payload layouts between rank 0 and the workers (ranks >= 1).

Used by mpi/manager.py (rank 0) and mpi/worker.py; importing it does not import MPI.

Workers pull work: a worker sends READY (empty), rank 0 answers TASK (a task record) or STOP; the worker
trains and sends RESULT (a RESULT record), which also means "ready for the next". STOP carries the exit
code; a worker that gets a stop signal sends SIGNAL so that rank 0 stops the whole job. A training worker sends
EPOCH (an EPOCH_DTYPE record: the accuracy at a pruning rung, -1 after other epochs) at the end of every epoch and
keeps training; rank 0 answers PRUNE (the same record) only when the pruning rule stops the candidate, and the
worker, which looks for it once per batch, ends the candidate there (a PRUNE for a task it no longer trains is read
and dropped). Both records are
fixed numpy structured dtypes sent with the buffer (uppercase) calls, so nothing is pickled and no model
weights ever cross ranks. Status codes (training/result.py) are shared with the checkpoint and the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

import numpy as np

from ..blocks.code import NSC_WIDTH
from ..records import Col, dtype
from ..training.result import TrainResult, Where


class Tag(IntEnum):
    READY = 1  # worker -> 0: loaded, waiting for work (once, at start)
    TASK = 2  # 0 -> worker: a task_dtype record
    RESULT = 3  # worker -> 0: a RESULT_DTYPE record; also "ready for the next"
    STOP = 4  # 0 -> worker: int32 exit code; the worker answers BYE and exits with it
    SIGNAL = 5  # worker -> 0: int32 signal number this worker received; the job checkpoints and stops
    BYE = 6  # worker -> 0: empty, the worker is leaving
    EPOCH = 7  # worker -> 0: an EPOCH_DTYPE record, an epoch's end (and the candidate's accuracy at a pruning rung)
    PRUNE = 8  # 0 -> worker: an EPOCH_DTYPE record naming the candidate and the rung it stops at


def task_dtype(max_index: int) -> np.dtype:
    # blocks_per_stage: N of the candidate's network (BlockQNN-L's adaptive N)
    # attempt: 1 for a retry on another rank (training/faults.attempt)
    return np.dtype([("id", np.int64), ("seed", np.int64), ("blocks_per_stage", np.int16), ("attempt", np.int8),
                     ("nsc", np.int16, (max_index, NSC_WIDTH))])


@dataclass
class Reply(TrainResult, Where):
    """A RESULT message: the task's id, what training it gave (TrainResult) and where it ran (Where), laid out from
    their declarations (training/result.py), so the wire has no field list of its own."""

    id: Annotated[int, Col("i8")] = 0


RESULT_DTYPE = dtype(Reply)

EPOCH_DTYPE = np.dtype([("id", np.int64), ("epoch", np.int16), ("accuracy", np.float64)])
