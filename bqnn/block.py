"""NSC -> torch module: one block, built from `metrics.plan_block`.

Used as a library (network.py, describe, tests).

Ops (docs/choices.md):
- convolution: Pre-activation Convolutional Cell, ReLU -> Conv(k, stride 1,
  same padding, no bias) -> BatchNorm;
- max / average pooling: stride 1, same padding (avg excludes the padding);
- identity: the input itself;
- add: sum; an input narrower than the other goes through a 1x1 conv + BN
  projection first (ResNet's option B);
- concat: along channels;
- block output: the leaves concatenated; if that is not the stage width, a 1x1
  PCC brings it back to the stage width.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .metrics import BlockPlan, NodePlan, plan_block
from .nsc import NSC, Op


class PCC(nn.Sequential):
    """ReLU -> Conv -> BN, the paper's convolution layer."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # inputs are shared between branches: never in place
            nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
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
            nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if i in node.project else nn.Identity()
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


# Builders, keyed like the op table nsc.OPS and the cost formulas in metrics.
BUILDERS: dict[Op, Callable[[NodePlan], nn.Module]] = {
    Op.CONV: lambda n: Unary(PCC(n.in_channels[0], n.out_channels, n.kernel)),
    Op.MAX_POOL: lambda n: Unary(nn.MaxPool2d(n.kernel, stride=1, padding=n.kernel // 2)),
    Op.AVG_POOL: lambda n: Unary(nn.AvgPool2d(n.kernel, stride=1, padding=n.kernel // 2, count_include_pad=False)),
    Op.IDENTITY: lambda n: Unary(nn.Identity()),
    Op.ADD: AddNode,
    Op.CONCAT: lambda n: Concat(),
}


def build_node(node: NodePlan) -> nn.Module:
    try:
        return BUILDERS[Op(node.op)](node)
    except KeyError:
        raise KeyError(f"no builder for op {node.op!r}") from None


class Block(nn.Module):
    """One block. Input: (B, in_channels, H, W); output: (B, width, H, W)."""

    def __init__(self, nsc: NSC, in_channels: int, width: int) -> None:
        super().__init__()
        self.plan: BlockPlan = plan_block(nsc, in_channels, width)
        self.nodes = nn.ModuleList(build_node(n) for n in self.plan.nodes)
        self.preds = [n.preds for n in self.plan.nodes]
        self.leaves = list(self.plan.leaves)
        self.concat = Concat()
        self.reduce = PCC(self.plan.concat_channels, width, 1) if self.plan.reduce else nn.Identity()

    @property
    def out_channels(self) -> int:
        return self.plan.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for node, preds in zip(self.nodes, self.preds):
            outs.append(node(*[outs[p] for p in preds]))
        y = outs[self.leaves[0]] if len(self.leaves) == 1 else self.concat(*[outs[i] for i in self.leaves])
        return self.reduce(y)
