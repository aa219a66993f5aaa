"""FLOPs of a built torch module counted with forward hooks: the oracle the analytic costs
(blocks/cost.py) are tested against.

Used by the tests (`hook_flops(model, inputs)`). It reads the shapes the real modules see, independently
of the channel plan; an unknown leaf module type raises, so a new module cannot go uncounted.
"""
from __future__ import annotations

import torch
from torch import nn

from .ops import Add, Concat


def hook_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass counted with forward hooks on the leaf modules.

    Independent of `plan_block`: it reads the shapes the real modules see.
    Unknown leaf module types raise, so a new module cannot go uncounted."""
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
