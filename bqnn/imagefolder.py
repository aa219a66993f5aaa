"""Image folders (ImageNet layout): ROOT/train/<class>/*.{jpg,jpeg,png,...} and ROOT/val/<class>/*.

Used through data.py (`data.dataset = "imagefolder"`, `data.root = ROOT`). Classes are the sorted
sub-directory names of ROOT/train; ROOT/val (or ROOT/test) is the test set, with the same classes.
Images are decoded with PIL in `data.workers` processes (torchvision is not needed).

Two ways to use a folder:
- in memory (`data.resize = S > 0`): every image is resized (shorter side S) and center-cropped to
  S x S once, and the whole set lives on the device like CIFAR; for searches and small folders;
- streamed (`data.resize = 0`, `bqnn.train` only): the paper's ImageNet transforms, per epoch, in
  DataLoader worker processes: training images get their shorter side resized to a size drawn from
  `data.scale` ([256, 480]), a random `data.crop` (224) crop and a random flip; test images are
  resized to `data.test_resize` (256) and center-cropped.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


class FolderError(Exception):
    pass


@dataclass
class Listing:
    classes: list[str]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]


def _files(d: Path, classes: list[str]) -> list[tuple[str, int]]:
    out = []
    for label, name in enumerate(classes):
        sub = d / name
        if not sub.is_dir():
            continue
        for dirpath, _, files in sorted(os.walk(sub)):
            for f in sorted(files):
                if Path(f).suffix.lower() in EXTENSIONS:
                    out.append((os.path.join(dirpath, f), label))
    return out


def list_folder(root: str | Path) -> Listing:
    root = Path(root)
    if not root.is_dir():
        raise FolderError(f"dataset directory {root} does not exist")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FolderError(f"{root}: no train/ directory (expected ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg)")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise FolderError(f"{train_dir}: found {len(classes)} class directories, need at least 2")
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if test_dir is None:
        raise FolderError(f"{root}: no val/ or test/ directory")
    extra = sorted({p.name for p in test_dir.iterdir() if p.is_dir()} - set(classes))
    if extra:
        raise FolderError(f"{test_dir}: classes {extra[:3]} are not in train/")
    train, test = _files(train_dir, classes), _files(test_dir, classes)
    if not train:
        raise FolderError(f"{train_dir}: no images ({', '.join(sorted(EXTENSIONS))})")
    return Listing(classes, train, test)


def _open_rgb(path: str):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:
        raise FolderError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def _resize_shorter(im, side: int):
    from PIL import Image

    w, h = im.size
    s = side / min(w, h)
    return im.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)


def _center_crop(im, side: int):
    w, h = im.size
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def load_fixed(path: str, side: int) -> np.ndarray:
    """One image, shorter side resized to `side`, center-cropped to side x side: (3, side, side) uint8."""
    im = _center_crop(_resize_shorter(_open_rgb(path), side), side)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def _load_many(args: tuple[list[str], int]) -> np.ndarray:
    paths, side = args
    return np.stack([load_fixed(p, side) for p in paths]) if paths else np.zeros((0, 3, side, side), np.uint8)


def load_in_memory(items: list[tuple[str, int]], side: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """All images at side x side as a (N, 3, side, side) uint8 array, decoded in worker processes."""
    paths = [p for p, _ in items]
    labels = np.array([l for _, l in items], dtype=np.int64)
    chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_load_many, [(c, side) for c in chunks]))
    else:
        parts = [_load_many((c, side)) for c in chunks]
    images = np.concatenate(parts) if parts else np.zeros((0, 3, side, side), np.uint8)
    return images, labels


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
        im = _open_rgb(path)
        if self.train:
            rng = np.random.default_rng((self.epoch_seed, i))
            im = _resize_shorter(im, int(rng.integers(self.scale[0], self.scale[1] + 1)))
            w, h = im.size
            left, top = int(rng.integers(0, w - self.crop + 1)), int(rng.integers(0, h - self.crop + 1))
            im = im.crop((left, top, left + self.crop, top + self.crop))
            arr = np.asarray(im, dtype=np.float32)
            if rng.random() < 0.5:
                arr = arr[:, ::-1]
        else:
            arr = np.asarray(_center_crop(_resize_shorter(im, self.test_resize), self.crop), dtype=np.float32)
        x = torch.from_numpy(arr.transpose(2, 0, 1).copy()).div_(255.0)
        return (x - self.mean) / self.std, label
