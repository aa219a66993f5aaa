"""Pruning under real `mpiexec` (issue 17): workers report rungs with EPOCH, rank 0 answers PRUNE, in both dispatch
modes; batch mode prunes exactly as one process does, and after SIGKILLs as an uninterrupted run."""
import h5py
import numpy as np

from bqnn.training.result import Status
from tests.conftest import mpi_search, needs_mpiexec, run_module, sigkill_and_resume

pytestmark = needs_mpiexec

ARGS = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=8",
        "--set", "space.max_index=8", "--set", "search.replay_samples=8", "--set", "search.seed=3",
        "--set", "search.schedule=[[1.0, 3], [0.3, 2], [0.1, 2]]", "--set", "pruning.rule=median",
        "--set", "pruning.rungs=[1,3,6]", "--set", "pruning.min_candidates=6"]
TIMED = ARGS + ["--set", "trainer.sim_seconds=0.6"]  # 12 epochs of 0.05 s: rung 1 after 0.05 s
FIELDS = ("id", "iteration", "nsc", "status", "repeat", "accuracy", "reward", "epochs", "rungs")


def candidates(out):
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
    return c[np.argsort(c["id"])]


def test_batch_pruning_under_mpiexec_is_the_one_process_search_and_workers_stop_early(tmp_path):
    one = run_module("bqnn.search", "--out", str(tmp_path / "one"), *ARGS)
    three = mpi_search(3, tmp_path / "three", *TIMED)
    assert one.returncode == 0 and three.returncode == 0, three.stderr
    a, b = candidates(tmp_path / "one"), candidates(tmp_path / "three")
    for name in FIELDS:
        assert np.array_equal(a[name], b[name]), name
    pruned = b[(b["status"] == Status.PRUNED) & (b["repeat"] == 0)]
    assert len(pruned) >= 8
    at_one = pruned[pruned["epochs"] == 1]["seconds"]
    # stopped by rank 0's answer, not trained on: a full training takes 0.6 s, rung 1 comes after 0.05 s
    assert len(at_one) and np.median(at_one) < 0.3, at_one


def test_async_pruning_under_mpiexec_with_failing_candidates(tmp_path):
    r = mpi_search(3, tmp_path / "async", *TIMED, "--set", "search.dispatch=async",
                   "--set", "trainer.inject_fault=exception", "--set", "trainer.inject_every=7")
    assert r.returncode == 0, r.stderr
    c = candidates(tmp_path / "async")
    pruned = c[(c["status"] == Status.PRUNED) & (c["repeat"] == 0)]
    assert len(c) == 56 and len(pruned) >= 4
    assert set(pruned["epochs"].tolist()) <= {1, 3, 6} and not (c[c["id"] < 6]["status"] == Status.PRUNED).any()
    failed = c[c["status"] == Status.ERROR]
    assert len(failed) and (failed["rungs"] == -1).all()  # a failure reached no rung, and is no reference


def test_sigkill_at_random_points_then_resume_prunes_as_uninterrupted(tmp_path):
    args = TIMED + ["--set", "search.checkpoint_interval=0"]
    ref = tmp_path / "ref"
    assert mpi_search(3, ref, *args).returncode == 0
    out = tmp_path / "killed"
    progress = sigkill_and_resume(out, tuple(args), latest=2.0)
    assert 0 < progress[0] < 56, progress
    a, b = candidates(ref), candidates(out)
    assert b["id"].tolist() == list(range(56))
    for name in FIELDS:
        assert np.array_equal(a[name], b[name]), name
    assert (a["status"] == Status.PRUNED).sum() >= 8
