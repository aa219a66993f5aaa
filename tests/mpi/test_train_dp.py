"""Data-parallel bqnn.train under mpiexec (gloo on CPU) against one process with the same global batch."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MPIEXEC, ROOT, needs_fashion, needs_mpiexec, run_module

pytestmark = [needs_mpiexec, needs_fashion]

ARGS = ["--block", "residual-like", "--set", "data.train_subset=2000", "--set", "data.val_size=500",
        "--set", "data.resize=14", "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]",
        "--set", "train.batch_size=64", "--set", "train.epochs=3", "--set", "train.milestones=[2]",
        "--set", "train.lr=0.05", "--set", "train.threads=1"]


def mpi_train(n, *args):
    # faulthandler: a rank that aborts shows where, in the assertion's stderr
    return subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "bqnn.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def test_two_ranks_follow_the_single_process_loss_curve(tmp_path):
    one = run_module("bqnn.train", *ARGS, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = mpi_train(2, *ARGS, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert "2 ranks" in two.stdout and two.stdout.count("done: test accuracy") == 1  # rank 0 speaks
    a = json.loads((tmp_path / "one" / "result.json").read_text())
    b = json.loads((tmp_path / "two" / "result.json").read_text())
    assert b["world_size"] == 2
    la, lb = [h["loss"] for h in a["history"]], [h["loss"] for h in b["history"]]
    # on CPUs batch norm normalizes over each rank's half batch (SyncBatchNorm is GPU-only): close, not equal.
    # Measured over train.seed 0-4 on a CPU without native bf16: the two-rank loss is higher by 0.1-1.2 % at
    # epoch 1, 1.1-2.7 % at 2 and 2.7-5.1 % at 3 (half-batch statistics are noisier), about the spread between
    # seeds of one process (1.125-1.168 at epoch 3); twice the largest gap measured is allowed
    assert lb == pytest.approx(la, rel=0.10), (la, lb)
    assert la[-1] < la[0] and lb[-1] < lb[0]
    assert abs(a["best_val_accuracy"] - b["best_val_accuracy"]) < 8  # measured: 0.8-3.6 points apart


HARNESS = """
import sys, json, torch
from pathlib import Path
from torch import nn
from bqnn import train
from bqnn.train import setup
from bqnn.training.final import Job

class FrozenBN(nn.Module):  # batch norm with fixed statistics: no dependence on how a batch is split
    def __init__(self, bn):
        super().__init__()
        self.weight, self.bias = bn.weight, bn.bias
    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

def freeze(m):
    for name, child in m.named_children():
        setattr(m, name, FrozenBN(child)) if isinstance(child, nn.BatchNorm2d) else freeze(child)

real_ddp = torch.nn.parallel.DistributedDataParallel
def frozen_ddp(module, **kw):  # freeze batch norm before DDP registers the parameters
    freeze(module)
    return real_ddp(module, **kw)
torch.nn.parallel.DistributedDataParallel = frozen_ddp

args = train.parse_args(sys.argv[1:])
nsc, cfg, out, source = train.resolve(args)
d, device = setup("cpu")
job = Job(nsc, cfg, out, source, d, device)
if not d.active:
    freeze(job.net)
losses = [job._epoch(e) for e in range(3)]
if d.main:
    w = torch.cat([p.detach().flatten() for p in job.net.parameters()])
    print(json.dumps({"losses": losses, "weights": w[:200].tolist(), "norm": float(w.norm())}))
d.close()
"""


def test_sharding_and_gradient_averaging_are_exact_without_batch_norm_statistics(tmp_path):
    """Six SGD steps (2 batches x 3 epochs, momentum, an lr milestone) with batch norm frozen: 2 ranks and
    1 process agree to float precision. (Over hundreds of steps rounding differences between batch-32
    and batch-64 kernels grow, as training amplifies any perturbation; the curve test covers that.)"""
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    # fp32: bf16 autocast (train.amp's auto choice on CPUs with native bf16, as here) rounds a half batch's
    # partial sums differently from the whole batch's, 3e-5 apart after one step
    args = [*ARGS, "--set", "data.train_subset=128", "--set", "train.amp=off", "--out", str(tmp_path / "h")]
    one = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert b["losses"] == pytest.approx(a["losses"], rel=1e-6)  # same global batches, same crops, same updates
    assert b["weights"] == pytest.approx(a["weights"], rel=1e-5, abs=1e-7)
    assert b["norm"] == pytest.approx(a["norm"], rel=1e-6)
