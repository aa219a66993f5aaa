"""Params and FLOPs of blocks and networks, computed from the code alone.

Used as a library; `python -m bqnn.describe CODE --channels C --hw H` prints them.

The block's channel plan (blocks/plan.py) and the network's layout (blocks/layout.py) are what the
torch builders build, so these counts describe exactly the network that is trained; nets/flops_hook.py
counts a built module with forward hooks, and the tests hold the two within 1 %.

FLOPs conventions (docs/choices.md): a multiply-add is 2 FLOPs; convolution
2*Cin*Cout*k*k per output pixel; batch norm 2 per element (scale, shift);
ReLU 1 per input element; max pool k*k-1 comparisons and avg pool k*k
operations per output element; add 1 per output element; concat, identity 0;
global average pool 1 per input element; linear 2*in*out + out.
Params are trainable parameters (BN running statistics are buffers). Pure Python.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from ..config import NetworkConfig
from .code import NSC, Op
from .graph import graph
from .layout import BlockStep, ConvStep, HeadStep, NormStep, PoolStep, ReluStep, layout
from .plan import BlockPlan, plan_block


class Cost(NamedTuple):
    params: int = 0
    flops: int = 0

    def __add__(self, other: Any) -> Cost:  # a sum, not tuple concatenation
        return Cost(self.params + other.params, self.flops + other.flops)

    def __mul__(self, k: Any) -> Cost:
        return Cost(self.params * k, self.flops * k)


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


def _add_cost(kernel: int, cin: tuple[int, ...], c: int, project: tuple[int, ...], hw: int) -> Cost:
    cost = Cost(0, c * hw)
    for i in project:
        cost = cost + conv_cost(cin[i], c, 1, hw) + bn_cost(c, hw)
    return cost


# Cost of one node per op, keyed like the op table (code.OPS) and the builders (nets/ops.BUILDERS):
# (kernel, input widths, output width, projected inputs, map pixels) -> Cost.
OP_COSTS: dict[Op, Callable[[int, tuple[int, ...], int, tuple[int, ...], int], Cost]] = {
    Op.CONV: lambda k, cin, c, project, hw: pcc_cost(cin[0], c, k, hw),
    Op.MAX_POOL: lambda k, cin, c, project, hw: Cost(0, (k * k - 1) * c * hw),
    Op.AVG_POOL: lambda k, cin, c, project, hw: Cost(0, k * k * c * hw),
    Op.IDENTITY: lambda k, cin, c, project, hw: Cost(),
    Op.ADD: _add_cost,
    Op.CONCAT: lambda k, cin, c, project, hw: Cost(),
    Op.RELU: lambda k, cin, c, project, hw: relu_cost(c, hw),
    Op.BATCH_NORM: lambda k, cin, c, project, hw: bn_cost(c, hw),
    Op.PLAIN_CONV: lambda k, cin, c, project, hw: conv_cost(cin[0], c, k, hw, bias=True),
}


@functools.lru_cache(maxsize=1 << 14)
def _op_cost(op: int, kernel: int, in_channels: tuple[int, ...], out_channels: int, project: tuple[int, ...],
             hw: int) -> Cost:
    """Cost of one node; memoized: the same (op, kernel, widths, map size) recurs in most blocks a
    search costs (rank 0 costs every new block, at every stage shape of its network)."""
    formula = OP_COSTS.get(op)  # type: ignore[call-overload]  # Op is an IntEnum: an int finds its entry
    if formula is None:
        raise KeyError(f"no cost formula for op {op!r}")
    return formula(kernel, in_channels, out_channels, project, hw)


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


def block_metrics(nsc: NSC, channels: int, size: int, in_channels: int | None = None) -> dict[str, Any]:
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


def network_cost(nsc: NSC, cfg: NetworkConfig, in_channels: int, size: int, num_classes: int) -> Cost:
    """Analytic params and FLOPs per image of the network `nets.network.build_network(...)` builds."""
    total = Cost()
    g = graph(nsc)
    blocks: dict[tuple[int, int, int], Cost] = {}  # a stage repeats the same block N times
    for step in layout(cfg, in_channels, size):
        match step:
            case ConvStep(cin, cout, k, _, _, out):
                total = total + conv_cost(cin, cout, k, out * out)
            case NormStep(c, s):
                total = total + bn_cost(c, s * s)
            case ReluStep(c, s):
                total = total + relu_cost(c, s * s)
            case PoolStep(c, k, _, _, _, _, out):
                total = total + Cost(0, (k * k - 1) * c * out * out)
            case BlockStep(cin, width, s):
                if (cin, width, s) not in blocks:
                    blocks[(cin, width, s)] = block_cost(plan_block(nsc, cin, width, g), s * s)
                total = total + blocks[(cin, width, s)]
            case HeadStep(c, s):
                total = total + Cost(0, c * s * s) + Cost(c * num_classes + num_classes, (2 * c + 1) * num_classes)
    return total
