"""The trainer a config names, for rank 0 (world size 1) and the workers.

    trainer, where = make_trainer(cfg)                          # one process
    trainer, where = make_trainer(cfg, local_index, node_workers) # an MPI worker: its GPU, its share of the cores

`trainer.kind = "simulated"` and `"table"` import numpy (and h5py) only, so rank 0 and such workers never load
torch; "real" imports torch here, on call, and loads the dataset onto the device.
"""
from __future__ import annotations

import os

from ..config import Config
from .result import Trainer


def make_trainer(cfg: Config, local_index: int = 0, node_workers: int = 0) -> tuple[Trainer, str]:
    """(the trainer, where it trains, for the start banner). `local_index`: this worker's index among its
    node's workers (picks its GPU); `node_workers` > 0: share the node's cores among that many workers
    when training on the CPU with `trainer.threads` unset."""
    if cfg.trainer.kind == "simulated":
        from .simulated import SimulatedTrainer

        return SimulatedTrainer(cfg), "simulated trainer"
    if cfg.trainer.kind == "table":
        from .table import TableTrainer

        return TableTrainer(cfg), f"landscape table {cfg.trainer.table}"
    import torch

    from .device import cpu_threads, resolve_device
    from .early_stop import EarlyStopTrainer

    device = resolve_device(cfg.trainer.device, local_index)
    if node_workers and device.type == "cpu" and not cfg.trainer.threads:
        torch.set_num_threads(cpu_threads(node_workers, len(os.sched_getaffinity(0)), os.cpu_count() or 1))
    return EarlyStopTrainer(cfg, device), f"training in this process on {device}"
