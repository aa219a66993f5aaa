"""Dataset files into numpy arrays: Fashion-MNIST (IDX), CIFAR-10/100 (python pickle layout), image folders.

Used as a library by data/splits.py (`load_raw(cfg.data)`); numpy only (image folders decode with PIL,
data/imagefolder.py). Layouts read (the user names the directory in `data.root`):
- fashion-mnist: train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
  t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz); default directory
  /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist);
- cifar10: cifar-10-batches-py/{data_batch_1..5,test_batch} (root may be that folder or its parent);
- cifar100: cifar-100-python/{train,test}, fine labels;
- imagefolder: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg, held at data.resize (data/imagefolder.py).
The CIFAR files are pickles; they are read with an unpickler that only admits
numpy arrays and plain containers, so a crafted file cannot run code.
"""
from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..config import DataConfig
from .errors import DataError, describe

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@dataclass
class RawData:
    train_x: np.ndarray  # (N, C, H, W) uint8
    train_y: np.ndarray  # (N,) int64
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


# The largest IDX data a reader accepts (bytes): the header's dimensions are checked against it before
# anything is allocated, so a damaged header or a gzip bomb is an error, not an exhausted memory.
MAX_IDX_BYTES = 1 << 34


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (unsigned byte data), gzip-compressed or not; any malformed input is a DataError naming it."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
            ndim = head[3]
            dim_bytes = f.read(4 * ndim)
            if len(dim_bytes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(">" + "I" * ndim, dim_bytes)
            expected = math.prod(dims)  # exact: no overflow whatever the header says
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header declares {' x '.join(map(str, dims))} = {expected} bytes, "
                                f"over the {MAX_IDX_BYTES} a dataset file may hold (damaged header?)")
            raw = _read_at_most(f, expected + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({describe(e)})") from None
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or oversized IDX file: {len(raw)}{'+' if len(raw) > expected else ''} "
                        f"data bytes, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _read_at_most(f: BinaryIO, limit: int) -> bytes:
    """Up to `limit` bytes, read in chunks (a plain read(limit) would allocate `limit` bytes at once)."""
    chunks, got = [], 0
    while got < limit:
        chunk = f.read(min(limit - got, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


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
    """One CIFAR python batch: a dict whose `data` is a uint8 array of N x 3072 and whose labels are N ints.
    Types and sizes are checked before any conversion, so containers shared inside a small pickle cannot
    grow into gigabytes, and every malformed file is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"missing CIFAR file {path}")
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a malformed file
        raise DataError(f"{path}: not a CIFAR python batch ({describe(e)})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python batch (expected a dict, found {type(d).__name__})")
    d = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: CIFAR batch lacks 'data' or '{label_key}'")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        what = f"a {x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: CIFAR 'data' must be a uint8 array of shape (N, 3072), found {what}")
    y = _labels(path, label_key, d[label_key], len(x))
    return x.reshape(-1, 3, 32, 32), y


def _labels(path: Path, key: str, labels: Any, n: int) -> np.ndarray:
    """N integer labels, from a list of ints (as CIFAR stores them) or an integer array."""
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and len(labels) == n and labels.dtype.kind in "iu"
    else:
        ok = isinstance(labels, list) and len(labels) == n and all(type(v) is int for v in labels)
    if not ok:
        found = (f"a {labels.dtype} array of shape {labels.shape}" if isinstance(labels, np.ndarray)
                 else f"a list of {len(labels)}" if isinstance(labels, list) else type(labels).__name__)
        raise DataError(f"{path}: CIFAR '{key}' must be {n} integers (one per image), found {found}")
    try:
        return np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{path}: CIFAR '{key}' holds integers beyond 64 bits") from None


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
    from .folder import list_folder
    from .imagefolder import load_in_memory

    if not cfg.resize:
        raise DataError("data.resize must be set to hold an image folder in memory (searches need it; "
                        "python -m bqnn.train streams the folder when data.resize = 0)")
    listing = list_folder(cfg.root)  # a FolderError is a DataError
    tx, ty = load_in_memory(listing.train, cfg.resize, cfg.workers)
    sx, sy = load_in_memory(listing.test, cfg.resize, cfg.workers)
    return RawData(tx, ty, sx, sy, len(listing.classes))
