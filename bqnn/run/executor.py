"""How rank 0's loop gets candidates trained, without knowing where: the `Executor` protocol, the tasks and
results it carries, and the executor for one process.

Used by run/master.py; `InlineExecutor` trains in this process (world size 1), mpi/manager.py's
`MPIExecutor` sends tasks to worker ranks. No torch, no MPI.
"""
from __future__ import annotations

import dataclasses
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..blocks.code import NSC
from ..signals import StopFlag
from ..training.result import Status, Trainer, TrainResult, Where


@dataclass
class Task:
    id: int
    iteration: int
    epsilon: float
    nsc: NSC
    hash: str
    seed: int
    blocks_per_stage: int = 0  # N of its network (BlockQNN-L's adaptive N); 0 when no N fits
    attempt: int = 0  # 1: a retry on another rank (after an out-of-memory or a device fault)
    avoid: int = -1  # the rank whose attempt failed: a retry goes elsewhere


@dataclass
class Done:
    task: Task
    result: TrainResult
    where: Where  # which rank, which host, when


@dataclass
class RankState:
    """What one training rank is doing now: the live status's row for it (run/status.py). `state` is "starting"
    (loading data, binding its device), "idle", "training" (candidate `candidate`, `epoch` epochs done, the last
    rung accuracy it reported), "retired" (its device failed: `why`), "failed" (it could not start: `why`), "lost"
    (over the task deadline) or "gone" (it left); `since` is when it entered the state (Unix time)."""

    rank: int
    host: str = ""
    state: str = "starting"
    since: float = field(default_factory=time.time)
    candidate: int = -1
    hash: str = ""
    epoch: int = 0
    rung_accuracy: float | None = None
    why: str = ""

    def training(self, task: Task) -> None:
        self.state, self.since, self.candidate, self.hash = "training", time.time(), task.id, task.hash
        self.epoch, self.rung_accuracy = 0, None

    def progressed(self, epoch: int, accuracy: float | None) -> None:
        self.epoch = epoch
        if accuracy is not None:
            self.rung_accuracy = accuracy

    def becomes(self, state: str, why: str = "") -> None:
        self.state, self.since, self.why, self.candidate, self.hash = state, time.time(), why, -1, ""


# The pruning rule (run/pruning.Pruner.decide), given to an executor as it is built: stop this task at the rung after
# `epoch` epochs, where its validation accuracy is `accuracy`? None: pruning is off, nobody asks.
Decide = Callable[[Task, int, float], bool]


class Executor(Protocol):
    world_size: int

    def submit(self, task: Task) -> None: ...

    def idle_slots(self) -> int:
        """How many more tasks would start at once (async dispatch proposes only that many)."""
        ...

    def wait(self, timeout: float) -> list[Done]:
        """Finished tasks; blocks up to `timeout` seconds for at least one."""
        ...

    def utilization(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rank, busy seconds, idle seconds) per training rank."""
        ...

    def ranks(self) -> list[RankState]:
        """What each training rank is doing now (copies: the live status reads them from another thread)."""
        ...

    def queued(self) -> int:
        """Tasks waiting for a rank."""
        ...

    def shutdown(self, code: int | None = None) -> None:
        """Release the workers, telling them the exit code."""
        ...


class WorkerStartupError(Exception):
    """No worker could start; the message is the first worker's error."""


# Exit code of a search that lost a worker (a hung or silent rank, a failed device): the state is checkpointed and
# the job should be run again (slurm/search.sbatch requeues itself on it). EX_TEMPFAIL of sysexits.h.
LOST_EXIT_CODE = 75


class LostWorker(Exception):
    """A worker is lost while the search runs: it is hung (over the task deadline), or the one process's device
    failed. The message names the rank, its host and the candidate; the job ends with LOST_EXIT_CODE."""


class InlineExecutor:
    """World size 1: rank 0 trains each task itself, one at a time. While it trains, a stop signal raises
    `signals.Stopped` out of the trainer (the flag is `interruptible`), so a checkpoint follows at once. A rung is
    answered at once by `decide` (the pruning rule), through the trainer's `on_epoch`."""

    world_size = 1

    def __init__(self, trainer: Trainer, stop: StopFlag, decide: Decide | None = None) -> None:
        self.decide = decide
        self.trainer = trainer
        self.stop = stop
        self.queue: deque[Task] = deque()
        self.busy = 0.0
        self.start = time.perf_counter()
        self.host = socket.gethostname()
        self.rank = RankState(0, self.host, "idle")

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def ranks(self) -> list[RankState]:
        return [dataclasses.replace(self.rank)]

    def queued(self) -> int:
        return max(0, len(self.queue) - (self.rank.state == "training"))

    def idle_slots(self) -> int:
        return 0 if self.queue else 1

    def wait(self, timeout: float) -> list[Done]:
        if not self.queue:
            return []
        task = self.queue[0]
        t0, started = time.perf_counter(), time.time()
        decide = self.decide

        def on_epoch(epoch: int, accuracy: float | None) -> bool:  # at a rung the rule answers at once
            self.rank.progressed(epoch, accuracy)
            return accuracy is not None and decide is not None and decide(task, epoch, accuracy)

        self.stop.interruptible = True
        self.rank.training(task)
        try:
            result = self.trainer.train(task.nsc, task.seed, task.id, blocks_per_stage=task.blocks_per_stage,
                                        on_epoch=on_epoch)
        finally:
            self.stop.interruptible = False
            self.busy += time.perf_counter() - t0
            self.rank.becomes("idle")
        self.queue.popleft()
        if result.status == Status.DEVICE:  # no other rank to retire this one for: the job must run again
            self.queue.appendleft(task)
            raise LostWorker(f"the device of this process on {self.host} failed while training candidate "
                             f"{task.id} ({result.message})")
        return [Done(task, result, Where(0, self.host, started, time.time()))]

    def utilization(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        total = time.perf_counter() - self.start
        return np.array([0], np.int32), np.array([self.busy]), np.array([max(total - self.busy, 0.0)])

    def shutdown(self, code: int | None = None) -> None:
        pass
