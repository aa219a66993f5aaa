"""Image folders in the ImageNet layout, listed: ROOT/train/<class>/*.{jpg,jpeg,png,...} and ROOT/val/<class>/*.

Used as a library by data/shapes.py (the classes), data/readers.py and data/sources.py (the files). Classes
are the sorted sub-directory names of ROOT/train; ROOT/val (or ROOT/test) is the test set, with the same
classes. No decoding here (data/imagefolder.py), no torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


class FolderError(DataError):
    """A malformed image folder; the message names the directory or file."""


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
