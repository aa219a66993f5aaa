"""The channel plan of a block: every node's widths, and which 1x1 convolutions the block needs.

Used as a library by the analytic costs (blocks/cost.py) and the torch builders (nets/block.py), which
build exactly this plan, so the costs describe exactly the network that is trained.
Choices (docs/choices.md, "widths inside a block"): convolutions output the stage width; pools,
identity, ReLU and batch norm keep their input's width; add outputs the larger input width, projecting
the narrower input with a 1x1 conv + BN (ResNet's option B); concat sums widths; the leaves are concatenated and, when
that is not already the stage width, reduced to it by a 1x1 PCC. Pure Python.
"""
from __future__ import annotations

from typing import NamedTuple

from .code import NSC, Op
from .graph import BlockGraph, graph


class NodePlan(NamedTuple):
    layer: int  # the layer's index in the code
    op: int  # an Op value
    kernel: int
    preds: tuple[int, ...]
    in_channels: tuple[int, ...]
    out_channels: int
    project: tuple[int, ...]  # for add: which preds (by position) get a 1x1 projection to out_channels


class BlockPlan(NamedTuple):
    in_channels: int
    width: int
    nodes: tuple[NodePlan, ...]  # layers 1..n in order
    leaves: tuple[int, ...]
    concat_channels: int  # channels of the concat of the leaves
    reduce: bool  # a 1x1 PCC brings the concat back to `width`

    @property
    def out_channels(self) -> int:
        return self.width if self.reduce else self.concat_channels


_ADD, _TERM = int(Op.ADD), int(Op.TERMINAL)
_WIDENING = frozenset({int(Op.CONV), int(Op.PLAIN_CONV)})  # output the stage width; other unary ops keep theirs


def plan_block(nsc: NSC, in_channels: int, width: int, g: BlockGraph | None = None) -> BlockPlan:
    """Channel bookkeeping of a block (docs/choices.md, "widths inside a block"):
    convolutions output `width`; pools, identity, ReLU and BN keep their input's width;
    add outputs the larger input width, projecting the narrower input with a
    1x1 conv + BN; concat sums widths; the leaves are concatenated and, when
    that is not already `width` channels, reduced to `width` by a 1x1 PCC.
    `g` is the block's graph when the caller already has it."""
    g = g or graph(nsc)
    ch = [in_channels]
    nodes: list[NodePlan] = []
    gpreds = g.preds
    for layer in nsc:
        op = layer.type
        if op == _TERM:
            break
        preds = gpreds[layer.index]
        project: tuple[int, ...] = ()
        if len(preds) == 1:
            cin: tuple[int, ...] = (ch[preds[0]],)
            out = width if op in _WIDENING else cin[0]  # pools, identity, ReLU and BN keep their input's width
        else:
            a, b = ch[preds[0]], ch[preds[1]]
            cin = (a, b)
            if op == _ADD:
                out = a if a >= b else b
                project = (() if a == out else (0,)) + (() if b == out else (1,))
            else:  # concat
                out = a + b
        ch.append(out)
        nodes.append(NodePlan(layer.index, op, layer.kernel, preds, cin, out, project))
    concat = sum(ch[leaf] for leaf in g.leaves)
    return BlockPlan(in_channels, width, tuple(nodes), g.leaves, concat, concat != width)
