"""The paper's two example blocks: built, run forward and backward, and costed; the
hand-computed numbers below are worked out in docs/reward.md."""
import pytest
import torch

from bqnn.block import Block
from bqnn.config import NetworkConfig
from bqnn.metrics import block_cost, block_metrics, hook_flops, plan_block
from bqnn.network import build_network, network_cost
from bqnn.nsc import INCEPTION_LIKE, RESIDUAL_LIKE, parse

# Block alone, 32 channels in and out, 32x32 map (H*W = 1024):
# residual-like: two PCC 3x3: params 2 * (9*32*32 + 2*32) = 18,560
#   FLOPs per PCC: ReLU 32*1024 + conv 2*32*9*32*1024 + BN 2*32*1024 = 18,972,672; add 32*1024 = 32,768
RESIDUAL_HAND = {"params": 18_560, "flops": 2 * 18_972_672 + 32_768, "nodes": 6, "edges": 6, "density": 1.0}
# inception-like: PCC 1x1 x3 (1,088 params, 2,195,456 FLOPs each), PCC 3x3 (9,280; 18,972,672),
#   PCC 5x5 (25,664; 52,527,104), max pool 3x3 (8*32*1024 = 262,144), concat 3+5 -> 64, concat 6+8 -> 96,
#   output 96 channels -> 1x1 PCC to 32: params 96*32 + 64 = 3,136, FLOPs 96*1024 + 2*96*32*1024 + 2*32*1024 = 6,455,296
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


def test_cifar_framework_stages_and_msra_init():
    net = build_network(RESIDUAL_LIKE, NetworkConfig(), 3, 32, 100)
    blocks = [m for m in net.features if isinstance(m, Block)]
    assert [b.plan.width for b in blocks] == [32] * 4 + [64] * 4 + [128] * 4  # N=4, filters doubled after pooling
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    conv = net.features[0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.2)
    inet = build_network(RESIDUAL_LIKE, NetworkConfig("imagenet", 3, (64, 128, 256, 512)), 3, 224, 1000)
    assert len([m for m in inet.features if isinstance(m, Block)]) == 12
    feats = inet.features[:8](torch.randn(1, 3, 224, 224))
    assert feats.shape[-1] == 28  # the ImageNet stem downsamples 224 -> 28 before the first blocks


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 2 ** -7)])
@pytest.mark.parametrize("shape", [(4, 8, 14, 14), (3, 5, 7, 9), (2, 3, 2, 3), (2, 4, 1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_as_conv_is_the_same_function(dtype, tol, shape, channels_last):
    """AvgPool.as_conv (the trainer's CPU form): window sums by a depthwise convolution times 1/count
    equal nn.AvgPool2d(count_include_pad=False), forward and backward, at the borders too."""
    from bqnn.block import AvgPool

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).to(dtype).contiguous(memory_format=fmt).requires_grad_()
    g = torch.randn(shape).to(dtype)
    pool = AvgPool(3)
    outs = []
    for as_conv in (False, True):
        pool.as_conv = as_conv
        y = pool(x)
        y.backward(g)
        outs.append((y.detach().float(), x.grad.float()))
        x.grad = None
        assert y.dtype == dtype and y.shape == x.shape
    (y0, g0), (y1, g1) = outs
    scale = 1 + y0.abs()  # bf16: the sum is rounded once more than in the pooling kernel
    assert ((y1 - y0).abs() / scale).max() <= tol
    assert ((g1 - g0).abs() / (1 + g0.abs())).max() <= tol
    assert y0[0, 0, 0, 0] == pytest.approx(x[0, 0, :2, :2].float().mean().item(), abs=tol * 4)  # corner: 4 cells


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2 ** -6)])
@pytest.mark.parametrize("channels", [8, 16])
def test_narrow_batch_norm_on_a_contiguous_copy_is_the_same_function(dtype, tol, channels):
    """BatchNorm.narrow_contiguous: below 16 channels a channels-last input is normalized as a
    contiguous copy; output, input/weight/bias gradients and running statistics match nn.BatchNorm2d,
    and what it hands on (and back) stays channels-last."""
    from bqnn.block import NARROW, BatchNorm

    torch.manual_seed(0)
    shape = (16, channels, 6, 5)
    x0 = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
    g = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
    results = []
    for narrow in (False, True):
        bn = BatchNorm(channels)
        torch.manual_seed(1)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        bn.narrow_contiguous = narrow
        x = x0.clone().requires_grad_()
        y = bn(x)
        y.backward(g)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert x.grad.is_contiguous(memory_format=torch.channels_last)
        relaid = narrow and channels < NARROW and dtype == torch.bfloat16  # not float32: the gap is smaller than the copies
        assert y.grad_fn.name() == ("_RelayoutBackward" if relaid else "NativeBatchNormBackward0")
        results.append([y.detach(), x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    for a, b in zip(*results):
        assert ((a.float() - b.float()).abs() / (1 + a.float().abs())).max() <= tol


def test_relayout_copies_the_value_one_way_and_the_gradient_the_other():
    """The narrow batch norm's speed rests on its kernel seeing a contiguous input and a contiguous
    gradient: _Relayout turns both around, and each stays the same values."""
    from bqnn.block import _Relayout

    cl, plain = torch.channels_last, torch.contiguous_format
    seen = []  # a hook sees the gradient as it is handed back (a leaf's .grad is re-laid to match the leaf)
    x = torch.randn(2, 8, 3, 4).contiguous(memory_format=cl).requires_grad_()
    x.register_hook(seen.append)
    y = _Relayout.apply(x, plain, cl)
    assert y.is_contiguous() and not x.is_contiguous() and torch.equal(y, x)
    g = torch.randn(2, 8, 3, 4)
    y.backward(g)
    assert seen[0].is_contiguous(memory_format=cl) and not seen[0].is_contiguous() and torch.equal(seen[0], g)
    z = torch.randn(2, 8, 3, 4, requires_grad=True)
    z.register_hook(seen.append)
    w = _Relayout.apply(z, cl, plain)
    assert w.is_contiguous(memory_format=cl) and not w.is_contiguous()
    w.backward(g.contiguous(memory_format=cl))
    assert seen[1].is_contiguous() and torch.equal(seen[1], g)


def test_use_cpu_kernels_switches_every_pool_and_batch_norm_of_a_network():
    from bqnn.block import AvgPool, BatchNorm, use_cpu_kernels

    net = build_network(parse("[(1,3,3,0,0),(2,1,3,1,0),(3,5,0,1,2),(4,7,0,0,0)]"), NetworkConfig(filters=(8, 16)), 1, 14, 10)
    pools = [m for m in net.modules() if isinstance(m, AvgPool)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert pools and bns and all(isinstance(m, BatchNorm) for m in bns)  # the stem's too
    assert not any(p.as_conv for p in pools) and not any(b.narrow_contiguous for b in bns)  # native unless asked
    use_cpu_kernels(net, True, True)
    assert all(p.as_conv for p in pools) and all(b.narrow_contiguous for b in bns)
    use_cpu_kernels(net, False, True)
    assert not any(p.as_conv for p in pools) and all(b.narrow_contiguous for b in bns)
