"""Device binding under real `mpiexec`: every rank takes part in the binding plan (mpi/launch.bind), workers get
their slot among the workers of their host, and rank 0 prints the table at start-up (issue 15)."""
import json
import subprocess
import sys

from tests.conftest import MPIEXEC, ROOT, mpi_search, needs_fashion, needs_mpiexec

SCRIPT = """
import json
from bqnn.mpi.launch import bind, world
from bqnn.training.device import resolve_device, visible_gpus
comm = world()
plan = bind(comm, visible_gpus() if comm.Get_rank() else (), share=False)
me = comm.Get_rank()
index, per_node = plan.slots.get(me, (-1, 0))
row = {"rank": me, "index": index, "per_node": per_node, "device": str(resolve_device("auto", max(index, 0))),
       "planned": plan.devices.get(me, "")}
rows = comm.gather(row, root=0)
if me == 0:
    print(json.dumps(rows), flush=True)
"""


@needs_mpiexec
def test_worker_slots_on_one_node():
    r = subprocess.run([str(MPIEXEC), "-n", "5", sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = sorted(json.loads(r.stdout), key=lambda d: d["rank"])
    assert [d["index"] for d in rows] == [-1, 0, 1, 2, 3]  # rank 0 trains nothing; workers 1-4 -> slots 0-3
    assert [d["per_node"] for d in rows] == [0, 4, 4, 4, 4]
    import torch

    if not torch.cuda.is_available():
        assert all(d["device"] == "cpu" for d in rows) and [d["planned"] for d in rows[1:]] == ["cpu"] * 4
    else:  # the plan and the device each worker resolves agree
        assert all(d["device"] == d["planned"] for d in rows[1:])


@needs_mpiexec
@needs_fashion
def test_the_binding_table_is_printed_at_start_up(tmp_path):
    args = ["--config", "/dev/null", "--set", "search.blocks_per_iteration=2", "--set", "search.schedule=[[1.0, 1]]",
            "--set", "space.max_index=3", "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]",
            "--set", "data.train_subset=500", "--set", "data.val_size=200", "--set", "data.resize=14",
            "--set", "trainer.epochs=1", "--set", "trainer.batch_size=64"]
    r = mpi_search(5, tmp_path / "run", *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = lines.index("binding (rank, host, device, GPU):")
    table = [line.split() for line in lines[start + 1:start + 5]]
    assert [row[:2] for row in table] == [["rank", str(r)] for r in range(1, 5)]
    import torch

    if not torch.cuda.is_available():
        assert [row[3] for row in table] == ["cpu"] * 4
    assert "warning" not in r.stderr
