"""MPI start-up: is this process part of an MPI job, and which communicator to use.

Used by the entry points (search.py, train.py) before anything else, and by the manager and workers
at start-up (`bind`, `quiet_bcast`). The only place, with the rest of mpi/, that imports mpi4py.
mpi4py is imported (and MPI
initialised) only when the launcher left its marks in the environment
(mpiexec/Hydra, srun with PMI-2 or PMIx, Open MPI), so a plain
`python -m bqnn.search` never depends on a working MPI installation.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from .backoff import Backoff
from .binding import Plan, Seen, plan_binding

_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")


def launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def env_rank() -> int:
    """This process's rank as the launcher set it in the environment (0 when not launched by MPI);
    usable before MPI is initialised, e.g. to let only rank 0 print an early error."""
    for var in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


# Variables an MPI launcher sets to the number of processes it started, most specific first.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
CHECK_COMMAND = "srun -n 2 --mpi=pmi2 python -m bqnn.mpi.check"


def launcher_tasks(env: Mapping[str, str]) -> tuple[int, str] | None:
    """(tasks, variable) the launcher says it started, or None when nothing says. An MPI launcher's own
    variable wins; otherwise `srun`'s step size (SLURM_STEP_NUM_TASKS in a numbered step, not in the batch
    script, where one process runs whatever the allocation's size)."""
    for var in _SIZE_VARS:
        if env.get(var, "").isdigit():
            return int(env[var]), var
    if env.get("SLURM_STEP_ID", "").isdigit() and env.get("SLURM_STEP_NUM_TASKS", "").isdigit():
        return int(env["SLURM_STEP_NUM_TASKS"]), "SLURM_STEP_NUM_TASKS"
    return None


def launch_mismatch(world_size: int, env: Mapping[str, str]) -> str | None:
    """One line when the launcher started more (or other) tasks than the MPI world holds: each task would
    otherwise run alone (33 searches writing one search.h5, 8 trainings writing one train.pt)."""
    claim = launcher_tasks(env)
    if claim is None or claim[0] == world_size:
        return None
    n, var = claim
    fix = ("srun did not give MPI what it needs to start: pass srun --mpi=pmi2 (the pip MPICH) or the --mpi your "
           "cluster's MPI needs" if var == "SLURM_STEP_NUM_TASKS" else "the MPI library does not match the launcher")
    return (f"the launcher started {n} tasks ({var}={n}) but MPI sees a world of {world_size}: {fix}; "
            f"check with: {CHECK_COMMAND}")


def world_size(comm: Any) -> int:
    return 1 if comm is None else int(comm.Get_size())


def world() -> Any:
    """MPI.COMM_WORLD when launched by an MPI launcher, else None."""
    if not launched_by_mpi():
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD


def bind(comm: Any, visible: tuple[str, ...], share: bool, spec: str = "auto") -> Plan:
    """The binding plan (mpi/binding.py) from what every rank sees: host and the UUIDs of its visible GPUs
    (() for rank 0 and CPU workers). Collective over `comm`; every rank gets the same plan."""
    rows = comm.allgather((comm.Get_rank(), socket.gethostname(), tuple(visible)))
    return plan_binding([Seen(int(r), str(h), tuple(v)) for r, h, v in rows], share, spec)


def quiet_bcast(comm: Any, obj: Any, root: int = 0) -> Any:
    """`comm.bcast(obj, root)`, but the other ranks wait for the root with naps (a non-blocking barrier
    tested every few milliseconds) instead of in the broadcast, where MPICH spins a core each: while
    rank 0 starts up (imports, reading a checkpoint), 128 spinning ranks on a node would take the CPU it
    needs. Every rank must call it at the same point."""
    req = comm.Ibarrier()
    if comm.Get_rank() == root:
        req.Wait()
    else:
        wait = Backoff(first=1e-3, hot=0.05, idle=0.05)
        while not req.Test():
            wait.nap(since=0.0)
    return comm.bcast(obj, root=root)
