"""Message tags and payload layouts between the master (rank 0) and workers (ranks >= 1).

Used as a library by master.py and worker.py; importing it does not import MPI.

Workers pull work: a worker sends READY (empty), the master answers TASK (a
TASK record) or STOP; the worker trains and sends RESULT (a RESULT record),
which also means "ready for the next". STOP carries the exit code; a worker
that gets a stop signal sends SIGNAL so the master stops the whole job. Both records are fixed numpy structured
dtypes sent with the buffer (uppercase) calls, so nothing is pickled and no
model weights ever cross ranks. Status codes are shared with the checkpoint
and the report.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

MESSAGE_LEN = 256  # bytes of a result's message (error text, traceback tail)
HOST_LEN = 64


class Tag(IntEnum):
    READY = 1  # worker -> 0: loaded, waiting for work (once, at start)
    TASK = 2  # 0 -> worker: a task_dtype record
    RESULT = 3  # worker -> 0: a RESULT_DTYPE record; also "ready for the next"
    STOP = 4  # 0 -> worker: int32 exit code; the worker answers BYE and exits with it
    SIGNAL = 5  # worker -> 0: int32 signal number this worker received; the job checkpoints and stops
    BYE = 6  # worker -> 0: empty, the worker is leaving


class Status(IntEnum):
    OK = 0
    ERROR = 1  # the trainer raised
    NAN = 2  # the loss became NaN or infinite
    OOM = 3  # out of memory
    REJECTED = 4  # not trained: over a limit (BlockQNN-L)
    LOST = 5  # the worker went away while training it


def task_dtype(max_index: int) -> np.dtype:
    return np.dtype([("id", np.int64), ("seed", np.int64), ("nsc", np.int16, (max_index, 5))])


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
])


def clip_text(text: str, limit: int = MESSAGE_LEN) -> bytes:
    """UTF-8 bytes of `text` that fit `limit`, keeping the end (the useful part of a traceback)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    data = b"..." + data[-(limit - 3):]
    return data.decode("utf-8", "ignore").encode("utf-8")[:limit]
