"""Image folders (ImageNet layout, listed by data/folder.py) decoded with PIL: in memory, or streamed.

Used through data/readers.py (`data.dataset = "imagefolder"`, `data.root = ROOT`) and data/sources.py
(whose StreamDataset decodes with the functions here). Images are decoded with PIL in `data.workers`
processes (torchvision is not needed); numpy and PIL only.

Two ways to use a folder:
- in memory (`data.resize = S > 0`): every image is resized (shorter side S) and center-cropped to
  S x S once, and the whole set lives on the device like CIFAR; for searches and small folders;
- streamed (`data.resize = 0`, `bqnn.train` only): the paper's ImageNet transforms, per epoch, in
  DataLoader worker processes: training images get their shorter side resized to a size drawn from
  `data.scale` ([256, 480]), a random `data.crop` (224) crop and a random flip; test images are
  resized to `data.test_resize` (256) and center-cropped.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .errors import describe
from .folder import EXTENSIONS, FolderError, Listing, list_folder

__all__ = ["EXTENSIONS", "FolderError", "Listing", "list_folder", "load_fixed", "load_in_memory"]


def open_rgb(path: str):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:
        raise FolderError(f"{path}: cannot decode image ({describe(e)})") from None


def resize_shorter(im, side: int):
    from PIL import Image

    w, h = im.size
    s = side / min(w, h)
    return im.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)


def center_crop(im, side: int):
    w, h = im.size
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def load_fixed(path: str, side: int) -> np.ndarray:
    """One image, shorter side resized to `side`, center-cropped to side x side: (3, side, side) uint8."""
    im = center_crop(resize_shorter(open_rgb(path), side), side)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def _load_many(args: tuple[list[str], int]) -> np.ndarray:
    paths, side = args
    return np.stack([load_fixed(p, side) for p in paths]) if paths else np.zeros((0, 3, side, side), np.uint8)


def load_in_memory(items: list[tuple[str, int]], side: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """All images at side x side as a (N, 3, side, side) uint8 array, decoded in worker processes."""
    paths = [p for p, _ in items]
    labels = np.array([label for _, label in items], dtype=np.int64)
    chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_load_many, [(c, side) for c in chunks]))
    else:
        parts = [_load_many((c, side)) for c in chunks]
    images = np.concatenate(parts) if parts else np.zeros((0, 3, side, side), np.uint8)
    return images, labels
