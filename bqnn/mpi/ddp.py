"""The MPI side of data-parallel final training: who this rank is, and where the process group meets.

    rank, world, local, address = bootstrap()     # under mpiexec or srun; collective over COMM_WORLD

Rank 0 picks a free TCP port on its host and broadcasts (host, port); `local` is the rank's index among
the ranks of its node (it picks the GPU). training/dist.py joins torch.distributed there.

    end(code)                                     # the last call of a data-parallel rank: never returns

A rank of a data-parallel job ends with `end`: MPI finalized, output flushed, then the process exits without
the interpreter's teardown, where the threads of torch.distributed's gloo backend could still be joinable and
abort the process ("terminate called without an active exception", exit 6 from mpiexec) after every result
was written.
"""
from __future__ import annotations

import os
import socket
import sys
from typing import NoReturn


def bootstrap() -> tuple[int, int, int, tuple[str, int]]:
    """(rank, world size, node-local rank, (host, port) of the rendezvous)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.Get_rank()
    node.Free()
    address: tuple[str, int] | None = None
    if rank == 0 and world > 1:
        s = socket.socket()
        s.bind(("", 0))
        address = (socket.gethostname(), s.getsockname()[1])
        s.close()
    if world > 1:
        address = comm.bcast(address, root=0)
    return rank, world, local, address or ("", 0)


def end(code: int) -> NoReturn:
    """Exit this rank with `code`, after MPI_Finalize, skipping the interpreter's teardown (see above)."""
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()
    os._exit(code)
