"""The CPU forms of average pooling and narrow batch norm (nets/cpu_kernels.py): the same function as PyTorch's."""
import pytest
import torch

from bqnn.blocks.code import parse
from bqnn.config import NetworkConfig
from bqnn.nets.network import build_network


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 2 ** -7)])
@pytest.mark.parametrize("shape", [(4, 8, 14, 14), (3, 5, 7, 9), (2, 3, 2, 3), (2, 4, 1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_as_conv_is_the_same_function(dtype, tol, shape, channels_last):
    """AvgPool.as_conv (the trainer's CPU form): window sums by a depthwise convolution times 1/count
    equal nn.AvgPool2d(count_include_pad=False), forward and backward, at the borders too."""
    from bqnn.nets.cpu_kernels import AvgPool

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
    from bqnn.nets.cpu_kernels import NARROW, BatchNorm

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
        # not float32: the gap is smaller than the copies
        relaid = narrow and channels < NARROW and dtype == torch.bfloat16
        assert y.grad_fn.name() == ("_RelayoutBackward" if relaid else "NativeBatchNormBackward0")
        results.append([y.detach(), x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    for a, b in zip(*results, strict=False):
        assert ((a.float() - b.float()).abs() / (1 + a.float().abs())).max() <= tol


def test_relayout_copies_the_value_one_way_and_the_gradient_the_other():
    """The narrow batch norm's speed rests on its kernel seeing a contiguous input and a contiguous
    gradient: _Relayout turns both around, and each stays the same values."""
    from bqnn.nets.cpu_kernels import _Relayout

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
    from bqnn.nets.cpu_kernels import AvgPool, BatchNorm, use_cpu_kernels

    net = build_network(parse("[(1,3,3,0,0),(2,1,3,1,0),(3,5,0,1,2),(4,7,0,0,0)]"), NetworkConfig(filters=(8, 16)),
                        1, 14, 10)
    pools = [m for m in net.modules() if isinstance(m, AvgPool)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert pools and bns and all(isinstance(m, BatchNorm) for m in bns)  # the stem's too
    assert not any(p.as_conv for p in pools) and not any(b.narrow_contiguous for b in bns)  # native unless asked
    use_cpu_kernels(net, True, True)
    assert all(p.as_conv for p in pools) and all(b.narrow_contiguous for b in bns)
    use_cpu_kernels(net, False, True)
    assert not any(p.as_conv for p in pools) and all(b.narrow_contiguous for b in bns)
