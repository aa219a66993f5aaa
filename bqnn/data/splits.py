"""Datasets as device-resident tensors: the validation split held out of the training set, normalized, on the device.

Used as a library by the trainers:

    splits = load_splits(cfg.data, device)      # once per process
    for idx in epoch_batches(len(splits.train_y), 256, generator, device):
        x, y = splits.train_x[idx], splits.train_y[idx]

The validation set is `val_size` images held out of the training set with a fixed seed
(`validation_split`, also used by the streamed image folders of data/sources.py); the test set is
never used by the search. Images are scaled to [0, 1], optionally resized once (bilinear,
antialiased), normalized per channel with the training split's mean and std, and kept on the device
as float32, so a batch is an index_select on the device, with no per-batch loader overhead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig
from .errors import DataError
from .readers import load_raw


@dataclass
class Splits:
    train_x: torch.Tensor  # (N, C, H, W) float32, normalized, on the device
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def size(self) -> int:
        return int(self.train_x.shape[2])


def validation_split(n: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, training indices) of a training set of n images, each sorted: `val_size` held out
    with `split_seed`, the training part cut to `train_subset` when that is set."""
    if cfg.val_size >= n:
        raise DataError(f"data.val_size {cfg.val_size} leaves no training images (the training set has {n})")
    perm = np.random.default_rng(cfg.split_seed).permutation(n)
    val_idx, train_idx = perm[: cfg.val_size], perm[cfg.val_size:]
    if cfg.train_subset:
        train_idx = train_idx[: cfg.train_subset]
    return np.sort(val_idx), np.sort(train_idx)


def _to_float(x: np.ndarray, resize: int) -> torch.Tensor:
    t = torch.from_numpy(np.array(x, dtype=np.float32)).div_(255.0)  # a copy: IDX arrays are read-only views
    if resize and resize != t.shape[-1] and len(t):
        t = F.interpolate(t, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
    elif resize and not len(t):  # an empty validation split (data.val_size = 0 in final training)
        t = t.new_zeros((0, t.shape[1], resize, resize))
    return t


def load_splits(cfg: DataConfig, device: torch.device | str = "cpu", with_test: bool = False) -> Splits:
    """Read the dataset, hold out the validation set, and move everything to `device`."""
    raw = load_raw(cfg)
    val_idx, train_idx = validation_split(len(raw.train_y), cfg)
    train_x = _to_float(raw.train_x[train_idx], cfg.resize)
    val_x = _to_float(raw.train_x[val_idx], cfg.resize)
    if cfg.normalize:
        mean = train_x.mean(dim=(0, 2, 3), dtype=torch.float64)
        std = train_x.std(dim=(0, 2, 3)).double().clamp_min(1e-6)
    else:
        mean = torch.zeros(train_x.shape[1], dtype=torch.float64)
        std = torch.ones(train_x.shape[1], dtype=torch.float64)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return ((t - mean.float().view(1, -1, 1, 1)) / std.float().view(1, -1, 1, 1)).contiguous().to(device)

    splits = Splits(
        train_x=norm(train_x),
        train_y=torch.from_numpy(raw.train_y[train_idx]).to(device),
        val_x=norm(val_x),
        val_y=torch.from_numpy(raw.train_y[val_idx]).to(device),
        num_classes=raw.num_classes,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )
    if with_test:
        splits.test_x = norm(_to_float(raw.test_x, cfg.resize))
        splits.test_y = torch.from_numpy(raw.test_y).to(device)
    return splits


def epoch_batches(n: int, batch_size: int, generator: torch.Generator,
                  device: torch.device | str) -> list[torch.Tensor]:
    """A fresh permutation of 0..n-1 on the device, cut into batches of indices."""
    return list(torch.randperm(n, device=device, generator=generator).split(batch_size))
