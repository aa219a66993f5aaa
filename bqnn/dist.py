"""torch.distributed for data-parallel `bqnn.train`, set up from the MPI job that launched it.

    mpiexec -n 2 python -m bqnn.train ...     srun -n 8 --gpus-per-task=1 python -m bqnn.train ...

Rank 0 picks a free TCP port on its host and broadcasts host and port over MPI; every rank then
joins a torch.distributed process group there: NCCL on GPUs, gloo on CPUs. Each rank binds the
GPU given by its index among the ranks of its node. No MASTER_ADDR/MASTER_PORT to set by hand.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def agree_max(self, value: int, device: torch.device) -> int:
        """The largest of every rank's value (every rank gets the same answer)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def setup(device_spec: str) -> tuple[Dist, torch.device]:
    """(the process group, this rank's device); a single process when not launched by MPI."""
    from .mpi import launched_by_mpi
    from .trainer import resolve_device

    if not launched_by_mpi():
        return Dist(), resolve_device(device_spec)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.Get_rank()
    node.Free()
    device = resolve_device(device_spec, local)
    if world == 1:
        return Dist(), device
    if rank == 0:
        s = socket.socket()
        s.bind(("", 0))
        address = (socket.gethostname(), s.getsockname()[1])
        s.close()
    else:
        address = None
    host, port = comm.bcast(address, root=0)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=world)
    return Dist(rank, world, local), device
