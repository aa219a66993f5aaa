"""Device binding: each worker's index among the worker ranks of its node picks its GPU."""
import json
import subprocess
import sys

from tests.conftest import MPIEXEC, ROOT, needs_mpiexec

SCRIPT = """
import json
from bqnn.mpi.launch import world, worker_slot
from bqnn.training.device import resolve_device
comm = world()
index, per_node = worker_slot(comm)
row = {"rank": comm.Get_rank(), "index": index, "per_node": per_node,
       "device": str(resolve_device("auto", max(index, 0)))}
rows = comm.gather(row, root=0)
if comm.Get_rank() == 0:
    print(json.dumps(rows), flush=True)
"""


@needs_mpiexec
def test_worker_slots_on_one_node():
    r = subprocess.run([str(MPIEXEC), "-n", "5", sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = sorted(json.loads(r.stdout), key=lambda d: d["rank"])
    assert [d["index"] for d in rows] == [-1, 0, 1, 2, 3]  # rank 0 trains nothing; workers 1-4 -> slots 0-3
    assert all(d["per_node"] == 4 for d in rows)
    import torch

    if not torch.cuda.is_available():
        assert all(d["device"] == "cpu" for d in rows)
    else:  # slot modulo the visible GPUs (one per task under --gpus-per-task=1: always cuda:0)
        n = torch.cuda.device_count()
        assert [d["device"] for d in rows[1:]] == [f"cuda:{i % n}" for i in range(4)]
