"""torch.distributed for data-parallel final training (`python -m bqnn.train` under mpiexec or srun).

Used by training/final.py (`Dist`: sums, agreement on a stop, barriers) and by the entry point, which
learns rank, world and rendezvous address from the MPI job (mpi/ddp.py) and calls `join`: NCCL on GPUs,
gloo on CPUs. No MPI here. No MASTER_ADDR/MASTER_PORT to set by hand.
"""
from __future__ import annotations

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
        return [float(v) for v in t.tolist()]

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

    def close(self, finished: bool = True) -> None:
        """Leave the group; after a finished job every rank first waits for the others (no rank tears its
        connections down while another still talks), after a failure it leaves at once."""
        if self.active and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def join(rank: int, world: int, local: int, address: tuple[str, int], device: torch.device) -> Dist:
    """Join the process group at `address` (host, port), every rank with its own device."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    host, port = address
    dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=world)
    return Dist(rank, world, local)
