"""What training one candidate gives back and where it ran, and the interface every trainer has.

Used as a library by the trainers (training/), rank 0's loop (run/), the MPI wire format (mpi/) and the
report. No torch: rank 0 and simulated workers import it.

    class MyTrainer:                       # satisfies `Trainer`
        def train(self, nsc, seed, candidate_id=-1, poll=None, blocks_per_stage=0,
                  on_epoch=None) -> TrainResult: ...

`TrainResult` (what a trainer returns) and `Where` (which rank trained it, on which host, when) are the trainer's
and the executor's parts of a candidate's one record (run/candidates.py `Candidate` extends both): their fields
are declared once, here, with their numpy layout (bqnn/records.py), and the MPI reply, the candidate table and
search.h5 are laid out from them.

A failed candidate is a result, never a crash: an exception, a NaN loss or running out of memory comes
back with that status and a message (at most MESSAGE_LEN bytes, the tail of a traceback kept). A trainer raises
`signals.Stopped` only when `poll()` says the job is stopping.

Progress and pruning (run/pruning.py decides): a trainer tells `on_epoch(epoch, accuracy)` after every epoch, with
the validation accuracy after each rung epoch (`rung_epochs`, kept in `TrainResult.rungs`) and None after the
others; a True answer at a rung ends the candidate there (one process: the rule answers at once). Under MPI the
answer comes later: `poll()`, asked once per batch, returns `Halt(epoch)` when rank 0 has stopped the candidate at
that earlier rung. Either way the trainer ends
it with status PRUNED, that rung's accuracy and epochs (`pruned_result`). Trainers carry these messages; none of
them knows the rule.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Protocol

from ..blocks.code import NSC
from ..config import MAX_RUNGS, PruningConfig
from ..records import Col, clip
from ..signals import Stopped

MESSAGE_LEN = 256  # bytes of a result's message (error text, traceback tail), on the wire and in search.h5
HOST_LEN = 64  # bytes of a host name, on the wire and in search.h5


@dataclass(frozen=True)
class Halt:
    """What `poll()` returns when the candidate must end: `prune_at` 0 when the job stops (the trainer raises
    signals.Stopped), else the rung epoch at which rank 0 stopped this candidate."""

    prune_at: int = 0


STOP = Halt()
Poll = Callable[[], Halt | None] | None
# After every epoch: (epochs trained, the validation accuracy % when it was measured (a rung), else None) -> end the
# candidate here? (heeded at a rung only). The executor's view of a training's progress, and pruning's question.
OnEpoch = Callable[[int, float | None], bool] | None


class Status(IntEnum):
    OK = 0
    ERROR = 1  # the trainer raised
    NAN = 2  # the loss became NaN or infinite
    OOM = 3  # out of memory
    REJECTED = 4  # not trained: over a limit (BlockQNN-L)
    LOST = 5  # the worker went away while training it
    DEVICE = 6  # the worker's device failed (a sticky CUDA error): never recorded, the task goes to another rank
    PRUNED = 7  # stopped at a rung by the pruning rule: its accuracy is the rung's, its epochs the rung's


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
    """What training one candidate gives back: the trainer's part of the candidate's record."""

    status: Annotated[int, Col("i1")] = 0  # Status
    accuracy: Annotated[float, Col("f8")] = 0.0  # percent, validation
    seconds: Annotated[float, Col("f8")] = 0.0  # training wall time (0 for repeats)
    epochs: Annotated[int, Col("i2")] = 0
    restarts: Annotated[int, Col("i1")] = 0
    message: Annotated[str, Col(f"S{MESSAGE_LEN}", text="tail")] = ""
    # validation accuracy at each rung reached (pruning.rungs), NOT_REACHED (-1) after
    rungs: Annotated[list[float], Col("f8", (MAX_RUNGS,), fill=-1.0)] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = Status(int(self.status))
        self.rungs = list(self.rungs)


@dataclass
class Where:
    """Which rank trained a candidate, on which host, and when: the executor's part of the record."""

    rank: Annotated[int, Col("i4")] = -1  # worker rank (0: rank 0 itself; -1: not trained, answered from the cache)
    host: Annotated[str, Col(f"S{HOST_LEN}")] = ""
    started: Annotated[float, Col("f8")] = 0.0  # Unix time the training began (0: not trained here, or not known)
    ended: Annotated[float, Col("f8")] = 0.0  # Unix time it ended


def ask(poll: Poll) -> int:
    """Ask `poll` once: raise signals.Stopped when the job stops; else the rung epoch to end the candidate at, or
    0 to go on."""
    halt = poll() if poll is not None else None
    if halt is None:
        return 0
    if not halt.prune_at:
        raise Stopped()
    return halt.prune_at


def pruned_result(rungs: Sequence[int], accuracies: list[float], epoch: int, restarts: int = 0) -> TrainResult:
    """A candidate stopped at the rung after `epoch` epochs (one of `rungs`), `accuracies` those it reported."""
    k = list(rungs).index(epoch)
    return TrainResult(Status.PRUNED, accuracy=accuracies[k], epochs=epoch, restarts=restarts,
                       rungs=list(accuracies[: k + 1]))


class Trainer(Protocol):
    """Trains one candidate: the early-stop trainer (real), the simulated one, or anything with this method."""

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, poll: Poll = None,
              blocks_per_stage: int = 0, on_epoch: OnEpoch = None) -> TrainResult:
        """`poll`, if given, is asked while training (once per batch): `STOP` makes the trainer raise
        `signals.Stopped`, `Halt(k)` ends the candidate at the rung after k epochs. `blocks_per_stage`: N of the
        candidate's network (0: as configured). `on_epoch`: told each epoch's end (and a rung's accuracy); True
        at a rung ends the candidate there."""
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
    return clip(text, limit, "tail")
