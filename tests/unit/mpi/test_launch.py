"""The launcher check (mpi/launch.py): the task count the launcher claims against the MPI world (issue 15)."""
import pytest

from bqnn.mpi.launch import CHECK_COMMAND, launch_mismatch, launcher_tasks
from tests.conftest import run_module

SRUN_STEP = {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "33", "SLURM_NTASKS": "33", "SLURM_PROCID": "0"}


@pytest.mark.parametrize("env,claim", [
    ({}, None),
    (SRUN_STEP, (33, "SLURM_STEP_NUM_TASKS")),
    ({**SRUN_STEP, "PMI_SIZE": "33", "PMI_RANK": "0"}, (33, "PMI_SIZE")),  # srun --mpi=pmi2
    ({"SLURM_NTASKS": "33", "SLURM_STEP_ID": "batch"}, None),  # the batch script itself: one process by design
    ({"SLURM_NTASKS": "33"}, None),
    ({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8", "PMI_SIZE": "9"}, (9, "PMI_SIZE")),  # mpiexec in a step
    ({"OMPI_COMM_WORLD_SIZE": "4"}, (4, "OMPI_COMM_WORLD_SIZE")),
    ({"PMI_SIZE": "x", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}, (2, "SLURM_STEP_NUM_TASKS")),
])
def test_what_the_launcher_claims(env, claim):
    assert launcher_tasks(env) == claim


def test_a_world_of_one_under_a_33_task_step_is_refused_and_a_consistent_one_passes():
    msg = launch_mismatch(1, SRUN_STEP)
    assert msg is not None and "\n" not in msg
    assert "started 33 tasks (SLURM_STEP_NUM_TASKS=33) but MPI sees a world of 1" in msg
    assert "--mpi=pmi2" in msg and CHECK_COMMAND in msg
    assert launch_mismatch(33, {**SRUN_STEP, "PMI_SIZE": "33"}) is None
    assert launch_mismatch(33, SRUN_STEP) is None
    assert launch_mismatch(1, {}) is None and launch_mismatch(1, {"SLURM_NTASKS": "33"}) is None
    assert "does not match the launcher" in launch_mismatch(2, {"PMI_SIZE": "3"})


@pytest.mark.parametrize("module,args", [
    ("bqnn.search", ["--config", "/dev/null", "--set", "trainer.kind=simulated"]),
    ("bqnn.train", ["--block", "residual-like"]),
    ("bqnn.mpi.check", []),
])
def test_every_entry_point_stops_at_once_when_srun_could_not_start_mpi(tmp_path, module, args):
    """What each of srun's tasks sees when MPI did not start (srun without a working --mpi): task 0 prints one
    line and every task exits 2 before anything is written."""
    out = tmp_path / "out"
    outs = ["--out", str(out)] if module != "bqnn.mpi.check" else []
    for procid in ("0", "5"):
        r = run_module(module, *outs, *args, env={**SRUN_STEP, "SLURM_PROCID": procid}, timeout=60)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert (len(lines), r.stdout) == ((1, "") if procid == "0" else (0, "")), r.stderr
        assert procid != "0" or "started 33 tasks (SLURM_STEP_NUM_TASKS=33)" in lines[0]
        assert not out.exists()
