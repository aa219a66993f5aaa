"""One block as a torch module (nets/block.py, nets/ops.py): builds, runs, projects and reduces widths."""
import pytest
import torch

from bqnn.blocks.code import INCEPTION_LIKE, RESIDUAL_LIKE, parse
from bqnn.blocks.cost import block_cost
from bqnn.blocks.plan import plan_block
from bqnn.nets.block import Block
from bqnn.nets.flops_hook import hook_flops


@pytest.mark.parametrize("nsc", [RESIDUAL_LIKE, INCEPTION_LIKE])
@pytest.mark.parametrize("cin,width", [(32, 32), (16, 48), (64, 40)])
def test_blocks_build_run_forward_and_backward(nsc, cin, width):
    block = Block(nsc, cin, width)
    x = torch.randn(4, cin, 12, 12, requires_grad=True)
    y = block(x)
    assert y.shape == (4, width, 12, 12)  # no downsampling inside a block, output at the stage width
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in block.parameters())
    cost = block_cost(plan_block(nsc, cin, width), 144)
    assert sum(p.numel() for p in block.parameters()) == cost.params
    assert hook_flops(block, x.detach()) == pytest.approx(cost.flops, rel=0.01)


def test_add_of_unequal_widths_projects_the_narrower_input():
    # layer 1 is the block input (16 ch), layer 2 a conv (48 ch): the add projects the identity 16 -> 48
    nsc = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,5,0,1,2),(4,7,0,0,0)]")
    plan = plan_block(nsc, 16, 48)
    add = plan.nodes[2]
    assert add.in_channels == (16, 48) and add.out_channels == 48 and add.project == (0,)
    block = Block(nsc, 16, 48)
    assert block(torch.randn(2, 16, 5, 5)).shape == (2, 48, 5, 5)
    assert not plan.reduce  # the add's output is already the stage width


def test_leaves_are_concatenated_and_reduced_to_the_stage_width():
    nsc = parse("[(1,4,0,0,0),(2,1,1,1,0),(3,2,3,1,0),(4,7,0,0,0)]")  # leaves: conv (32) and max pool (16)
    plan = plan_block(nsc, 16, 32)
    assert plan.leaves == (2, 3) and plan.concat_channels == 48 and plan.reduce
    assert Block(nsc, 16, 32)(torch.randn(2, 16, 6, 6)).shape == (2, 32, 6, 6)
