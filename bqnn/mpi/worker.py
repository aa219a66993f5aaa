"""Ranks >= 1: bind a device, build and train candidates, reply. Started by search.py:

    mpiexec -n 5 python -m bqnn.search --config JOB --out DIR    # ranks 1-4 run `run_worker`

Device binding: with CUDA, the GPU is this worker's index among the worker
ranks of its node, modulo the visible GPUs; with one GPU per task (SLURM's
`--gpus-per-task=1`, CUDA_VISIBLE_DEVICES holding one device) that is the only
one. Without CUDA the worker trains on the CPU with an equal share of the
node's cores as torch threads (unless `trainer.threads` is set).

Protocol (mpi/wire.py, mpi/manager.py): READY once the data is loaded, then
for each TASK a RESULT; a STOP ends the loop and gives the exit code. While
training, the worker polls for STOP once per batch, so a stopping job does not
wait for the candidate to finish. It sends EPOCH at the end of an epoch (the live status; with the accuracy
at a pruning rung) and, with pruning on, polls for PRUNE in the same place, ending the candidate at that rung. A
rung's epoch is always told; any other at most every half `search.status_interval` (the live status is written
that often: 1 s by default), so that short candidates (simulated ones) do not put a dozen messages ahead of each
result on rank 0. A
stop signal received by this rank is forwarded to rank 0 as SIGNAL. Candidate failures are results (training/result.py);
waiting is MPI_Iprobe with short sleeps (mpi/backoff.py), not a spinning receive. A simulated worker
imports no torch (training/factory.py).
"""
from __future__ import annotations

import signal
import socket
import time
from dataclasses import asdict
from types import FrameType
from typing import Any

import numpy as np
from mpi4py import MPI

from ..blocks.code import from_array
from ..config import from_json
from ..records import put
from ..signals import STOP_SIGNALS, Stopped, held
from ..training import faults
from ..training.factory import make_trainer
from ..training.result import STOP, Halt, Status, Trainer, TrainResult, Where
from .backoff import WORKER_WINDOW, Backoff, precise_naps
from .launch import bind, quiet_bcast
from .wire import EPOCH_DTYPE, RESULT_DTYPE, Reply, Tag, task_dtype

EMPTY = bytearray(0)


