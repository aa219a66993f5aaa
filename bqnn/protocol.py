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

import signal
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

# Exit codes of every rank when a stop signal ends the job (SLURM's --signal sends USR1).
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGUSR1: 143, signal.SIGINT: 130}

# Waiting for a message: probe, then sleep. Right after traffic the next message is likely soon, so
# naps stay short (HOT_NAP) for a while; after that they double up to IDLE_NAP. Rank 0 keeps the short
# naps for MASTER_WINDOW seconds after its last message; a worker for WORKER_WINDOW after its result
# (rank 0 answers within a millisecond when it has work; many fast-polling workers on a shared node
# would take the CPU rank 0 needs).
FIRST_NAP, HOT_NAP, IDLE_NAP = 5e-5, 1e-4, 1e-2
MASTER_WINDOW, WORKER_WINDOW = 0.2, 0.002


def next_nap(nap: float, waited: float, window: float) -> float:
    return min(nap * 2, HOT_NAP if waited < window else IDLE_NAP)


def precise_naps() -> bool:
    """Ask Linux to end this process's sleeps on time: the default timer slack (50 us) lets a 50 us nap
    last 100-150 us, which is most of a task's round trip (bench/mpi.py). A no-op elsewhere; returns
    whether it took effect."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(29, 1, 0, 0, 0) == 0  # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        return False


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


@dataclass
class TrainResult:
    """What training one candidate gives back (a RESULT record, unpacked)."""

    status: Status
    accuracy: float = 0.0  # percent, validation
    seconds: float = 0.0
    epochs: int = 0
    restarts: int = 0
    message: str = ""


class Interrupted(BaseException):
    """Raised out of a trainer's `train` when its `interrupt` callback says stop (never a result)."""


def candidate_seed(search_seed: int, block_hash: str) -> int:
    """Training seed of a block (the `seed` of its task), from its canonical hash: the same block gets
    the same initial weights in every run and on every rank."""
    return (int(block_hash[:8], 16) ^ (search_seed * 0x9E3779B1)) & 0x7FFFFFFF


def task_dtype(max_index: int) -> np.dtype:
    return np.dtype([("id", np.int64), ("seed", np.int64), ("blocks", np.int16), ("nsc", np.int16, (max_index, 5))])


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
