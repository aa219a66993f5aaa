"""Ranks >= 1: bind a device, build and train candidates, reply. Started by search.py:

    mpiexec -n 5 python -m bqnn.search --config JOB --out DIR    # ranks 1-4 run `run_worker`

Device binding: with CUDA, the GPU is this worker's index among the worker
ranks of its node, modulo the visible GPUs; with one GPU per task (SLURM's
`--gpus-per-task=1`, CUDA_VISIBLE_DEVICES holding one device) that is the only
one. Without CUDA the worker trains on the CPU with an equal share of the
node's cores as torch threads (unless `trainer.threads` is set).

Protocol (protocol.py, mpi_executor.py): READY once the data is loaded, then
for each TASK a RESULT; a STOP ends the loop and gives the exit code. While
training, the worker polls for STOP once per batch, so a stopping job does not
wait for the candidate to finish. A stop signal received by this rank is
forwarded to rank 0 as SIGNAL. Candidate failures are results (trainer.py);
waiting is MPI_Iprobe with short sleeps, not a spinning receive.
"""
from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
from mpi4py import MPI

from .config import from_json
from .mpi import quiet_bcast, worker_slot
from .nsc import from_array
from .protocol import (EXIT_CODES, FIRST_NAP, RESULT_DTYPE, WORKER_WINDOW, Interrupted, Status, Tag, TrainResult,
                       clip_text, next_nap, precise_naps, task_dtype)

EMPTY = bytearray(0)


class _Worker:
    def __init__(self, comm) -> None:
        self.comm = comm
        self.rank = comm.Get_rank()
        self.host = socket.gethostname()[:64]
        self.stop_code: int | None = None
        self.signalled = False
        self.result = np.zeros(1, RESULT_DTYPE)

    def on_signal(self, signum: int, frame) -> None:
        """Tell rank 0, which checkpoints and stops everyone; keep serving until its STOP."""
        if not self.signalled:
            self.signalled = True
            self.comm.Send([np.array([signum], np.int32), MPI.INT32_T], dest=0, tag=Tag.SIGNAL)

    def stop_requested(self) -> bool:
        return bool(self.comm.Iprobe(source=0, tag=Tag.STOP))

    def send_result(self, task_id: int, r: TrainResult) -> None:
        buf = self.result
        buf["id"], buf["status"], buf["accuracy"], buf["seconds"] = task_id, int(r.status), r.accuracy, r.seconds
        buf["epochs"], buf["restarts"], buf["rank"] = r.epochs, r.restarts, self.rank
        buf["host"], buf["message"] = self.host.encode(), clip_text(r.message)
        self.comm.Send([buf.view(np.uint8), MPI.BYTE], dest=0, tag=Tag.RESULT)

    def wait_message(self) -> MPI.Status:
        """Probe and sleep (protocol.next_nap): short naps for 2 ms after a result, when the next task
        is likely on its way, then up to 10 ms: an idle worker wakes ~100 times a second."""
        status = MPI.Status()
        nap, start = FIRST_NAP, time.perf_counter()
        while not self.comm.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
            time.sleep(nap)
            nap = next_nap(nap, time.perf_counter() - start, WORKER_WINDOW)
        return status


def run_worker(comm) -> int:
    cfg_json = quiet_bcast(comm, None)
    if cfg_json is None:  # rank 0 could not start the search and has said why
        return 2
    cfg = from_json(cfg_json)
    index, per_node = worker_slot(comm)
    w = _Worker(comm)
    precise_naps()
    for s in EXIT_CODES:
        signal.signal(s, w.on_signal)
    trainer = None
    try:
        if cfg.trainer.kind == "simulated":  # no torch: hundreds of these fit on one machine
            from .simulated import SimulatedTrainer

            trainer = SimulatedTrainer(cfg)
        else:
            import torch

            from .trainer import make_trainer, resolve_device

            device = resolve_device(cfg.trainer.device, index)
            if device.type == "cpu" and not cfg.trainer.threads:
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
            trainer = make_trainer(cfg, device)
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
        if tag != Tag.TASK:
            raise RuntimeError(f"worker {w.rank}: unexpected MPI tag {tag} from rank 0")
        comm.Recv([task.view(np.uint8), MPI.BYTE], source=0, tag=Tag.TASK)
        rec = task[0]
        try:
            result = trainer.train(from_array(rec["nsc"], cfg.space.max_index), int(rec["seed"]), int(rec["id"]),
                                   interrupt=w.stop_requested, blocks=int(rec["blocks"]))
        except Interrupted:
            continue  # STOP is waiting; the candidate is in the checkpoint as in flight
        w.send_result(int(rec["id"]), result)
