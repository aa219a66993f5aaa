"""Training-time augmentation on the device: random crop from the zero-padded image and horizontal flip.

Used by the final-training data sources (data/sources.py). The random draws are made for a whole global
batch (`augment_params`) so that data-parallel ranks each take their slice and match one process exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

AugmentParams = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def augment_params(n: int, padding: int, flip: bool, generator: torch.Generator,
                   device: torch.device | str) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Random crop offsets and flip decisions for a batch of n images (drawn for a whole global batch,
    so that data-parallel ranks can each take their slice and match a single process exactly)."""
    oy = ox = mask = None
    if padding:
        oy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
        ox = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    if flip:
        mask = torch.rand(n, device=device, generator=generator) < 0.5
    return oy, ox, mask


def apply_augment(x: torch.Tensor, padding: int, params) -> torch.Tensor:
    """Crop of the original size from the zero-padded image, then flip, per image, on x's device.
    (Zero padding in normalized space is padding with the mean.)"""
    oy, ox, mask = params
    b, c, h, w = x.shape
    dev = x.device
    if padding and oy is not None:
        xp = F.pad(x, (padding, padding, padding, padding))
        rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]  # (b,1,h,1)
        cols = (ox[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]  # (b,1,1,w)
        x = xp[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
               rows, cols]
    if mask is not None:
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (from the zero-padded image) and horizontal flip of every image of x."""
    return apply_augment(x, padding, augment_params(len(x), padding, flip, generator, x.device))
