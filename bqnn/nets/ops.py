"""The searched ops as torch modules, built from a node of the channel plan (blocks/plan.py).

Used as a library by nets/block.py (`build_node`) and nets/flops_hook.py.

Ops (docs/choices.md):
- convolution: Pre-activation Convolutional Cell, ReLU -> Conv(k, stride 1, same padding, no bias) -> BatchNorm;
- max / average pooling: stride 1, same padding (avg excludes the padding);
- identity: the input itself;
- add: sum; an input narrower than the other goes through a 1x1 conv + BN projection first (ResNet's option B);
- concat: along channels;
- separate components (space.layers = "separate"): ReLU; BatchNorm; plain convolution, Conv(k, stride 1, same
  padding) with a bias, as no batch norm follows it by construction.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..blocks.code import Op
from ..blocks.plan import NodePlan
from .cpu_kernels import AvgPool, BatchNorm


class PCC(nn.Sequential):
    """ReLU -> Conv -> BN, the paper's convolution layer."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # inputs are shared between branches: never in place
            nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=False),
            BatchNorm(cout),
        )


class Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class AddNode(nn.Module):
    def __init__(self, node: NodePlan) -> None:
        super().__init__()
        cout = node.out_channels
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), BatchNorm(cout)) if i in node.project else nn.Identity()
            for i, cin in enumerate(node.in_channels)
        )
        self.add = Add()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.add(self.proj[0](a), self.proj[1](b))


class Unary(nn.Module):
    """Wraps a single-input op so every node is called as node(*inputs)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


# Builders, keyed like the op table blocks/code.OPS and the cost formulas in blocks/cost.py.
BUILDERS: dict[Op, Callable[[NodePlan], nn.Module]] = {
    Op.CONV: lambda n: Unary(PCC(n.in_channels[0], n.out_channels, n.kernel)),
    Op.MAX_POOL: lambda n: Unary(nn.MaxPool2d(n.kernel, stride=1, padding=n.kernel // 2)),
    Op.AVG_POOL: lambda n: Unary(AvgPool(n.kernel)),
    Op.IDENTITY: lambda n: Unary(nn.Identity()),
    Op.ADD: AddNode,
    Op.CONCAT: lambda n: Concat(),
    Op.RELU: lambda n: Unary(nn.ReLU(inplace=False)),  # inputs are shared between branches: never in place
    Op.BATCH_NORM: lambda n: Unary(BatchNorm(n.out_channels)),
    Op.PLAIN_CONV: lambda n: Unary(nn.Conv2d(n.in_channels[0], n.out_channels, n.kernel, stride=1,
                                             padding=n.kernel // 2, bias=True)),
}


def build_node(node: NodePlan) -> nn.Module:
    try:
        return BUILDERS[Op(node.op)](node)
    except KeyError:
        raise KeyError(f"no builder for op {node.op!r}") from None
