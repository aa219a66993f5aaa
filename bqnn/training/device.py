"""Which device a trainer uses, and which speed options are on there.

Used as a library by the trainers and the workers: `resolve_device(cfg.trainer.device, local_index)`,
`speed_options(cfg.trainer, device)`.
"""
from __future__ import annotations

import socket

import torch

from ..config import ConfigError, TrainerConfig


def resolve_device(spec: str, local_rank: int = 0, key: str = "trainer.device") -> torch.device:
    """`auto`: the GPU of this node-local rank (modulo visible GPUs) if CUDA is present, else CPU. A CUDA device
    that this machine does not have is a ConfigError naming `key`."""
    if spec == "auto":
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"config key {key}: {spec} is not available: no usable CUDA device on "
                              f"{socket.gethostname()} (use auto or cpu)")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"config key {key}: {spec} does not exist: {socket.gethostname()} has {count} "
                              f"CUDA device(s)")
    return device


def cpu_has_native_bf16() -> bool:
    """True if the CPU computes bf16 in hardware (AVX512-BF16 or AMX), where autocast is faster;
    on other CPUs bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def speed_options(t: TrainerConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, channels_last) for `trainer.amp` and `trainer.channels_last` on this device.
    auto: bf16 and channels-last on GPUs with bf16 and on CPUs with native bf16 (measured +30-40 % on the
    demo's networks, bench/README.md); neither where bf16 would be emulated."""
    if device.type == "cuda":
        fast_bf16 = torch.cuda.is_bf16_supported()
    else:
        fast_bf16 = cpu_has_native_bf16()
    amp = t.amp == "bf16" or (t.amp == "auto" and fast_bf16)
    channels_last = t.channels_last == "on" or (t.channels_last == "auto" and (device.type == "cuda" or amp))
    return (torch.bfloat16 if amp else None), channels_last
