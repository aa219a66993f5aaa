"""Check the MPI start before a long job: every task must see the same world, of the size the launcher started.

    srun -n 2 --mpi=pmi2 python -m bqnn.mpi.check        # inside an allocation, before sbatch'ing a search
    mpiexec -n 3 python -m bqnn.mpi.check

Rank 0 prints one line, "MPI ok: N ranks on H host(s) ...", and every rank exits 0; when the launcher's task
count and the MPI world disagree (srun without a working --mpi: each task alone in a world of 1), task 0 prints
the one-line error bqnn.search and bqnn.train would give, and every task exits 2.
"""
from __future__ import annotations

import os
import socket
import sys

from .launch import env_rank, launch_mismatch, world, world_size


def main() -> int:
    comm = world()
    problem = launch_mismatch(world_size(comm), os.environ)
    if problem:
        if env_rank() == 0:
            print(f"bqnn.mpi.check: error: {problem}", file=sys.stderr)
        return 2
    if comm is None:
        print("MPI ok: 1 process, not started by an MPI launcher (bqnn runs as one process)")
        return 0
    hosts = comm.gather(socket.gethostname(), root=0)
    if comm.Get_rank() == 0:
        assert hosts is not None
        from mpi4py import MPI

        vendor = " ".join(MPI.Get_library_version().splitlines()[0].split())
        print(f"MPI ok: {comm.Get_size()} ranks on {len(set(hosts))} host(s) ({', '.join(sorted(set(hosts)))}); "
              f"{vendor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
