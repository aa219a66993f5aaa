"""Separate-components blocks (space.layers = "separate") as torch modules: the built modules have exactly the
analytic params and FLOPs, draw, and train."""
import pytest
import torch

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import parse
from bqnn.blocks.cost import block_metrics, network_cost
from bqnn.blocks.space import Space
from bqnn.config import NetworkConfig, load
from bqnn.nets.block import Block
from bqnn.nets.flops_hook import hook_flops
from bqnn.nets.network import build_network
from bqnn.results.plots import block_figure
from bqnn.strategies.qtable import QTable
from bqnn.training.early_stop import EarlyStopTrainer
from bqnn.training.result import Status, candidate_seed
from tests.conftest import needs_fashion
from tests.unit.blocks.test_separate import SEPARATE_RESIDUAL


def test_random_separate_blocks_cost_what_the_built_modules_count():
    agent = QTable(Space(8, layers="separate"), seed=11)
    torch.manual_seed(0)
    for i in range(30):
        nsc = agent.sample(1.0)
        cin, width = (16, 16) if i % 2 else (8, 16)
        m = block_metrics(nsc, width, 8, cin)
        block = Block(nsc, cin, width)
        assert sum(p.numel() for p in block.parameters()) == m["params"], nsc
        x = torch.randn(2, cin, 8, 8)
        assert hook_flops(block, x) == m["flops"], nsc
        assert block(x).shape == (2, m["out_channels"], 8, 8)


def test_a_separate_network_costs_what_it_counts():
    nsc = parse(SEPARATE_RESIDUAL)
    cfg = NetworkConfig("cifar", 2, (8, 16, 32))
    net = build_network(nsc, cfg, 1, 28, 10)
    cost = network_cost(nsc, cfg, 1, 28, 10)
    assert sum(p.numel() for p in net.parameters()) == cost.params
    assert hook_flops(net, torch.randn(2, 1, 28, 28)) == cost.flops


def test_a_separate_block_is_drawn(tmp_path):
    path = block_figure(tmp_path / "b.png", parse(SEPARATE_RESIDUAL), "separate")
    assert path.stat().st_size > 1000


@needs_fashion
def test_a_separate_block_trains_well_above_chance():
    trainer = EarlyStopTrainer(load(None, ["data.train_subset=2000", "data.val_size=500", "data.resize=14",
                                           "network.blocks_per_stage=1", "network.filters=[8,16,32]",
                                           "trainer.epochs=2", "trainer.batch_size=64", "trainer.lr_step=1",
                                           "space.layers=separate"]), torch.device("cpu"))
    nsc = parse(SEPARATE_RESIDUAL)
    r = trainer.train(nsc, candidate_seed(0, canonical_hash(nsc)), 1)
    assert r.status == Status.OK and r.epochs == 2
    assert r.accuracy > 40.0  # chance is 10 %


@pytest.mark.parametrize("text", ["[(1,4,0,0,0),(2,9,0,1,0),(3,7,0,0,0)]", "[(1,4,0,0,0),(2,8,0,1,0),(3,7,0,0,0)]"])
def test_components_alone_keep_the_width(text):
    nsc = parse(text)
    block = Block(nsc, 8, 16)  # the leaf keeps 8 channels: a 1x1 PCC brings it to the stage width
    assert block(torch.randn(1, 8, 4, 4)).shape == (1, 16, 4, 4)
    assert block_metrics(nsc, 16, 4, 8)["out_channels"] == 16
