"""BlockQNN-L: a parameter (and FLOPs) budget for the whole network, with an adaptive block number.

Used as a library by rank 0's search loop (`fit`), which records each candidate's N and rejects, before any
worker sees it, a block that does not fit even at N = 1 (status REJECTED, the failure reward).

The CVPR paper (sec. 5.2, Fig. 8(d), Appendix) searches "with limited parameters and adaptive block
numbers" under a 10M limit without saying how N adapts. Here: N is the largest number of blocks per
stage, at most `network.blocks_per_stage`, whose network fits every budget; with
`limits.adaptive_blocks = false` N stays as configured and a block over budget is rejected. Params and
FLOPs grow strictly with N (every block adds at least its convolutions), so the largest N that fits is
found by walking down from the configured N; they are affine in N (a stage is its first block and N - 1
equal ones), so the network is costed twice, at the configured N and at N = 1, whatever N it gets.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ..config import LimitsConfig, NetworkConfig
from .code import NSC
from .cost import Cost, network_cost


class Fit(NamedTuple):
    blocks: int  # N per stage that fits (0: none does)
    cost: Cost  # the network at that N (at N = 1, or the configured N, when none fits)


def within(cost: Cost, limits: LimitsConfig) -> bool:
    return (not limits.params or cost.params <= limits.params) and (not limits.flops or cost.flops <= limits.flops)


def active(limits: LimitsConfig) -> bool:
    return bool(limits.params or limits.flops)


def fit(nsc: NSC, network: NetworkConfig, limits: LimitsConfig, in_channels: int, size: int,
        num_classes: int) -> Fit:
    """The block number N this block gets under `limits`, and the network's cost at N."""
    n_max = network.blocks_per_stage
    cost = network_cost(nsc, network, in_channels, size, num_classes)
    if within(cost, limits):
        return Fit(n_max, cost)
    if not limits.adaptive_blocks or n_max == 1:
        return Fit(0, cost)
    # Each stage is its first block plus N - 1 identical ones, so the cost is affine in N: two
    # evaluations give every N (exact integers: the difference is a multiple of n_max - 1).
    one = network_cost(nsc, dataclasses.replace(network, blocks_per_stage=1), in_channels, size, num_classes)
    step = Cost((cost.params - one.params) // (n_max - 1), (cost.flops - one.flops) // (n_max - 1))
    for n in range(n_max - 1, 0, -1):
        cost = one + step * (n - 1)
        if within(cost, limits):
            return Fit(n, cost)
    return Fit(0, cost)


def rejection(limits: LimitsConfig, network: NetworkConfig) -> str:
    """The message recorded for a block that fits at no N."""
    n = 1 if limits.adaptive_blocks else network.blocks_per_stage
    return f"over the limits ({describe(limits)}) at N = {n}"


def describe(limits: LimitsConfig) -> str:
    parts = ([f"params <= {limits.params:,}"] if limits.params else []) + \
            ([f"FLOPs <= {limits.flops:,}"] if limits.flops else [])
    return " and ".join(parts) + (", adaptive N" if limits.adaptive_blocks else ", fixed N")
