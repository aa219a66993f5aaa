"""Two layers that compute the same function two ways, for CPUs: PyTorch's CPU kernels for them are slow
at the searched networks' shapes (`python bench/trainer.py --kernels`).

Used by the builders (nets/ops.py, nets/network.py) and switched per model by `use_cpu_kernels` (the
trainer does it on CPUs: `trainer.avg_pool_conv`, `trainer.narrow_bn_contiguous`): `AvgPool` as a
depthwise convolution, `BatchNorm` of fewer than 16 channels-last channels on a contiguous copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NARROW = 16  # channels: PyTorch's channels-last CPU batch norm vectorizes over channels


class _Relayout(torch.autograd.Function):
    """`x` in memory format `fwd`, its gradient in `bwd`: a copy each way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fwd: torch.memory_format, bwd: torch.memory_format) -> torch.Tensor:
        ctx.bwd = bwd
        return x.contiguous(memory_format=fwd)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.contiguous(memory_format=ctx.bwd), None, None


class BatchNorm(nn.BatchNorm2d):
    """nn.BatchNorm2d. With `narrow_contiguous` (set by `use_cpu_kernels`), a bf16/fp16 channels-last
    input of fewer than NARROW channels is normalized, in training, as a contiguous copy, its gradient
    too, and handed on channels-last: PyTorch's channels-last CPU kernels vectorize over channels, and
    at 8 bf16 channels the forward takes ~6x the contiguous kernel's time, more than the four copies
    cost (`python bench/trainer.py --kernels`). In float32 the gap is smaller than the copies."""

    narrow_contiguous = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.narrow_contiguous and self.training and x.shape[1] < NARROW
                and x.dtype in (torch.bfloat16, torch.float16) and not x.is_contiguous()):
            cl, plain = torch.channels_last, torch.contiguous_format
            return _Relayout.apply(super().forward(_Relayout.apply(x, plain, cl)), cl, plain)
        return super().forward(x)


class AvgPool(nn.AvgPool2d):
    """Average pooling, stride 1, same padding, the padding left out of the count.

    With `as_conv` (set by `use_cpu_kernels`) the same function is computed as a depthwise
    convolution with a kernel of ones (the window sums) times 1/count per position: on CPUs PyTorch's
    pooling kernels, forward and backward, take up to ~4x the time at the searched networks' shapes
    (`python bench/trainer.py --kernels`). The factor is held in the sums' dtype, laid out like them
    (a float32 factor costs a float32 intermediate; a broadcast over channels-last channels is a
    strided loop): exact in float32; in bf16 1/count is itself rounded (1/9 by 0.03 %, 1/6 by 0.2 %,
    within one bf16 rounding), so a result may differ from the pooling kernel's by an ulp or two.
    Off, it is nn.AvgPool2d itself."""

    def __init__(self, kernel: int) -> None:
        super().__init__(kernel, stride=1, padding=kernel // 2, count_include_pad=False)
        self.as_conv = False
        self._scale: dict[tuple, torch.Tensor] = {}

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """(1, C, H, W) in x's dtype and layout: 1 / the number of in-image positions of each window."""
        c, h, w = x.shape[1:]
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        key = (c, h, w, x.device, x.dtype, layout)
        if key not in self._scale:
            p = self.padding

            def count(n: int) -> torch.Tensor:
                i = torch.arange(n)
                return ((i + p).clamp(max=n - 1) - (i - p).clamp(min=0) + 1).double()

            inv = (1.0 / (count(h)[:, None] * count(w)[None, :])).to(x.dtype)
            self._scale[key] = inv.expand(1, c, h, w).to(x.device).contiguous(memory_format=layout)
        return self._scale[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.as_conv or self.kernel_size == 1:
            return super().forward(x)
        k, c = self.kernel_size, x.shape[1]
        ones = torch.ones(c, 1, k, k, dtype=x.dtype, device=x.device)
        sums = F.conv2d(x, ones, padding=self.padding, groups=c)  # under autocast: in its dtype
        return sums * self.scale(sums)


def use_cpu_kernels(model: nn.Module, avg_pool_conv: bool, narrow_bn_contiguous: bool) -> None:
    """Switch `model`'s AvgPool and BatchNorm layers to (True) or from (False) their CPU-friendly forms."""
    for m in model.modules():
        if isinstance(m, AvgPool):
            m.as_conv = avg_pool_conv
        elif isinstance(m, BatchNorm):
            m.narrow_contiguous = narrow_bn_contiguous
