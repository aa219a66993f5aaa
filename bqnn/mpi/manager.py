"""Rank 0's side of the MPI protocol: hands tasks to worker ranks and collects results.

Used by search.py when the world size is above 1, as the search loop's executor (run/executor.py):

    mpiexec -n 5 python -m bqnn.search --config JOB --out DIR     # rank 0 + 4 workers

Start-up (collective, in this order on every rank): rank 0 broadcasts the resolved config as JSON (or None:
workers exit 2; workers wait for it with naps, `launch.quiet_bcast`), then all ranks take part in the binding
plan (`launch.bind`, mpi/binding.py: each worker's GPU; a GPU with two workers stops every rank, rank 0
printing why). Then workers pull: READY once, a RESULT after each task; rank 0 answers with a TASK or, at the
end, STOP carrying the exit code; workers reply BYE and exit with it. A worker that cannot start (e.g. its
dataset is missing) sends a RESULT with id -1 and the error; the search goes on without it, and fails with
that one line if no worker is left. A worker that receives SIGTERM/SIGUSR1/SIGINT sends SIGNAL(signum) so that
the whole job checkpoints and stops, whichever rank got the signal.

Rank 0 waits with MPI_Iprobe and short sleeps, never a blocking receive, which in MPICH spins a core that the
workers on the same node need: naps of 50-100 us for 0.2 s after the last message, then doubling up to 10 ms
(an idle rank 0 wakes ~100 times a second). A task goes to the most recently ready worker, which is still
polling fast. Per-rank busy time (task sent -> result received) and idle time (ready -> task sent) give the
utilization.
"""
from __future__ import annotations

import dataclasses
import socket
import sys
import time
from collections import deque
from typing import Any

import numpy as np
from mpi4py import MPI

from ..blocks.code import to_array
from ..config import Config, to_json
from ..records import fields_of, get
from ..run.executor import Decide, Done, LostWorker, RankState, Task, WorkerStartupError
from ..signals import StopFlag
from ..training.result import Status, TrainResult, Where
from .backoff import MASTER_WINDOW, Backoff, precise_naps
from .launch import bind, quiet_bcast
from .wire import EPOCH_DTYPE, RESULT_DTYPE, Reply, Tag, task_dtype

EMPTY = bytearray(0)


# search.task_deadline = 0: a task may train this many times the longest training so far, and at least this long
DEADLINE_FACTOR = 10.0
DEADLINE_FLOOR = 600.0


class BindingError(Exception):
    """The task layout puts two workers on one GPU (mpi/binding.py); every rank has stopped."""


def abort_workers(comm: Any) -> None:
    """Rank 0 could not start the search: tell the workers (waiting in the config broadcast) to exit."""
    quiet_bcast(comm, None)


