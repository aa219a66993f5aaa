"""MPI start-up: is this process part of an MPI job, and which communicator to use.

Used by the entry points (search.py, train.py) before anything else, and by the manager and workers
at start-up (`worker_slot`, `quiet_bcast`). The only place, with the rest of mpi/, that imports mpi4py.
mpi4py is imported (and MPI
initialised) only when the launcher left its marks in the environment
(mpiexec/Hydra, srun with PMI-2 or PMIx, Open MPI), so a plain
`python -m bqnn.search` never depends on a working MPI installation.
"""
from __future__ import annotations

import os
from typing import Any

from .backoff import Backoff

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


def world() -> Any:
    """MPI.COMM_WORLD when launched by an MPI launcher, else None."""
    if not launched_by_mpi():
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD


def worker_slot(comm: Any) -> tuple[int, int]:
    """(this rank's index among the worker ranks of its node, number of worker ranks on the node).

    Collective over `comm`: rank 0 (index -1) calls it too. Workers use the
    index to pick their GPU, the count to share the node's CPU cores."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks = node.allgather(comm.Get_rank())
    finally:
        node.Free()
    workers = sorted(r for r in ranks if r != 0)
    me = comm.Get_rank()
    return (workers.index(me) if me in workers else -1), max(len(workers), 1)


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
