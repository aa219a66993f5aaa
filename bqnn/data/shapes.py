"""What rank 0 knows of a dataset without reading it: channels, side and classes.

Used as a library by rank 0 (the network's costs need them) and the simulated trainer. No torch, no image
decoding: an image folder's classes are its sub-directory names (data/folder.py).
"""
from __future__ import annotations

from ..config import DataConfig
from .folder import list_folder

# (channels, side, classes) of each dataset as stored, for costs computed without loading it.
SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion-mnist": (1, 28, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100),
}


def dataset_shape(cfg: DataConfig) -> tuple[int, int, int]:
    """(in_channels, side after resize, classes) of the configured dataset, without decoding it."""
    if cfg.dataset == "imagefolder":
        return 3, cfg.resize or cfg.crop, len(list_folder(cfg.root).classes)
    channels, side, classes = SHAPES[cfg.dataset]
    return channels, cfg.resize or side, classes