class MPIExecutor:
    def __init__(self, comm: Any, cfg: Config, stop: StopFlag, decide: Decide | None = None) -> None:
        self.comm = comm
        self.world_size = comm.Get_size()
        self.stop = stop
        self.max_index = cfg.space.max_index
        precise_naps()
        quiet_bcast(comm, to_json(cfg))
        # collective with the workers' call; rank 0 trains nothing and reports no GPUs
        plan = bind(comm, (), cfg.trainer.share_gpus, cfg.trainer.device)
        self.hosts = plan.hosts
        # what each worker does now, for the live status (run/status.py)
        self.states = {r: RankState(r, self.hosts.get(r, "")) for r in range(1, self.world_size)}
        self.deadline_setting = cfg.search.task_deadline
        self.trained_longest = 0.0  # the longest successful training so far, seconds
        self.lost: set[int] = set()  # ranks given up on (hung): not waited for at shutdown
        self.retired: dict[int, str] = {}  # rank -> why (its device failed)
        if cfg.trainer.kind == "real":
            print("binding (rank, host, device, GPU):\n" + "\n".join(plan.table), flush=True)
        for w in plan.warnings:
            print(f"warning: {w}", file=sys.stderr, flush=True)
        if plan.errors:  # the workers have stopped (they computed the same plan)
            more = f" (and {len(plan.errors) - 1} more)" if len(plan.errors) > 1 else ""
            raise BindingError(plan.errors[0] + more)
        self.queue: deque[Task] = deque()
        self.ready: deque[int] = deque()  # ranks waiting for a task, most recently ready last
        self.pending: dict[int, Task] = {}  # rank -> the task it is training
        self.live = set(range(1, self.world_size))  # workers that can train
        self.connected = set(self.live)  # workers still running (no BYE yet): all must get STOP
        self.failed_start: dict[int, str] = {}
        now = time.perf_counter()
        self.busy = {r: 0.0 for r in self.live}
        self.idle = {r: 0.0 for r in self.live}
        self.since: dict[int, float] = {}  # rank -> when it became ready or was sent its task
        self.waiting_for_task = 0.0  # idle split: ready -> task sent (rank 0 had no task or was busy) ...
        self.in_transit = 0.0  # ... and task sent -> result received, less the training (messages, naps)
        self.task_buf = np.zeros(1, task_dtype(self.max_index))
        self.result_buf = np.zeros(1, RESULT_DTYPE)
        self.signal_buf = np.zeros(1, np.int32)
        self.epoch_buf = np.zeros(1, EPOCH_DTYPE)
        self.decide = decide  # the pruning rule (run/pruning.py), asked when a worker reports a rung; None: off
        self.t0 = now
        self.started: float | None = None
        self.startup = 0.0  # seconds from start-up to the first task (imports, data loading)
        self.last_message = now
        self.host = socket.gethostname()

    # ------------------------------------------------------------- dispatch
    def submit(self, task: Task) -> None:
        if self.started is None:  # utilization counts from the first task: start-up is reported apart
            self.started = time.perf_counter()
            self.startup = self.started - self.t0
            for r in self.since:
                self.since[r] = max(self.since[r], self.started)
        self.queue.append(task)
        self._dispatch()

    def idle_slots(self) -> int:
        """Workers with no task, counting those still starting (loading data, initialising CUDA): rank 0
        proposes their first blocks while they start, and each gets its task the moment it is READY."""
        return len(self.live) - len(self.pending) - len(self.queue)

    def _pick(self) -> tuple[int, Task] | None:
        """The most recently ready worker (it is polling fast, so the task starts at once) and the first task
        it may take: a retry never goes back to the rank whose attempt failed."""
        for k in range(len(self.queue)):
            task = self.queue[k]
            for i in range(len(self.ready) - 1, -1, -1):
                if self.ready[i] != task.avoid:
                    rank = self.ready[i]
                    del self.ready[i]
                    del self.queue[k]
                    return rank, task
        return None

    def _dispatch(self) -> None:
        while self.queue and self.ready:
            picked = self._pick()
            if picked is None:  # only the failed rank is ready: the retry waits for another
                return
            rank, task = picked
            buf = self.task_buf
            buf["id"], buf["seed"], buf["blocks_per_stage"] = task.id, task.seed, task.blocks_per_stage
            buf["attempt"] = task.attempt
            buf["nsc"][0] = to_array(task.nsc, self.max_index)
            self.comm.Send([buf.view(np.uint8), MPI.BYTE], dest=rank, tag=Tag.TASK)
            now = time.perf_counter()
            waited = now - self.since.get(rank, now)
            self.idle[rank] += waited
            self.waiting_for_task += waited
            self.since[rank] = now
            self.pending[rank] = task
            self.states[rank].training(task)

    def wait(self, timeout: float) -> list[Done]:
        deadline = time.perf_counter() + timeout
        wait = Backoff(window=MASTER_WINDOW)
        out: list[Done] = []
        status = MPI.Status()
        while True:
            if self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                tag = status.Get_tag()
                done = self._handle(status.Get_source(), tag)
                if done is not None:
                    out.append(done)
                if tag != Tag.EPOCH:  # an epoch's end is progress: no answer or next message follows it soon
                    wait.reset()
                    self.last_message = time.perf_counter()
                continue
            if out or self.stop.signum is not None or time.perf_counter() >= deadline:
                return out
            self._check_deadline()
            wait.nap(since=self.last_message)

    def _handle(self, src: int, tag: int) -> Done | None:
        now = time.perf_counter()
        if tag == Tag.READY:
            self.comm.Recv([EMPTY, MPI.BYTE], source=src, tag=tag)
            self._ready(src, now)
        elif tag == Tag.RESULT:
            return self._result(src, now)
        elif tag == Tag.EPOCH:  # an epoch's end; at a pruning rung answered only when the rule stops the candidate
            buf = self.epoch_buf
            self.comm.Recv([buf.view(np.uint8), MPI.BYTE], source=src, tag=tag)
            task = self.pending.get(src)
            rec = buf[0]
            if task is None or task.id != int(rec["id"]):
                return None  # a candidate that has ended meanwhile
            accuracy = float(rec["accuracy"]) if rec["accuracy"] >= 0 else None
            self.states[src].progressed(int(rec["epoch"]), accuracy)
            if accuracy is not None and self.decide is not None and self.decide(task, int(rec["epoch"]), accuracy):
                self.comm.Send([buf.view(np.uint8), MPI.BYTE], dest=src, tag=Tag.PRUNE)
        elif tag == Tag.SIGNAL:
            self.comm.Recv([self.signal_buf, MPI.INT32_T], source=src, tag=tag)
            if self.stop.signum is None:
                self.stop.signum = int(self.signal_buf[0])
        elif tag == Tag.BYE:
            self.comm.Recv([EMPTY, MPI.BYTE], source=src, tag=tag)
            self.live.discard(src)
            self.connected.discard(src)
            self.states[src].becomes("gone")
        else:
            raise RuntimeError(f"unexpected MPI tag {tag} from rank {src}")
        return None

    def _result(self, src: int, now: float) -> Done | None:
        """A worker's RESULT: the task's result and where it ran; None when it is not one to record (a worker that
        could not start, a device fault that retires the rank, an out-of-memory retried elsewhere)."""
        self.comm.Recv([self.result_buf.view(np.uint8), MPI.BYTE], source=src, tag=Tag.RESULT)
        reply = get(Reply, self.result_buf[0])
        if reply.id < 0:  # the worker could not start
            self.live.discard(src)
            self.failed_start[src] = reply.message
            self.states[src].becomes("failed", reply.message)
            if not self.live:
                first = min(self.failed_start)
                raise WorkerStartupError(f"no worker could start; rank {first}: {self.failed_start[first]}")
            return None
        task = self.pending.pop(src)
        self.busy[src] += reply.seconds  # time the worker spent training, as it measured it
        transit = max(0.0, now - self.since.get(src, now) - reply.seconds)  # messages, naps, queueing
        self.idle[src] += transit
        self.in_transit += transit
        if reply.status == Status.DEVICE:  # its GPU is unusable: retire it, the candidate goes to another rank
            self._retire(src, task, reply.message)
            return None
        self._ready(src, now)
        if reply.status == Status.OOM and task.attempt == 0 and self.live - {src}:
            # perhaps transient (a GPU shared with another job, fragmentation): once more, elsewhere
            self.queue.appendleft(dataclasses.replace(task, attempt=1, avoid=src))
            self._dispatch()
            return None
        if reply.status == Status.OK:
            self.trained_longest = max(self.trained_longest, reply.seconds)
        return Done(task, TrainResult(**fields_of(TrainResult, reply)), Where(**fields_of(Where, reply)))

    def _retire(self, rank: int, task: Task, message: str) -> None:
        self.live.discard(rank)
        self.retired[rank] = message
        self.states[rank].becomes("retired", message)
        print(f"warning: rank {rank} on {self.hosts.get(rank, '?')} is retired, its device failed: {message}; "
              f"candidate {task.id} goes to another rank", file=sys.stderr, flush=True)
        if not self.live:
            raise LostWorker(f"every worker is lost; the last, rank {rank} on {self.hosts.get(rank, '?')}: {message}")
        self.queue.appendleft(dataclasses.replace(task, attempt=task.attempt + 1, avoid=rank))
        self._dispatch()

    def deadline(self) -> tuple[float, str] | None:
        """(seconds a task may train, why) or None while there is nothing to derive it from."""
        if self.deadline_setting > 0:
            return self.deadline_setting, "search.task_deadline"
        if self.trained_longest > 0:
            return (max(DEADLINE_FLOOR, DEADLINE_FACTOR * self.trained_longest),
                    f"{DEADLINE_FACTOR:g} x the longest training so far, at least {DEADLINE_FLOOR:g} s")
        return None

    def _check_deadline(self) -> None:
        limit = self.deadline()
        if limit is None or not self.pending:
            return
        now = time.perf_counter()
        rank, task = max(self.pending.items(), key=lambda rt: now - self.since.get(rt[0], now))
        took = now - self.since.get(rank, now)
        if took > limit[0]:
            self.lost.add(rank)
            self.states[rank].becomes("lost", f"over the task deadline ({limit[1]})")
            raise LostWorker(f"rank {rank} on {self.hosts.get(rank, '?')} has been training candidate {task.id} for "
                             f"{took:.1f} s, over the deadline of {limit[0]:.1f} s ({limit[1]}): it is hung or its "
                             f"GPU stalled")

    def _ready(self, rank: int, now: float) -> None:
        self.states[rank].becomes("idle")
        self.since[rank] = now if self.started is None else max(now, self.started)
        self.ready.append(rank)
        self._dispatch()

    # ---------------------------------------------------------------- report
    def ranks(self) -> list[RankState]:
        return [dataclasses.replace(s) for _, s in sorted(self.states.items())]

    def queued(self) -> int:
        return len(self.queue)

    def utilization(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rank, busy, idle) seconds; a task in flight counts as busy so far."""
        now = time.perf_counter()
        ranks = sorted(self.busy)
        busy = [self.busy[r] + (now - self.since[r] if r in self.pending else 0.0) for r in ranks]
        waiting = [r in self.since and r not in self.pending and r in self.live for r in ranks]
        idle = [self.idle[r] + (now - self.since[r] if w else 0.0) for r, w in zip(ranks, waiting, strict=True)]
        return np.array(ranks, np.int32), np.array(busy), np.array(idle)

    def shutdown(self, code: int | None = None) -> None:
        """STOP every worker with the exit code and wait (up to 60 s) for their BYE; other messages are drained."""
        if code is None:
            code = self.stop.exit_code
        stop = np.array([code], np.int32)
        requests = [self.comm.Isend([stop, MPI.INT32_T], dest=r, tag=Tag.STOP)
                    for r in sorted(self.connected - self.lost)]
        waiting = set(self.connected - self.lost)
        deadline = time.perf_counter() + 60.0
        status = MPI.Status()
        wait = Backoff(first=1e-3, hot=1e-3, idle=1e-3)
        while waiting and time.perf_counter() < deadline:
            if self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                src, tag = status.Get_source(), status.Get_tag()
                if tag == Tag.SIGNAL:
                    self.comm.Recv([self.signal_buf, MPI.INT32_T], source=src, tag=tag)
                elif tag == Tag.RESULT:  # finished after the stop: its candidate is retrained on resume
                    self.comm.Recv([self.result_buf.view(np.uint8), MPI.BYTE], source=src, tag=tag)
                elif tag == Tag.EPOCH:
                    self.comm.Recv([self.epoch_buf.view(np.uint8), MPI.BYTE], source=src, tag=tag)
                else:
                    self.comm.Recv([EMPTY, MPI.BYTE], source=src, tag=tag)
                    if tag == Tag.BYE:
                        waiting.discard(src)
            else:
                wait.nap(since=0.0)
        MPI.Request.Waitall(requests)
        self.connected = waiting
        self.live &= waiting
        if self.lost:  # a hung rank never answers: end the whole job (the state is checkpointed)
            sys.stdout.flush()
            sys.stderr.flush()
            self.comm.Abort(code)
