"""A whole network as typed steps: the CIFAR and ImageNet frameworks (CVPR 2018, Fig. 3), from the config alone.

Used as a library: `layout(cfg, in_channels, size)` is the plan that both the torch builder
(nets/network.py) and the analytic cost (blocks/cost.py) follow, so the two cannot drift apart.

    cifar:    stem Conv3x3(f0)+BN, [Block x N, MaxPool/2] x (S-1), Block x N, ReLU, global avg pool, Linear
    imagenet: stem Conv7x7/2(f0)+BN+ReLU, MaxPool3/2, Conv3x3(f0)+BN, MaxPool3/2 (224 -> 28), then as cifar

S = len(filters) stages; block widths are `filters` (paper: cifar [32,64,128], N=4; imagenet
[64,128,256,512], N=3). Pools between stages are 2x2/2 with ceil mode (28 -> 14 -> 7 -> 4). Pure Python.
"""
from __future__ import annotations

from typing import NamedTuple

from ..config import NetworkConfig


class ConvStep(NamedTuple):
    """Convolution, padding k // 2, no bias."""

    cin: int
    cout: int
    k: int
    stride: int
    size_in: int
    size_out: int


class NormStep(NamedTuple):
    """Batch norm of `c` channels on a size x size map."""

    c: int
    size: int


class ReluStep(NamedTuple):
    c: int
    size: int


class PoolStep(NamedTuple):
    """Max pooling."""

    c: int
    k: int
    stride: int
    pad: int
    ceil: bool
    size_in: int
    size_out: int


class BlockStep(NamedTuple):
    """One searched block: `cin` channels in, `width` out, on a size x size map."""

    cin: int
    width: int
    size: int


class HeadStep(NamedTuple):
    """Global average pooling of `c` channels on a size x size map, then the linear classifier."""

    c: int
    size: int


Step = ConvStep | NormStep | ReluStep | PoolStep | BlockStep | HeadStep


def pool_out(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
    num = size + 2 * pad - k
    return (-(-num // stride) if ceil else num // stride) + 1


def layout(cfg: NetworkConfig, in_channels: int, size: int) -> list[Step]:
    """The network's steps, in order."""
    if cfg.blocks_per_stage < 1:
        raise ValueError(f"network.blocks_per_stage must be at least 1, got {cfg.blocks_per_stage}")
    if not cfg.filters or any(f < 1 for f in cfg.filters):
        raise ValueError(f"network.filters must be positive widths, got {list(cfg.filters)}")
    steps: list[Step] = []
    f0 = cfg.filters[0]

    def pool(c: int, k: int, stride: int, pad: int, ceil: bool) -> None:
        nonlocal size
        out = pool_out(size, k, stride, pad, ceil)
        steps.append(PoolStep(c, k, stride, pad, ceil, size, out))
        size = out

    if cfg.framework == "cifar":
        steps += [ConvStep(in_channels, f0, 3, 1, size, size), NormStep(f0, size)]
    elif cfg.framework == "imagenet":
        out = pool_out(size, 7, 2, 3, False)
        steps += [ConvStep(in_channels, f0, 7, 2, size, out), NormStep(f0, out), ReluStep(f0, out)]
        size = out
        pool(f0, 3, 2, 1, False)
        steps += [ConvStep(f0, f0, 3, 1, size, size), NormStep(f0, size)]
        pool(f0, 3, 2, 1, False)
    else:
        raise ValueError(f"network.framework must be 'cifar' or 'imagenet', got {cfg.framework!r}")
    c = f0
    for s, width in enumerate(cfg.filters):
        if s > 0:
            pool(c, 2, 2, 0, True)
        for _ in range(cfg.blocks_per_stage):
            steps.append(BlockStep(c, width, size))
            c = width
    steps += [ReluStep(c, size), HeadStep(c, size)]
    return steps
