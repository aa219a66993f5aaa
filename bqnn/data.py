"""Datasets as device-resident tensors: Fashion-MNIST (IDX), CIFAR-10/100 (python pickle layout).

Used as a library by the trainer and workers:

    splits = load_splits(cfg.data, device)      # once per process
    for idx in epoch_batches(len(splits.train_y), 256, generator):
        x, y = splits.train_x[idx], splits.train_y[idx]

Layouts read (the user names the directory in `data.root`):
- fashion-mnist: train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
  t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz); default directory
  /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist);
- cifar10: cifar-10-batches-py/{data_batch_1..5,test_batch} (root may be that folder or its parent);
- cifar100: cifar-100-python/{train,test}, fine labels.
The CIFAR files are pickles; they are read with an unpickler that only admits
numpy arrays and plain containers, so a crafted file cannot run code.

The validation set is `val_size` images held out of the training set with a
fixed seed; the test set is never used by the search. Images are scaled to
[0, 1], optionally resized once (bilinear, antialiased), normalized per channel
with the training split's mean and std, and kept on the device as float32, so
a batch is an index_select on the device, with no per-batch loader overhead.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class DataError(Exception):
    """A missing or malformed dataset; the message names the file and the problem."""


@dataclass
class RawData:
    train_x: np.ndarray  # (N, C, H, W) uint8
    train_y: np.ndarray  # (N,) int64
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


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


# ---------------------------------------------------------------- readers

def read_idx(path: Path) -> np.ndarray:
    """One IDX file (unsigned byte data), gzip-compressed or not."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: truncated or oversized IDX file: {len(raw) - header} data bytes, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_file(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: missing {name}.gz (Fashion-MNIST IDX files; set data.root to their directory)")


def load_fashion_mnist(root: str) -> RawData:
    path = Path(root or FASHION_MNIST_DIR)
    if not path.is_dir():
        hint = " (install the Debian package dataset-fashion-mnist)" if not root else ""
        raise DataError(f"dataset directory {path} does not exist{hint}")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_idx_file(path, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_idx_file(path, f"{prefix}-labels-idx1-ubyte"))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{path}: {prefix} images {x.shape} and labels {y.shape} do not match")
        if y.size and y.max() >= 10:
            raise DataError(f"{path}: {prefix} labels go up to {y.max()}, Fashion-MNIST has 10 classes")
        parts[split] = (x[:, None, :, :], y.astype(np.int64))
    return RawData(*parts["train"], *parts["test"], num_classes=10)


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what CIFAR batches contain: numpy arrays, dtypes, and builtin containers."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2; it only encodes text
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset file")


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"missing CIFAR file {path}")
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a malformed file
        raise DataError(f"{path}: not a CIFAR python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python batch (expected a dict)")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: CIFAR batch lacks 'data' or '{label_key}'")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{path}: expected data of shape (N, 3072) and N labels, got {x.shape} and {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar(root: str, num_classes: int) -> RawData:
    if not root:
        raise DataError(f"data.root must name the directory of CIFAR-{num_classes} (python version)")
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"dataset directory {path} does not exist")
    sub = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    base = path / sub if (path / sub).is_dir() else path
    if num_classes == 10:
        train = [_read_cifar_batch(base / f"data_batch_{i}", "labels") for i in range(1, 6)]
        test = [_read_cifar_batch(base / "test_batch", "labels")]
    else:
        train = [_read_cifar_batch(base / "train", "fine_labels")]
        test = [_read_cifar_batch(base / "test", "fine_labels")]
    tx, ty = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    sx, sy = np.concatenate([b[0] for b in test]), np.concatenate([b[1] for b in test])
    for y in (ty, sy):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{base}: labels outside 0..{num_classes - 1}")
    return RawData(tx, ty, sx, sy, num_classes)


# (channels, side, classes) of each dataset as stored, for costs computed without loading it.
SHAPES: dict[str, tuple[int, int, int]] = {"fashion-mnist": (1, 28, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}


def dataset_shape(cfg: DataConfig) -> tuple[int, int, int]:
    """(in_channels, side after resize, classes) of the configured dataset, without decoding it."""
    if cfg.dataset == "imagefolder":
        from .imagefolder import FolderError, list_folder

        try:
            classes = len(list_folder(cfg.root).classes)
        except FolderError as e:
            raise DataError(str(e)) from None
        return 3, cfg.resize or cfg.crop, classes
    channels, side, classes = SHAPES[cfg.dataset]
    return channels, cfg.resize or side, classes


def load_raw(cfg: DataConfig) -> RawData:
    if cfg.dataset == "fashion-mnist":
        return load_fashion_mnist(cfg.root)
    if cfg.dataset == "cifar10":
        return load_cifar(cfg.root, 10)
    if cfg.dataset == "cifar100":
        return load_cifar(cfg.root, 100)
    if cfg.dataset == "imagefolder":
        return load_imagefolder(cfg)
    raise DataError(f"unknown data.dataset {cfg.dataset!r}")


def load_imagefolder(cfg: DataConfig) -> RawData:
    """An image folder held in memory at data.resize x data.resize (imagefolder.py)."""
    from .imagefolder import FolderError, list_folder, load_in_memory

    if not cfg.resize:
        raise DataError("data.resize must be set to hold an image folder in memory (searches need it; "
                        "python -m bqnn.train streams the folder when data.resize = 0)")
    try:
        listing = list_folder(cfg.root)
        tx, ty = load_in_memory(listing.train, cfg.resize, cfg.workers)
        sx, sy = load_in_memory(listing.test, cfg.resize, cfg.workers)
    except FolderError as e:
        raise DataError(str(e)) from None
    return RawData(tx, ty, sx, sy, len(listing.classes))


# ---------------------------------------------------------------- splits

def _to_float(x: np.ndarray, resize: int) -> torch.Tensor:
    t = torch.from_numpy(np.array(x, dtype=np.float32)).div_(255.0)  # a copy: IDX arrays are read-only views
    if resize and resize != t.shape[-1]:
        t = F.interpolate(t, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
    return t


def load_splits(cfg: DataConfig, device: torch.device | str = "cpu", with_test: bool = False) -> Splits:
    """Read the dataset, hold out the validation set, and move everything to `device`."""
    raw = load_raw(cfg)
    n = len(raw.train_y)
    if cfg.val_size >= n:
        raise DataError(f"data.val_size {cfg.val_size} leaves no training images (the training set has {n})")
    perm = np.random.default_rng(cfg.split_seed).permutation(n)
    val_idx, train_idx = perm[: cfg.val_size], perm[cfg.val_size:]
    if cfg.train_subset:
        train_idx = train_idx[: cfg.train_subset]
    train_x = _to_float(raw.train_x[np.sort(train_idx)], cfg.resize)
    val_x = _to_float(raw.train_x[np.sort(val_idx)], cfg.resize)
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
        train_y=torch.from_numpy(raw.train_y[np.sort(train_idx)]).to(device),
        val_x=norm(val_x),
        val_y=torch.from_numpy(raw.train_y[np.sort(val_idx)]).to(device),
        num_classes=raw.num_classes,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )
    if with_test:
        splits.test_x = norm(_to_float(raw.test_x, cfg.resize))
        splits.test_y = torch.from_numpy(raw.test_y).to(device)
    return splits


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device | str) -> list[torch.Tensor]:
    """A fresh permutation of 0..n-1 on the device, cut into batches of indices."""
    return list(torch.randperm(n, device=device, generator=generator).split(batch_size))


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
