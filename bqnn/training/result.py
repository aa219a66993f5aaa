"""What training one candidate gives back, and the interface every trainer has.

Used as a library by the trainers (training/), rank 0's loop (run/), the MPI wire format (mpi/) and the
report. No torch: rank 0 and simulated workers import it.

    class MyTrainer:                       # satisfies `Trainer`
        def train(self, nsc, seed, candidate_id=-1, interrupt=None, blocks_per_stage=0,
                  on_rung=None) -> TrainResult: ...

A failed candidate is a result, never a crash: an exception, a NaN loss or running out of memory comes
back with that status and a message (at most MESSAGE_LEN bytes, the tail of a traceback kept). A
trainer raises `signals.Stopped` only when `interrupt()` says the job is stopping.

Pruning (run/pruning.py): with `pruning.rule` set, a trainer evaluates the candidate after each rung epoch,
keeps the accuracy in `TrainResult.rungs` and calls `on_rung(epoch, accuracy)`. Whoever decides raises
`Pruned(epoch)`, from `on_rung` or later from `interrupt()` (a worker polls for rank 0's answer once per
batch); the trainer ends the candidate there with status PRUNED, the rung's accuracy and epochs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from ..blocks.code import NSC
from ..config import PruningConfig

MESSAGE_LEN = 256  # bytes of a result's message (error text, traceback tail), on the wire and in search.h5

Interrupt = Callable[[], bool] | None
OnRung = Callable[[int, float], None] | None  # (epochs trained, validation accuracy in percent) at each rung


class Status(IntEnum):
    OK = 0
    ERROR = 1  # the trainer raised
    NAN = 2  # the loss became NaN or infinite
    OOM = 3  # out of memory
    REJECTED = 4  # not trained: over a limit (BlockQNN-L)
    LOST = 5  # the worker went away while training it
    DEVICE = 6  # the worker's device failed (a sticky CUDA error): never recorded, the task goes to another rank
    PRUNED = 7  # stopped at a rung by the pruning rule: its accuracy is the rung's, its epochs the rung's


class Pruned(BaseException):
    """Raised into a trainer (by `on_rung` or `interrupt`) to stop the candidate at the rung after `epoch`
    epochs. A BaseException, like signals.Stopped, so that a trainer's handler for failures lets it through."""

    def __init__(self, epoch: int) -> None:
        super().__init__(epoch)
        self.epoch = epoch


def is_device_fault(text: str) -> bool:
    """An error after which the process's GPU context is unusable (every later task would fail at once): an
    illegal address, a device-side assert, an ECC error, a lost or failed launch. Out-of-memory is not one."""
    return any(words in text for words in DEVICE_FAULT_WORDS)


DEVICE_FAULT_WORDS = ("illegal memory access", "illegal address", "device-side assert", "uncorrectable ECC",
                      "unspecified launch failure", "CUDA error: misaligned address", "cudaErrorLaunchFailure",
                      "CUBLAS_STATUS_EXECUTION_FAILED", "CUDA driver version is insufficient",
                      "CUDA error: unknown error", "GPU is lost", "device has fallen off the bus")


@dataclass
class TrainResult:
    """What training one candidate gives back."""

    status: Status
    accuracy: float = 0.0  # percent, validation
    seconds: float = 0.0
    epochs: int = 0
    restarts: int = 0
    message: str = ""
    rungs: list[float] = field(default_factory=list)  # validation accuracy at each rung reached (pruning.rungs)


def pruned_result(rungs: Sequence[int], accuracies: list[float], epoch: int, restarts: int = 0) -> TrainResult:
    """A candidate stopped at the rung after `epoch` epochs (one of `rungs`), `accuracies` those it reported."""
    k = list(rungs).index(epoch)
    return TrainResult(Status.PRUNED, accuracy=accuracies[k], epochs=epoch, restarts=restarts,
                       rungs=list(accuracies[: k + 1]))


class Trainer(Protocol):
    """Trains one candidate: the early-stop trainer (real), the simulated one, or anything with this method."""

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, interrupt: Interrupt = None,
              blocks_per_stage: int = 0, on_rung: OnRung = None) -> TrainResult:
        """`interrupt`, if given, is polled while training; when it returns True the trainer raises
        `signals.Stopped`. `blocks_per_stage`: N of the candidate's network (0: as configured). `on_rung`:
        called at each rung when pruning is on; `Pruned` raised by it or by `interrupt` ends the candidate."""
        ...


def rung_epochs(pruning: PruningConfig) -> tuple[int, ...]:
    """The epochs after which a trainer measures and reports the validation accuracy: the rungs, when a pruning
    rule is on or `pruning.record` asks for the curve; none otherwise."""
    return tuple(pruning.rungs) if pruning.rule != "none" or pruning.record else ()


def candidate_seed(search_seed: int, block_hash: str) -> int:
    """Training seed of a block (the `seed` of its task), from its canonical hash: the same block gets
    the same initial weights in every run and on every rank."""
    return (int(block_hash[:8], 16) ^ (search_seed * 0x9E3779B1)) & 0x7FFFFFFF


def clip_text(text: str, limit: int = MESSAGE_LEN) -> bytes:
    """UTF-8 bytes of `text` that fit `limit`, keeping the end (the useful part of a traceback)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    data = b"..." + data[-(limit - 3):]
    return data.decode("utf-8", "ignore").encode("utf-8")[:limit]
