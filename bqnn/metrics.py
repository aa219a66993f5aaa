"""Params, FLOPs and density of blocks and networks, computed from the code alone.

Used as a library; `python -m bqnn.describe CODE --channels C --hw H` prints them.

`plan_block` decides every node's channel count and which 1x1 convolutions the
block needs (projection for an add of unequal widths, reduction of the output
concat to the stage width). `block.py` builds its modules from the same plan,
so the analytic counts here describe exactly the network that is trained;
`hook_flops` counts a built torch module with forward hooks, and the tests
hold the two within 1 %.

FLOPs conventions (docs/choices.md): a multiply-add is 2 FLOPs; convolution
2*Cin*Cout*k*k per output pixel; batch norm 2 per element (scale, shift);
ReLU 1 per input element; max pool k*k-1 comparisons and avg pool k*k
operations per output element; add 1 per output element; concat, identity 0;
global average pool 1 per input element; linear 2*in*out + out.
Params are trainable parameters (BN running statistics are buffers).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from .nsc import NSC, BlockGraph, Op, graph


class NodePlan(NamedTuple):
    index: int
    op: int  # an nsc.Op value
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


_CONV, _MAX, _AVG, _ID, _ADD, _CAT, _TERM = (int(o) for o in (Op.CONV, Op.MAX_POOL, Op.AVG_POOL, Op.IDENTITY,
                                                               Op.ADD, Op.CONCAT, Op.TERMINAL))


def plan_block(nsc: NSC, in_channels: int, width: int, g: BlockGraph | None = None) -> BlockPlan:
    """Channel bookkeeping of a block (docs/choices.md, "widths inside a block"):
    convolutions output `width`; pools and identity keep their input's width;
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
            out = width if op == _CONV else cin[0]  # pools and identity keep their input's width
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


class Cost(NamedTuple):
    params: int = 0
    flops: int = 0

    def __add__(self, other: "Cost") -> "Cost":  # type: ignore[override]  (a sum, not tuple concatenation)
        return Cost(self.params + other.params, self.flops + other.flops)

    def __mul__(self, k: int) -> "Cost":  # type: ignore[override]
        return Cost(self.params * k, self.flops * k)


# Cost formulas per op, keyed like the op table (nsc.OPS) and the builders (block.BUILDERS).
def conv_cost(cin: int, cout: int, k: int, area: int, bias: bool = False) -> Cost:
    """k x k convolution producing `area` = H_out * W_out pixels."""
    return Cost(cin * cout * k * k + (cout if bias else 0), (2 * cin * k * k + (1 if bias else 0)) * cout * area)


def bn_cost(c: int, hw: int) -> Cost:
    return Cost(2 * c, 2 * c * hw)


def relu_cost(c: int, hw: int) -> Cost:
    return Cost(0, c * hw)


def pcc_cost(cin: int, cout: int, k: int, hw: int) -> Cost:
    """Pre-activation convolutional cell: ReLU -> Conv(k, same padding, no bias) -> BN."""
    return relu_cost(cin, hw) + conv_cost(cin, cout, k, hw) + bn_cost(cout, hw)


@functools.lru_cache(maxsize=1 << 14)
def _op_cost(op: int, kernel: int, in_channels: tuple[int, ...], out_channels: int, project: tuple[int, ...],
             hw: int) -> Cost:
    """Cost of one node; memoized: the same (op, kernel, widths, map size) recurs in most blocks a
    search costs (rank 0 costs every new block, at every stage shape of its network)."""
    c = out_channels
    if op == _CONV:
        return pcc_cost(in_channels[0], c, kernel, hw)
    if op == _MAX:
        return Cost(0, (kernel * kernel - 1) * c * hw)
    if op == _AVG:
        return Cost(0, kernel * kernel * c * hw)
    if op == _ADD:
        cost = Cost(0, c * hw)
        for i in project:
            cost = cost + conv_cost(in_channels[i], c, 1, hw) + bn_cost(c, hw)
        return cost
    if op in (_ID, _CAT):
        return Cost()
    raise KeyError(f"no cost formula for op {op!r}")


def block_cost(plan: BlockPlan, hw: int) -> Cost:
    """Cost of one block on a map of hw = H*W pixels."""
    params = flops = 0
    for node in plan.nodes:
        p, f = _op_cost(node.op, node.kernel, node.in_channels, node.out_channels, node.project, hw)
        params += p
        flops += f
    if plan.reduce:
        p, f = pcc_cost(plan.concat_channels, plan.width, 1, hw)
        params += p
        flops += f
    return Cost(params, flops)


def block_metrics(nsc: NSC, channels: int, size: int, in_channels: int | None = None) -> dict:
    """The block alone, `channels` wide, on a size x size map; used by describe."""
    plan = plan_block(nsc, in_channels or channels, channels)
    g = graph(nsc)
    cost = block_cost(plan, size * size)
    return {
        "nodes": g.nodes,
        "edges": g.edges,
        "density": g.density,
        "params": cost.params,
        "flops": cost.flops,
        "leaves": list(g.leaves),
        "out_channels": plan.out_channels,
    }


def hook_flops(model, inputs) -> int:
    """FLOPs of one forward pass counted with forward hooks on the leaf modules.

    Independent of `plan_block`: it reads the shapes the real modules see.
    Unknown leaf module types raise, so a new module cannot go uncounted."""
    import torch
    from torch import nn

    from .block import Add, Concat

    total = 0

    def hook(module, args, output) -> None:
        nonlocal total
        x = args[0]
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            per_out = 2 * (module.in_channels // module.groups) * k + (1 if module.bias is not None else 0)
            total += per_out * output.numel()
        elif isinstance(module, nn.BatchNorm2d):
            total += 2 * output.numel()
        elif isinstance(module, nn.ReLU):
            total += x.numel()
        elif isinstance(module, nn.MaxPool2d):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            total += (k * k - 1) * output.numel()
        elif isinstance(module, nn.AvgPool2d):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            total += k * k * output.numel()
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            total += x.numel()
        elif isinstance(module, nn.Linear):
            rows = output.numel() // module.out_features
            total += (2 * module.in_features + (1 if module.bias is not None else 0)) * module.out_features * rows
        elif isinstance(module, Add):
            total += output.numel()
        elif isinstance(module, (Concat, nn.Identity, nn.Flatten)):
            pass
        else:
            raise TypeError(f"hook_flops: no FLOPs rule for {type(module).__name__}")

    handles = [m.register_forward_hook(hook) for m in model.modules() if len(list(m.children())) == 0]
    try:
        with torch.no_grad():
            out = model(inputs)
    finally:
        for h in handles:
            h.remove()
    batch = out.shape[0]
    return total // batch


def network_metrics(nsc: NSC, net, in_channels: int, size: int, num_classes: int) -> dict:
    """Params and FLOPs (per image) of the whole network, and the block's density."""
    from .network import network_cost

    cost = network_cost(nsc, net, in_channels, size, num_classes)
    return {"params": cost.params, "flops": cost.flops, "density": graph(nsc).density}

