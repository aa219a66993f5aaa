"""A worker tells rank 0 every rung's epoch (rank 0 may prune there) and any other epoch's end at most every
`every` seconds (half `search.status_interval` in run_worker), so that a candidate of a few milliseconds puts no
dozen messages ahead of its result (bench/mpi.py, K = 3: one message per epoch gave 3.9 ms a round trip and about
330 tasks/s, the limit 1.0 ms and 1,320). Under real `mpiexec -n 2`: rank 1 is a worker (`_Worker`), rank 0 reads
what it was told."""
import json
import subprocess
import sys

from tests.conftest import MPIEXEC, ROOT, needs_mpiexec

pytestmark = needs_mpiexec

PAIR = r"""
import json, sys
import numpy as np
from mpi4py import MPI
from bqnn.mpi.wire import EPOCH_DTYPE, Tag
from bqnn.mpi.worker import _Worker

comm = MPI.COMM_WORLD
if comm.Get_rank() == 1:
    w = _Worker(comm, pruning=True, every=3600.0)  # within the limit all along: only the rungs
    w.start(7)
    answers = [w.on_epoch(e, 61.5 if e in (2, 6) else None) for e in range(1, 13)]
    w.every = 0.0  # past the limit at every epoch: each one
    w.start(8)
    answers += [w.on_epoch(e, None) for e in range(1, 4)]
    end = np.zeros(1, EPOCH_DTYPE)
    end["id"] = -99  # the last EPOCH message: same source and tag, so none sent before it arrives after it
    comm.Send([end.view(np.uint8), MPI.BYTE], dest=0, tag=Tag.EPOCH)
    comm.send(answers, dest=0, tag=99)
else:
    buf, told = np.zeros(1, EPOCH_DTYPE), []
    while True:
        comm.Recv([buf.view(np.uint8), MPI.BYTE], source=1, tag=Tag.EPOCH)
        if int(buf[0]["id"]) == -99:
            break
        told.append([int(buf[0]["id"]), int(buf[0]["epoch"]), round(float(buf[0]["accuracy"]), 2)])
    answers = comm.recv(source=1, tag=99)
    print(json.dumps({"told": told, "answers": answers}))
"""


def test_rungs_are_always_told_and_other_epochs_at_most_every_so_often():
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-c", PAIR], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["answers"] == [False] * 15  # a worker never stops itself: rank 0 answers with PRUNE
    assert d["told"] == [[7, 2, 61.5], [7, 6, 61.5], [8, 1, -1.0], [8, 2, -1.0], [8, 3, -1.0]]
