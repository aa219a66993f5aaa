"""A block's cost in the search's network: its parameters, FLOPs, graph density and block number N, computed once
per block (by canonical hash).

Used by rank 0's loop (run/master.py):

    costs = Costs(cfg)
    cost = costs.of(nsc, block_hash)       # Cost(params, flops, density, blocks); blocks 0: over the limits even at N=1

N is what BlockQNN-L's limits allow (blocks/budget.py: the largest N up to network.blocks_per_stage that fits);
params and FLOPs are of the whole network at that N, analytic (blocks/cost.py). No torch.
"""
from __future__ import annotations

from typing import NamedTuple

from ..blocks import budget
from ..blocks.code import NSC
from ..blocks.graph import graph
from ..config import Config
from ..data.shapes import dataset_shape


class Cost(NamedTuple):
    params: int
    flops: int  # per image, whole network
    density: float  # edges / nodes of the block's DAG
    blocks: int  # N of its network; 0 when no N fits the limits


class Costs:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.in_channels, self.image_side, self.num_classes = dataset_shape(cfg.data)
        self.known: dict[str, Cost] = {}

    def of(self, nsc: NSC, block_hash: str) -> Cost:
        if block_hash not in self.known:
            n, cost = budget.fit(nsc, self.cfg.network, self.cfg.limits, self.in_channels, self.image_side,
                                 self.num_classes)
            self.known[block_hash] = Cost(cost.params, cost.flops, graph(nsc).density, n)
        return self.known[block_hash]

    def remember(self, block_hash: str, cost: Cost) -> None:
        """A cost read back from search.h5 (so a resumed search never computes it again)."""
        self.known[block_hash] = cost
