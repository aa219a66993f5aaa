"""Analytic params and FLOPs (blocks/cost.py) against hand counts and against forward hooks on the built modules."""
import pytest
import torch

from bqnn.blocks.code import INCEPTION_LIKE, RESIDUAL_LIKE
from bqnn.blocks.cost import block_metrics, network_cost
from bqnn.config import NetworkConfig
from bqnn.nets.block import Block
from bqnn.nets.flops_hook import hook_flops
from bqnn.nets.network import build_network

RESIDUAL_HAND = {"params": 18_560, "flops": 2 * 18_972_672 + 32_768, "nodes": 6, "edges": 6, "density": 1.0}


INCEPTION_HAND = {
    "params": 3 * 1_088 + 9_280 + 25_664 + 3_136,
    "flops": 3 * 2_195_456 + 18_972_672 + 52_527_104 + 262_144 + 6_455_296,
    "nodes": 11, "edges": 12, "density": 12 / 11,
}


@pytest.mark.parametrize("nsc,hand", [(RESIDUAL_LIKE, RESIDUAL_HAND), (INCEPTION_LIKE, INCEPTION_HAND)])
def test_hand_computed_block_metrics(nsc, hand):
    m = block_metrics(nsc, 32, 32)
    assert m["params"] == hand["params"]
    assert m["flops"] == hand["flops"]
    assert (m["nodes"], m["edges"]) == (hand["nodes"], hand["edges"])
    assert m["density"] == pytest.approx(hand["density"])
    block = Block(nsc, 32, 32)
    assert sum(p.numel() for p in block.parameters()) == hand["params"]
    assert hook_flops(block, torch.randn(2, 32, 32, 32)) == pytest.approx(hand["flops"], rel=0.01)


@pytest.mark.parametrize("nsc", [RESIDUAL_LIKE, INCEPTION_LIKE])
@pytest.mark.parametrize("cfg,cin,size,classes", [
    (NetworkConfig(), 3, 32, 100),
    (NetworkConfig("cifar", 1, (8, 16, 32)), 1, 28, 10),
    (NetworkConfig("imagenet", 1, (16, 32, 64, 128)), 3, 224, 1000),
])
def test_network_params_and_flops_match_hooks(nsc, cfg, cin, size, classes):
    net = build_network(nsc, cfg, cin, size, classes)
    cost = network_cost(nsc, cfg, cin, size, classes)
    assert sum(p.numel() for p in net.parameters()) == cost.params
    x = torch.randn(2, cin, size, size)
    assert hook_flops(net, x) == pytest.approx(cost.flops, rel=0.01)
    assert net(x).shape == (2, classes)
