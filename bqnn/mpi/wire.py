"""Message tags and payload layouts between rank 0 and the workers (ranks >= 1).

Used by mpi/manager.py (rank 0) and mpi/worker.py; importing it does not import MPI.

Workers pull work: a worker sends READY (empty), rank 0 answers TASK (a task record) or STOP; the worker
trains and sends RESULT (a RESULT record), which also means "ready for the next". STOP carries the exit
code; a worker that gets a stop signal sends SIGNAL so that rank 0 stops the whole job. With pruning on, a
training worker sends EPOCH (an EPOCH_DTYPE record) at each rung and keeps training; rank 0 answers PRUNE (the
same record) only when the rule stops the candidate, and the worker, which looks for it once per batch, ends the
candidate there (a PRUNE for a task it no longer trains is read and dropped). Both records are
fixed numpy structured dtypes sent with the buffer (uppercase) calls, so nothing is pickled and no model
weights ever cross ranks. Status codes (training/result.py) are shared with the checkpoint and the report.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from ..config import MAX_RUNGS
from ..training.result import MESSAGE_LEN

HOST_LEN = 64


class Tag(IntEnum):
    READY = 1  # worker -> 0: loaded, waiting for work (once, at start)
    TASK = 2  # 0 -> worker: a task_dtype record
    RESULT = 3  # worker -> 0: a RESULT_DTYPE record; also "ready for the next"
    STOP = 4  # 0 -> worker: int32 exit code; the worker answers BYE and exits with it
    SIGNAL = 5  # worker -> 0: int32 signal number this worker received; the job checkpoints and stops
    BYE = 6  # worker -> 0: empty, the worker is leaving
    EPOCH = 7  # worker -> 0: an EPOCH_DTYPE record, the candidate's accuracy at a pruning rung
    PRUNE = 8  # 0 -> worker: an EPOCH_DTYPE record naming the candidate and the rung it stops at


def task_dtype(max_index: int) -> np.dtype:
    # blocks_per_stage: N of the candidate's network (BlockQNN-L's adaptive N)
    # attempt: 1 for a retry on another rank (training/faults.attempt)
    return np.dtype([("id", np.int64), ("seed", np.int64), ("blocks_per_stage", np.int16), ("attempt", np.int8),
                     ("nsc", np.int16, (max_index, 5))])


RESULT_DTYPE = np.dtype([
    ("id", np.int64),
    ("status", np.int8),
    ("accuracy", np.float64),  # validation accuracy, percent
    ("seconds", np.float64),  # training wall time on the worker
    ("epochs", np.int16),
    ("restarts", np.int8),
    ("rank", np.int32),
    ("host", f"S{HOST_LEN}"),
    ("message", f"S{MESSAGE_LEN}"),
    ("rungs", np.float64, (MAX_RUNGS,)),  # accuracy at each pruning rung reached, -1 after
])

EPOCH_DTYPE = np.dtype([("id", np.int64), ("epoch", np.int16), ("accuracy", np.float64)])
