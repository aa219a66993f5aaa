"""Stacking a block into a whole network, step by step as blocks/layout.py lays it out (CVPR 2018, Fig. 3).

Used as a library: `build_network(nsc, cfg.network, in_channels, size, classes)` by the trainers, the
exported-network loader and the tests; its analytic cost is `blocks.cost.network_cost`, from the same
layout. Weights: MSRA (He et al. 2015) normal, fan-out, for every convolution; BN weight 1, bias 0; the
linear layer keeps PyTorch's default.
"""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.code import NSC
from ..blocks.layout import BlockStep, ConvStep, HeadStep, NormStep, PoolStep, ReluStep, layout
from ..config import NetworkConfig
from .block import Block
from .cpu_kernels import BatchNorm


class Network(nn.Module):
    def __init__(self, nsc: NSC, cfg: NetworkConfig, in_channels: int, size: int, num_classes: int) -> None:
        super().__init__()
        self.nsc = nsc
        layers: list[nn.Module] = []
        c = in_channels
        for step in layout(cfg, in_channels, size):
            match step:
                case ConvStep(cin, cout, k, stride, _, _):
                    layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False))
                case NormStep(width, _):
                    layers.append(BatchNorm(width))
                case ReluStep():
                    layers.append(nn.ReLU(inplace=True))
                case PoolStep(_, k, stride, pad, ceil, _, _):
                    layers.append(nn.MaxPool2d(k, stride=stride, padding=pad, ceil_mode=ceil))
                case BlockStep(cin, width, _):
                    layers.append(Block(nsc, cin, width))
                case HeadStep(width, _):
                    c = width
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