class _Worker:
    def __init__(self, comm: Any, pruning: bool = False, every: float = 0.0) -> None:
        self.comm = comm
        self.pruning = pruning
        self.every = every  # an epoch's end without a rung accuracy is told at most this often, s
        self.current = -1  # the candidate being trained
        self.told = 0.0  # perf_counter() of its start or of the last epoch told
        self.epoch = np.zeros(1, EPOCH_DTYPE)
        self.rank = comm.Get_rank()
        self.host = socket.gethostname()
        self.stop_code: int | None = None
        self.signalled = False
        self.result = np.zeros(1, RESULT_DTYPE)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Tell rank 0, which checkpoints and stops everyone; keep serving until its STOP."""
        if not self.signalled:
            self.signalled = True
            self.comm.Send([np.array([signum], np.int32), MPI.INT32_T], dest=0, tag=Tag.SIGNAL)

    def poll(self) -> Halt | None:
        """Asked once per batch: STOP when rank 0 stops the job; Halt(k) when it stopped this candidate at the rung
        after k epochs; None to go on."""
        if self.pruning and self.comm.Iprobe(source=0, tag=Tag.PRUNE):
            self.comm.Recv([self.epoch.view(np.uint8), MPI.BYTE], source=0, tag=Tag.PRUNE)
            if int(self.epoch[0]["id"]) == self.current:
                return Halt(int(self.epoch[0]["epoch"]))
        return STOP if self.comm.Iprobe(source=0, tag=Tag.STOP) else None

    def start(self, task_id: int) -> None:
        self.current, self.told = task_id, time.perf_counter()

    def on_epoch(self, epoch: int, accuracy: float | None) -> bool:
        """Tell rank 0 that an epoch ended (the live status), with the accuracy at a rung, and keep training: rank 0
        answers only to stop the candidate. Without a rung accuracy, only if `every` seconds have passed."""
        now = time.perf_counter()
        if accuracy is None and now - self.told < self.every:
            return False
        self.told = now
        buf = self.epoch
        buf["id"], buf["epoch"], buf["accuracy"] = self.current, epoch, -1.0 if accuracy is None else accuracy
        self.comm.Send([buf.view(np.uint8), MPI.BYTE], dest=0, tag=Tag.EPOCH)
        return False

    def send_result(self, task_id: int, r: TrainResult, started: float = 0.0) -> None:
        where = Where(self.rank, self.host, started, time.time() if started else 0.0)
        put(self.result[0], Reply(**asdict(r), **asdict(where), id=task_id))
        self.comm.Send([self.result.view(np.uint8), MPI.BYTE], dest=0, tag=Tag.RESULT)

    def wait_message(self) -> MPI.Status:
        """Probe and sleep (mpi/backoff.py): short naps for 2 ms after a result, when the next task
        is likely on its way, then up to 10 ms: an idle worker wakes ~100 times a second."""
        status = MPI.Status()
        wait, start = Backoff(window=WORKER_WINDOW), time.perf_counter()
        while not self.comm.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
            wait.nap(since=start)
        return status


def run_worker(comm: Any) -> int:
    cfg_json = quiet_bcast(comm, None)
    if cfg_json is None:  # rank 0 could not start the search and has said why
        return 2
    cfg = from_json(cfg_json)
    visible: tuple[str, ...] = ()
    if cfg.trainer.kind == "real":
        from ..training.device import visible_gpus

        visible = visible_gpus()
    plan = bind(comm, visible, cfg.trainer.share_gpus, cfg.trainer.device)
    if plan.errors:  # the same plan on every rank: rank 0 says why, everyone stops
        return 2
    index, per_node = plan.slots[comm.Get_rank()]
    pruning = cfg.pruning.rule != "none"
    w = _Worker(comm, pruning, every=cfg.search.status_interval / 2)  # the status shows no more
    precise_naps()
    for s in STOP_SIGNALS:
        signal.signal(s, w.on_signal)
    first = held()
    if first is not None:  # a stop signal during start-up (signals.hold)
        w.on_signal(first, None)
    trainer: Trainer | None = None
    try:
        trainer, _ = make_trainer(cfg, index, per_node)  # simulated: no torch, hundreds fit on one machine
    except Exception as e:  # e.g. the dataset is missing on this node: one line to rank 0
        w.send_result(-1, TrainResult(Status.ERROR, message=f"{type(e).__name__}: {e}"))
    else:
        comm.Send([EMPTY, MPI.BYTE], dest=0, tag=Tag.READY)
    task = np.zeros(1, task_dtype(cfg.space.max_index))
    while True:
        status = w.wait_message()
        tag = status.Get_tag()
        if tag == Tag.STOP:
            code = np.zeros(1, np.int32)
            comm.Recv([code, MPI.INT32_T], source=0, tag=Tag.STOP)
            comm.Send([EMPTY, MPI.BYTE], dest=0, tag=Tag.BYE)
            return int(code[0])
        if tag == Tag.PRUNE:  # rank 0 stopped a candidate that had finished already: nothing to do
            comm.Recv([w.epoch.view(np.uint8), MPI.BYTE], source=0, tag=Tag.PRUNE)
            continue
        if tag != Tag.TASK:
            raise RuntimeError(f"worker {w.rank}: unexpected MPI tag {tag} from rank 0")
        comm.Recv([task.view(np.uint8), MPI.BYTE], source=0, tag=Tag.TASK)
        rec = task[0]
        if trainer is None:
            raise RuntimeError(f"worker {w.rank}: rank 0 sent a task to a worker that could not start")
        faults.attempt.set(int(rec["attempt"]))
        w.start(int(rec["id"]))
        started = time.time()
        try:
            nsc = from_array(rec["nsc"], cfg.space.max_index)
            result = trainer.train(nsc, int(rec["seed"]), int(rec["id"]), poll=w.poll,
                                   blocks_per_stage=int(rec["blocks_per_stage"]), on_epoch=w.on_epoch)
        except Stopped:
            continue  # STOP is waiting; the candidate is in the checkpoint as in flight
        w.send_result(int(rec["id"]), result, started)
