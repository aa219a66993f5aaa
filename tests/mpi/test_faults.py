"""Faults on workers under real `mpiexec` (issue 15): a failed device retires its rank and the candidate is
trained elsewhere; an out-of-memory is retried once on another rank; a hung worker is found by the task
deadline and the job ends (exit 75, checkpoint written, every process gone)."""
import time

import numpy as np

from bqnn.run import checkpoint
from bqnn.training.result import Status
from tests.conftest import mpi_search, needs_fashion, needs_mpiexec, rank_pids, run_module, wait_for

pytestmark = needs_mpiexec

SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=6",
       "--set", "space.max_index=6", "--set", "search.replay_samples=6", "--set", "search.schedule=[[1.0, 3]]",
       "--set", "trainer.sim_seconds=0.1"]


def rows(out):
    c = checkpoint.read(out / "search.h5").candidates
    return c[np.argsort(c["id"])]


def test_a_failed_device_retires_its_rank_and_the_candidate_is_trained_elsewhere(tmp_path):
    out = tmp_path / "run"
    r = mpi_search(4, out, *SIM, "--set", "trainer.inject_fault=device", "--set", "trainer.inject_every=1000")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: rank")]
    assert len(warnings) == 1 and "is retired, its device failed" in warnings[0], r.stderr
    assert "candidate 0 goes to another rank" in warnings[0]
    retired = int(warnings[0].split()[2])
    c = rows(out)
    assert c["id"].tolist() == list(range(18)) and (c["status"] == Status.OK).all()  # nothing cached from it
    assert retired not in c["rank"].tolist()  # it trained nothing after its device failed
    assert "done: 18 candidates" in r.stdout


def test_an_out_of_memory_is_retried_once_on_another_rank(tmp_path):
    args = [*SIM, "--set", "trainer.inject_fault=oom", "--set", "trainer.inject_every=4"]
    r = mpi_search(3, tmp_path / "two", *args)  # two workers: every OOM is retried elsewhere and succeeds
    assert r.returncode == 0, r.stderr
    c = rows(tmp_path / "two")
    assert (c["status"] == Status.OK).all() and len(c) == 18
    r = mpi_search(2, tmp_path / "one", *args)  # one worker: nowhere else to go, the OOM is the result
    assert r.returncode == 0, r.stderr
    c = rows(tmp_path / "one")
    oom = c[c["status"] == Status.OOM]
    assert len(oom) >= 1 and all(i % 4 == 0 for i in oom["id"].tolist())


def test_a_hung_worker_is_found_by_the_deadline_and_the_job_ends(tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    r = mpi_search(3, out, *SIM, "--set", "trainer.inject_fault=hang", "--set", "trainer.inject_every=1000",
                   "--set", "search.task_deadline=2", timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert took < 30  # the deadline, not the hour the worker would sleep
    errors = [line for line in r.stderr.splitlines() if line.startswith("bqnn.search: error:")]
    assert len(errors) == 1 and "has been training candidate 0 for" in errors[0] and "over the deadline" in errors[0]
    assert "checkpoint written" in errors[0]
    assert wait_for(lambda: not rank_pids(out), 10)  # the hung process is gone too
    state = checkpoint.read(out / "search.h5")
    assert 0 in state.inflight_id.tolist() and 0 not in state.candidates["id"].tolist()


def test_a_failed_device_in_one_process_ends_the_job_for_a_rerun(tmp_path):
    out = tmp_path / "run"
    r = run_module("bqnn.search", "--out", str(out), *SIM, "--set", "trainer.inject_fault=device",
                   "--set", "trainer.inject_every=1000", timeout=120)
    assert r.returncode == 75, r.stderr
    assert r.stderr.count("\n") == 1 and "the device of this process" in r.stderr and "candidate 0" in r.stderr
    state = checkpoint.read(out / "search.h5")
    assert len(state.candidates) == 0 and 0 in state.inflight_id.tolist()  # trained again by the rerun


@needs_fashion
def test_a_failed_device_with_the_real_trainer(tmp_path):
    """The real CPU trainer raises the injected CUDA error inside its first epoch; its own handler classifies it
    (training/result.is_device_fault) and the rank is retired as with the simulated trainer."""
    out = tmp_path / "run"
    real = ["--config", "/dev/null", "--set", "search.blocks_per_iteration=3", "--set", "search.schedule=[[1.0, 1]]",
            "--set", "space.max_index=4", "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]",
            "--set", "data.train_subset=500", "--set", "data.val_size=200", "--set", "data.resize=14",
            "--set", "trainer.epochs=1", "--set", "trainer.batch_size=64",
            "--set", "trainer.inject_fault=device", "--set", "trainer.inject_every=1000"]
    r = mpi_search(3, out, *real)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: rank")]
    assert len(warnings) == 1 and "CUDA error: an illegal memory access" in warnings[0], r.stderr
    c = rows(out)
    assert c["id"].tolist() == [0, 1, 2] and (c["status"] == Status.OK).all()
    assert int(warnings[0].split()[2]) not in c["rank"].tolist()
