"""One block as a torch module, built from its channel plan (blocks/plan.py).

Used as a library by nets/network.py, describe's tests and the trainer. The block's output is its leaves
concatenated; if that is not the stage width, a 1x1 PCC brings it back to the stage width.
"""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.code import NSC
from ..blocks.plan import BlockPlan, plan_block
from .ops import PCC, Concat, build_node


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
        for node, preds in zip(self.nodes, self.preds, strict=True):
            outs.append(node(*[outs[p] for p in preds]))
        y = outs[self.leaves[0]] if len(self.leaves) == 1 else self.concat(*[outs[i] for i in self.leaves])
        return self.reduce(y)
