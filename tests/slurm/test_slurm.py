"""The sbatch scripts of slurm/, run on a real local SLURM: a search job, requeue, time limit, the
verification array, and the submit helper. The long jobs are submitted together at the start and
run side by side."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from tests.conftest import FASHION, ROOT, run_module, wait_for

SLURM = ROOT / "slurm"
SCRIPTS = sorted(p for p in SLURM.iterdir() if p.suffix in (".sh", ".sbatch"))

JOB = """
[search]
seed = {seed}
blocks_per_iteration = 8
schedule = [[1.0, {explore}], [0.1, {exploit}]]
replay_samples = 8
[space]
max_index = 8
[network]
blocks_per_stage = 1
filters = [8, 16, 32]
[data]
resize = 14
[trainer]
kind = "simulated"
sim_seconds = {sim}
"""


def job_file(d: Path, seed=0, explore=3, exploit=2, sim=0.05) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "job.toml"
    p.write_text(JOB.format(seed=seed, explore=explore, exploit=exploit, sim=sim))
    return p


def search_ids(out: Path) -> list[int]:
    with h5py.File(out / "search.h5") as f:
        return sorted(f["candidates"]["id"].tolist())


def trained_twice(out: Path) -> int:
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
    t = c[c["repeat"] == 0]
    return len(t) - len(set(t["hash"].tolist()))


def small(d: Path) -> list[str]:
    return ["--nodes=1", "--ntasks=3", "--cpus-per-task=1", f"--chdir={d}", f"--output={d}/log.out"]


@pytest.fixture(scope="module")
def jobs(cluster, tmp_path_factory):
    """Submit the long jobs at once; each test then waits for its own."""
    base = tmp_path_factory.mktemp("jobs")
    j = {}
    # a search that is requeued while it runs (about 40 s of simulated training)
    d = base / "requeue"
    j["requeue"] = (cluster.sbatch(*small(d), str(SLURM / "search.sbatch"),
                                   str(job_file(d, sim=0.4, explore=6, exploit=4)),
                                   str(d / "out")), d)
    # a search whose 1-minute time limit falls mid-search (about 100 s of simulated training)
    d = base / "timelimit"
    j["timelimit"] = (cluster.sbatch(*small(d), "--time=1", "--signal=USR1@20", str(SLURM / "search.sbatch"),
                                     str(job_file(d, sim=1.0, explore=10, exploit=5)), str(d / "out")), d)
    return j


def test_scripts_pass_bash_n_and_shellcheck():
    for script in SCRIPTS:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (setup.sh --test installs it)")
    r = subprocess.run(["shellcheck", "--severity=style", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_variable_read_is_documented_in_the_header(script):
    text = script.read_text()
    header = "\n".join(line for line in text.splitlines()[1:] if line.startswith("#"))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assigned = set(re.findall(r"^\s*(?:local\s+)?([a-z_][a-z0-9_]*)=", body, re.M))
    assigned |= set(re.findall(r"for\s+([a-z_]+)\s+in", body)) | set(re.findall(r"read -r -a ([a-z_]+)", body))
    read = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", body)) - assigned - {"PWD"}
    missing = sorted(v for v in read if v not in header)
    assert not missing, f"{script.name} reads {missing} without documenting them in its header"
    assert any(f"${n}" in header for n in ("1", "2")) or script.name == "local-cluster.sh" or "CONFIG" in header


def test_search_job_completes(cluster, tmp_path):
    out = tmp_path / "out"
    job = cluster.sbatch(*small(tmp_path), str(SLURM / "search.sbatch"), str(job_file(tmp_path)), str(out))
    info = cluster.wait(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 240)
    log = (tmp_path / "log.out").read_text()
    assert info["JobState"] == "COMPLETED", log
    assert f"bqnn search job {job}: SLURM_RESTART_COUNT=0, 3 tasks on 1 node(s)" in log
    assert "world size 3 (2 workers" in log
    s = json.loads(run_module("bqnn.report", str(out), "--json").stdout)
    assert (s["iterations_done"], s["candidates"]) == (5, 40)  # the configured candidates
    assert search_ids(out) == list(range(40))


def test_requeue_resumes_and_trains_nothing_twice(cluster, jobs):
    job, d = jobs["requeue"]
    out = d / "out"
    cluster.wait(job, ("RUNNING",), 240)
    assert wait_for(lambda: (out / "search.h5").exists() and "iter  2/10" in (d / "log.out").read_text(), 120)
    cluster.run("scontrol", "requeue", job)
    info = cluster.wait(job, ("PENDING",), 60)
    assert int(info["Restarts"]) == 1
    cluster.run("scontrol", "update", f"jobid={job}", "StartTime=now")  # instead of waiting ~2 minutes
    info = cluster.wait(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300)
    log = (d / "log.out").read_text()
    assert info["JobState"] == "COMPLETED", log
    assert "stopped by signal SIGTERM: checkpoint written" in log
    assert f"restart 1 of job {job}: resuming from {out}/search.h5" in log and "SLURM_RESTART_COUNT=1" in log
    assert re.search(r"resuming at iteration \d+/10", log)
    assert search_ids(out) == list(range(80))  # every candidate id exactly once
    assert trained_twice(out) == 0  # no block trained twice
    assert json.loads(run_module("bqnn.report", str(out), "--json").stdout)["runs"] == 2


def test_time_limit_signal_checkpoints_and_a_resubmission_finishes(cluster, jobs):
    job, d = jobs["timelimit"]
    out = d / "out"
    info = cluster.wait(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300)
    log = (d / "log.out").read_text()
    assert "stopped by signal SIGUSR1: checkpoint written" in log, log
    assert "bqnn search exited with 143" in log and info["ExitCode"].startswith("143")
    with h5py.File(out / "search.h5") as f:
        done_before = int(f.attrs["iteration"])
    assert 0 < done_before < 15
    # the same script again (the search's sleeps shortened: a runtime key) finishes it
    job2 = cluster.sbatch(*small(d), str(SLURM / "search.sbatch"), str(d / "job.toml"), str(out),
                          env={"BQNN_SET": "trainer.sim_seconds=0.02"})
    info = cluster.wait(job2, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300)
    assert info["JobState"] == "COMPLETED", (d / "log.out").read_text()
    assert search_ids(out) == list(range(120)) and trained_twice(out) == 0


needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist")
# train.device=cpu: the local cluster's GPUs are GRES without devices, and bqnn refuses to fall back to the CPU
# silently where SLURM allocated GPUs (test_allocated_gpus_without_cuda_are_refused)
TINY_TRAIN = ("train.epochs=1 train.milestones=[] data.train_subset=600 data.val_size=300 train.threads=1 "
              "train.device=cpu")


@needs_fashion
def test_verification_array_records_each_block_next_to_the_search(cluster, tmp_path):
    search = tmp_path / "search"
    r = run_module("bqnn.search", "--config", str(ROOT / "jobs" / "demo.toml"), "--out", str(search),
                   "--set", "search.schedule=[[1.0, 1]]", "--set", "search.blocks_per_iteration=4",
                   "--set", "data.train_subset=500", "--set", "trainer.epochs=1")
    assert r.returncode == 0, r.stderr
    top = json.loads(run_module("bqnn.report", str(search), "--json", "--top", "3").stdout)["top"]
    job = cluster.sbatch("--array=1-3", "--cpus-per-task=1", f"--chdir={tmp_path}",
                         f"--output={tmp_path}/verify-%a.out", str(SLURM / "verify.sbatch"), str(search),
                         env={"BQNN_TRAIN_SET": TINY_TRAIN})
    tasks = cluster.wait_array(job, 300)
    assert len(tasks) == 3 and all(t["JobState"] == "COMPLETED" for t in tasks), [
        (tmp_path / f"verify-{i}.out").read_text() for i in (1, 2, 3)]
    for k in (1, 2, 3):
        res = json.loads((search / "verify" / f"rank-{k:03d}" / "result.json").read_text())
        assert res["source"]["rank"] == k and res["hash"] == top[k - 1]["hash"]
        assert res["source"]["reward"] == pytest.approx(top[k - 1]["reward"])
        assert res["epochs"] == 1 and 0 < res["test_accuracy"] <= 100
        assert (search / "verify" / f"rank-{k:03d}" / "train.pt").exists()


@needs_fashion
def test_submit_chains_the_verification_after_the_search(cluster, tmp_path):
    out = tmp_path / "out"
    env = {"SBATCH_ARGS": " ".join(small(tmp_path)),
           "VERIFY_SBATCH_ARGS": f"--cpus-per-task=1 --chdir={tmp_path} --output={tmp_path}/verify-%a.out",
           "BQNN_TRAIN_SET": TINY_TRAIN}
    r = cluster.run("bash", str(SLURM / "submit.sh"), str(job_file(tmp_path, sim=0.3)), str(out), "2", env=env)
    search_id = re.search(r"search job (\d+)", r.stdout).group(1)
    verify_id = re.search(r"verification array (\d+)", r.stdout).group(1)
    pending = cluster.job(verify_id)
    assert pending["JobState"] == "PENDING" and pending["Dependency"].startswith(f"afterok:{search_id}")
    assert cluster.wait(search_id, ("COMPLETED", "FAILED"), 240)["JobState"] == "COMPLETED"
    tasks = cluster.wait_array(verify_id, 300)
    assert [t["JobState"] for t in tasks] == ["COMPLETED", "COMPLETED"]
    assert sorted(p.parent.name for p in (out / "verify").glob("*/result.json")) == ["rank-001", "rank-002"]


@needs_fashion
def test_allocated_gpus_without_cuda_are_refused(cluster, tmp_path):
    """Issue 15: a step with GPUs allocated (the local cluster's GRES) and a torch that can use none (this CPU
    wheel) stops with one line instead of training on the CPU; train.device=cpu is the deliberate override."""
    r = cluster.run("srun", "-n", "1", "--gpus=1", "--mpi=pmi2", sys.executable, "-m", "bqnn.train", "--block",
                    "residual-like", "--out", str(tmp_path / "t"), "--set", "train.epochs=1", check=False)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("bqnn.train: error:")]
    assert len(errors) == 1 and "SLURM allocated 1 GPU(s)" in errors[0] and "train.device=cpu" in errors[0]
    assert not (tmp_path / "t").exists()


def test_srun_without_a_working_mpi_start_is_one_line_not_n_searches(cluster, tmp_path):
    """Issue 15: `srun --mpi=none -n 3` starts three processes that each see a world of one: all stop, one line."""
    out = tmp_path / "run"
    r = cluster.run("srun", "-n", "3", "--mpi=none", sys.executable, "-m", "bqnn.search", "--config", "/dev/null",
                    "--out", str(out), "--set", "trainer.kind=simulated", check=False)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("bqnn.search: error:")]
    assert len(errors) == 1 and "started 3 tasks (SLURM_STEP_NUM_TASKS=3) but MPI sees a world of 1" in errors[0]
    assert not out.exists()
    ok = cluster.run("srun", "-n", "2", "--mpi=pmi2", sys.executable, "-m", "bqnn.mpi.check", check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("MPI ok: 2 ranks on 1 host(s)"), ok.stderr
