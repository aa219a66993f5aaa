"""Stacking a block into a whole network: the CIFAR and ImageNet frameworks (CVPR 2018, Fig. 3).

Used as a library (trainer, train, describe, tests).

    cifar:    stem Conv3x3(f0)+BN, [Block x N, MaxPool/2] x (S-1), Block x N, ReLU, global avg pool, Linear
    imagenet: stem Conv7x7/2(f0)+BN+ReLU, MaxPool3/2, Conv3x3(f0)+BN, MaxPool3/2 (224 -> 28), then as cifar

S = len(filters) stages; block widths are `filters` (paper: cifar [32,64,128], N=4;
imagenet [64,128,256,512], N=3), doubled after each pooling in the presets. Pools
between stages are 2x2/2 with ceil mode (28 -> 14 -> 7 -> 4). Weights: MSRA
(He et al. 2015) normal, fan-out, for every convolution; BN weight 1, bias 0;
the linear layer keeps PyTorch's default. `layout` is the plan both the builder
and `network_cost` follow.
"""
from __future__ import annotations

import torch
from torch import nn

from .block import BatchNorm, Block
from .config import NetworkConfig
from .metrics import Cost, bn_cost, block_cost, conv_cost, plan_block, relu_cost
from .nsc import NSC, graph


def _pool_out(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
    num = size + 2 * pad - k
    return (-(-num // stride) if ceil else num // stride) + 1


def layout(cfg: NetworkConfig, in_channels: int, size: int) -> list[tuple]:
    """The network as a list of steps: ("conv", cin, cout, k, stride, size_in, size_out), ("bn", c, size),
    ("relu", c, size), ("maxpool", c, k, stride, pad, ceil, size_in, size_out), ("block", cin, width, size),
    ("head", c, size)."""
    if cfg.blocks_per_stage < 1:
        raise ValueError(f"network.blocks_per_stage must be at least 1, got {cfg.blocks_per_stage}")
    if not cfg.filters or any(f < 1 for f in cfg.filters):
        raise ValueError(f"network.filters must be positive widths, got {list(cfg.filters)}")
    steps: list[tuple] = []
    f0 = cfg.filters[0]

    def pool(c: int, k: int, stride: int, pad: int, ceil: bool) -> None:
        nonlocal size
        out = _pool_out(size, k, stride, pad, ceil)
        steps.append(("maxpool", c, k, stride, pad, ceil, size, out))
        size = out

    if cfg.framework == "cifar":
        steps += [("conv", in_channels, f0, 3, 1, size, size), ("bn", f0, size)]
    elif cfg.framework == "imagenet":
        out = _pool_out(size, 7, 2, 3, False)
        steps += [("conv", in_channels, f0, 7, 2, size, out), ("bn", f0, out), ("relu", f0, out)]
        size = out
        pool(f0, 3, 2, 1, False)
        steps += [("conv", f0, f0, 3, 1, size, size), ("bn", f0, size)]
        pool(f0, 3, 2, 1, False)
    else:
        raise ValueError(f"network.framework must be 'cifar' or 'imagenet', got {cfg.framework!r}")
    c = f0
    for s, width in enumerate(cfg.filters):
        if s > 0:
            pool(c, 2, 2, 0, True)
        for _ in range(cfg.blocks_per_stage):
            steps.append(("block", c, width, size))
            c = width
    steps += [("relu", c, size), ("head", c, size)]
    return steps


class Network(nn.Module):
    def __init__(self, nsc: NSC, cfg: NetworkConfig, in_channels: int, size: int, num_classes: int) -> None:
        super().__init__()
        self.nsc = nsc
        layers: list[nn.Module] = []
        c = in_channels
        for step in layout(cfg, in_channels, size):
            kind = step[0]
            if kind == "conv":
                _, cin, cout, k, stride, _, _ = step
                layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False))
            elif kind == "bn":
                layers.append(BatchNorm(step[1]))
            elif kind == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif kind == "maxpool":
                _, _, k, stride, pad, ceil, _, _ = step
                layers.append(nn.MaxPool2d(k, stride=stride, padding=pad, ceil_mode=ceil))
            elif kind == "block":
                layers.append(Block(nsc, step[1], step[2]))
            elif kind == "head":
                c = step[1]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c, num_classes)
        init_msra(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def init_msra(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_network(nsc: NSC, cfg: NetworkConfig, in_channels: int, size: int, num_classes: int) -> Network:
    return Network(nsc, cfg, in_channels, size, num_classes)


def network_cost(nsc: NSC, cfg: NetworkConfig, in_channels: int, size: int, num_classes: int) -> Cost:
    """Analytic params and FLOPs per image of `build_network(...)`, without building it."""
    total = Cost()
    g = graph(nsc)
    blocks: dict[tuple[int, int, int], Cost] = {}  # a stage repeats the same block N times
    for step in layout(cfg, in_channels, size):
        kind = step[0]
        if kind == "conv":
            _, cin, cout, k, _, _, out = step
            total = total + conv_cost(cin, cout, k, out * out)
        elif kind == "bn":
            total = total + bn_cost(step[1], step[2] ** 2)
        elif kind == "relu":
            total = total + relu_cost(step[1], step[2] ** 2)
        elif kind == "maxpool":
            _, c, k, _, _, _, _, out = step
            total = total + Cost(0, (k * k - 1) * c * out * out)
        elif kind == "block":
            _, cin, width, s = step
            if (cin, width, s) not in blocks:
                blocks[(cin, width, s)] = block_cost(plan_block(nsc, cin, width, g), s * s)
            total = total + blocks[(cin, width, s)]
        elif kind == "head":
            _, c, s = step
            total = total + Cost(0, c * s * s) + Cost(c * num_classes + num_classes, (2 * c + 1) * num_classes)
    return total
