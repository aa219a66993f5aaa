"""Which device a trainer uses, and which speed options are on there.

Used as a library by the trainers and the workers: `resolve_device(cfg.trainer.device, local_index)`,
`speed_options(cfg.trainer, device)`.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import torch

from ..config import ConfigError, FinalTrainConfig, TrainerConfig


def gpus_allocated(env: Mapping[str, str]) -> int:
    """How many GPUs SLURM gave this task or node (SLURM_STEP_GPUS, SLURM_JOB_GPUS: index lists;
    SLURM_GPUS_ON_NODE: a count); 0 when none or not under SLURM."""
    for var in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        ids = [g for g in env.get(var, "").split(",") if g.strip()]
        if ids:
            return len(ids)
    count = env.get("SLURM_GPUS_ON_NODE", "")
    return int(count) if count.isdigit() else 0


def pick_device(spec: str, local_rank: int, cuda_count: int, allocated: int, key: str = "trainer.device",
                host: str = "") -> str:
    """The device name a process uses, from the config value and what the machine has (a pure function).

    `auto` and `cuda`: the GPU of this node-local rank, `cuda:(local_rank mod visible GPUs)`; `cuda` requires
    one. `auto` falls back to the CPU only where no GPU was allocated: SLURM gave GPUs that torch cannot use
    (a CPU build of torch, a build newer than the driver, CUDA_VISIBLE_DEVICES emptied) is a ConfigError,
    since training hundreds of candidates on the CPU by accident wastes the allocation; `cpu` is always
    allowed. `cuda:K` must exist."""
    where = f" on {host}" if host else ""
    if spec in ("auto", "cuda"):
        if cuda_count > 0:
            return f"cuda:{local_rank % cuda_count}"
        if spec == "cuda" or allocated:
            why = (f"SLURM allocated {allocated} GPU(s){where} but torch can use none" if allocated
                   else f"no usable CUDA device{where}")
            raise ConfigError(f"config key {key}: {spec}: {why} (torch {torch.__version__}, built with CUDA "
                              f"{torch.version.cuda or 'none'}; install a CUDA build of torch, see docs/gpu.md, "
                              f"or set {key}=cpu to train on the CPU deliberately)")
        return "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if cuda_count == 0:
            raise ConfigError(f"config key {key}: {spec} is not available: no usable CUDA device{where} "
                              f"(use auto or cpu)")
        if device.index is not None and device.index >= cuda_count:
            raise ConfigError(f"config key {key}: {spec} does not exist: {host or 'this machine'} has {cuda_count} "
                              f"CUDA device(s)")
        if device.index is None:
            return f"cuda:{local_rank % cuda_count}"
    return str(device)


def resolve_device(spec: str, local_rank: int = 0, key: str = "trainer.device") -> torch.device:
    """`pick_device` for this process, and the device made current (a CUDA worker that never calls
    set_device opens a context on GPU 0 as well as its own)."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = torch.device(pick_device(spec, local_rank, count, gpus_allocated(os.environ), key,
                                      socket.gethostname()))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def visible_gpus() -> tuple[str, ...]:
    """UUIDs of the GPUs this process can use, in device order (for the binding plan, mpi/binding.py)."""
    if not torch.cuda.is_available():
        return ()
    return tuple(str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count()))


def backend_options(cudnn_benchmark: bool, deterministic: bool) -> None:
    """cuDNN autotuning (fastest kernels for fixed shapes), or deterministic kernels only: then a rerun, a resumed
    search or a resumed training gives the same numbers on a GPU as it does on a CPU (slower; operations without
    a deterministic kernel raise). A process-wide setting, made once by each trainer."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic


def cpu_threads(node_workers: int, affinity: int, cpu_count: int) -> int:
    """Threads for one CPU-training worker: the cores it is bound to when the launcher bound it (srun's
    --cpus-per-task with task binding), else its share of the node's cores."""
    if 0 < affinity < cpu_count:
        return affinity
    return max(1, cpu_count // max(node_workers, 1))


def cpu_has_native_bf16() -> bool:
    """True if the CPU computes bf16 in hardware (AVX512-BF16 or AMX), where autocast is faster;
    on other CPUs bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def speed_options(t: TrainerConfig | FinalTrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, channels_last) for `trainer.amp` and `trainer.channels_last` on this device.
    auto: bf16 and channels-last on GPUs with bf16 and on CPUs with native bf16 (measured +30-40 % on the
    demo's networks, bench/README.md); neither where bf16 would be emulated."""
    if device.type == "cuda":  # bf16 in hardware from compute capability 8.0 (Ampere); is_bf16_supported()
        fast_bf16 = torch.cuda.get_device_capability(device)[0] >= 8  # also counts emulation on older GPUs
    else:
        fast_bf16 = cpu_has_native_bf16()
    amp = t.amp == "bf16" or (t.amp == "auto" and fast_bf16)
    channels_last = t.channels_last == "on" or (t.channels_last == "auto" and (device.type == "cuda" or amp))
    return (torch.bfloat16 if amp else None), channels_last
