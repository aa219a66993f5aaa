"""Where final training's batches come from: a dataset held on the device, or an image folder streamed.

Used as a library by training/final.py (`python -m bqnn.train`):

    source = MemorySource(cfg, device, rank, world)    # or StreamSource (image folder, data.resize = 0)
    for x, y, global_n in source.epoch(epoch, generator): ...    # this rank's slice of every global batch

Both take the validation split of data/splits.py; a data-parallel rank takes its slice of every global batch
(`train.batch_size` is the global batch), so the ranks together follow one process exactly.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..config import TrainJobConfig
from .augment import apply_augment, augment_params
from .folder import list_folder
from .imagefolder import center_crop, load_fixed, open_rgb, resize_shorter
from .splits import load_splits, validation_split


def shard(idx: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's part of a global batch of indices."""
    return idx.tensor_split(world)[rank] if world > 1 else idx


class MemorySource:
    """A dataset held on the device (Fashion-MNIST, CIFAR, an image folder at data.resize)."""

    def __init__(self, cfg: TrainJobConfig, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.s = load_splits(cfg.data, device, with_test=True)
        self.t, self.device, self.rank, self.world = cfg.train, device, rank, world
        self.in_channels, self.size, self.num_classes = self.s.in_channels, self.s.size, self.s.num_classes
        self.mean, self.std = self.s.mean, self.s.std
        self.n_train = len(self.s.train_y)

    def epoch(self, epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """(x, y, global batch size) per global batch; x and y are this rank's slice, augmented."""
        s, t = self.s, self.t
        perm = torch.randperm(self.n_train, device=self.device, generator=gen)
        for idx in perm.split(t.batch_size):
            params = augment_params(len(idx), t.crop_padding, t.flip, gen, self.device)
            part = shard(torch.arange(len(idx), device=self.device), self.rank, self.world)
            local = idx[part]
            local_params = tuple(p[part] if p is not None else None for p in params)
            x = apply_augment(s.train_x.index_select(0, local), t.crop_padding, local_params)
            yield x, s.train_y.index_select(0, local), len(idx)

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = (self.s.val_x, self.s.val_y) if split == "val" else (self.s.test_x, self.s.test_y)
        idx = shard(torch.arange(len(y), device=self.device), self.rank, self.world)
        for part in idx.split(self.t.eval_batch_size):
            yield x.index_select(0, part), y.index_select(0, part)


class StreamSource:
    """An image folder decoded on the fly with the paper's ImageNet transforms (data.resize = 0)."""

    def __init__(self, cfg: TrainJobConfig, device: torch.device, rank: int = 0, world: int = 1) -> None:
        data = cfg.data
        listing = list_folder(data.root)
        val_idx, train_idx = validation_split(len(listing.train), data)
        val_items = [listing.train[i] for i in val_idx]
        train_items = [listing.train[i] for i in train_idx]
        # per-channel mean and std from (up to) 1,000 training images, center crops
        picks = np.linspace(0, len(train_items) - 1, min(1000, len(train_items))).astype(int)
        sample = [train_items[i][0] for i in picks]
        px = np.stack([load_fixed(p, data.crop) for p in sample]).astype(np.float64) / 255.0
        self.mean = tuple(px.mean(axis=(0, 2, 3)).tolist())
        self.std = tuple(np.maximum(px.std(axis=(0, 2, 3)), 1e-6).tolist())
        def mk(items: list[tuple[str, int]], train: bool) -> StreamDataset:
            return StreamDataset(items, train, data.crop, data.scale, data.test_resize, self.mean, self.std)

        self.train_ds, self.val_ds, self.test_ds = mk(train_items, True), mk(val_items, False), mk(listing.test, False)
        self.t, self.device, self.rank, self.world, self.workers = cfg.train, device, rank, world, data.workers
        self.in_channels, self.size, self.num_classes = 3, data.crop, len(listing.classes)
        self.n_train = len(train_items)

    def _loader(self, ds, batches: list[list[int]]):
        return torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=self.workers,
                                           pin_memory=self.device.type == "cuda")

    def epoch(self, epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        perm = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(int(gen.initial_seed())))
        global_batches = list(perm.split(self.t.batch_size))
        local = [shard(b, self.rank, self.world).tolist() for b in global_batches]
        self.train_ds.epoch_seed = int(gen.initial_seed())
        for (x, y), b in zip(self._loader(self.train_ds, local), global_batches, strict=True):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), len(b)

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.val_ds if split == "val" else self.test_ds
        idx = shard(torch.arange(len(ds)), self.rank, self.world)
        for x, y in self._loader(ds, [b.tolist() for b in idx.split(self.t.eval_batch_size)]):
            yield x.to(self.device), y.to(self.device)


class StreamDataset(torch.utils.data.Dataset):
    """The paper's ImageNet transforms, decoded on the fly (use inside a DataLoader with workers).
    Randomness comes from a per-item seed (epoch seed + index), so an epoch is reproducible."""

    def __init__(self, items: list[tuple[str, int]], train: bool, crop: int, scale: tuple[int, int], test_resize: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.items, self.train, self.crop, self.scale, self.test_resize = items, train, crop, scale, test_resize
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.epoch_seed = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        im = open_rgb(path)
        if self.train:
            rng = np.random.default_rng((self.epoch_seed, i))
            im = resize_shorter(im, int(rng.integers(self.scale[0], self.scale[1] + 1)))
            w, h = im.size
            left, top = int(rng.integers(0, w - self.crop + 1)), int(rng.integers(0, h - self.crop + 1))
            im = im.crop((left, top, left + self.crop, top + self.crop))
            arr = np.asarray(im, dtype=np.float32)
            if rng.random() < 0.5:
                arr = arr[:, ::-1]
        else:
            arr = np.asarray(center_crop(resize_shorter(im, self.test_resize), self.crop), dtype=np.float32)
        x = torch.from_numpy(arr.transpose(2, 0, 1).copy()).div_(255.0)
        return (x - self.mean) / self.std, label
