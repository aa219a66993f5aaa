import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from bqnn.config import DataConfig
from bqnn.data.errors import DataError
from bqnn.data.readers import load_cifar, load_fashion_mnist, read_idx
from bqnn.data.shapes import dataset_shape
from bqnn.data.splits import epoch_batches, load_splits
from tests.conftest import needs_fashion


@needs_fashion
def test_fashion_mnist_reads_the_real_idx_files():
    raw = load_fashion_mnist("")
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert raw.train_x.dtype == np.uint8 and sorted(set(raw.train_y.tolist())) == list(range(10))
    assert np.bincount(raw.train_y).tolist() == [6000] * 10


@needs_fashion
def test_splits_hold_out_validation_from_training_and_live_on_the_device():
    cfg = DataConfig(val_size=500, train_subset=1000, resize=14, split_seed=3)
    s = load_splits(cfg, "cpu")
    assert s.train_x.shape == (1000, 1, 14, 14) and s.val_x.shape == (500, 1, 14, 14)
    assert s.train_x.dtype == torch.float32 and s.test_x is None  # the search never sees the test set
    assert abs(s.train_x.mean().item()) < 1e-3 and s.train_x.std().item() == pytest.approx(1.0, abs=1e-2)
    again = load_splits(cfg, "cpu")
    assert torch.equal(s.val_y, again.val_y)  # the split is seeded
    assert dataset_shape(cfg) == (1, 14, 10)


def _write_idx(path, arr, magic_type=0x08):
    header = bytes([0, 0, magic_type, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


def _fake_fashion(d, n=50):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def test_idx_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fashion_mnist(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte.gz"):
        load_fashion_mnist(str(tmp_path))
    _fake_fashion(tmp_path)
    assert load_fashion_mnist(str(tmp_path)).train_x.shape == (50, 1, 28, 28)
    # truncated
    f = tmp_path / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: truncated"):
        load_fashion_mnist(str(tmp_path))
    # not gzip at all
    f.write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match="cannot read"):
        load_fashion_mnist(str(tmp_path))
    # wrong magic
    plain = tmp_path / "x-idx"
    plain.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="bad magic"):
        read_idx(plain)


def _cifar_batch(path, n, classes, label_key, seed):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"test", label_key: rng.integers(0, classes, n).tolist(),
         b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def test_cifar10_layout(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for i in range(1, 6):
        _cifar_batch(base / f"data_batch_{i}", 20, 10, b"labels", i)
    _cifar_batch(base / "test_batch", 10, 10, b"labels", 9)
    for root in (tmp_path, base):  # the folder itself or its parent
        raw = load_cifar(str(root), 10)
        assert raw.train_x.shape == (100, 3, 32, 32) and raw.test_x.shape == (10, 3, 32, 32)
    s = load_splits(DataConfig(dataset="cifar10", root=str(tmp_path), val_size=20), "cpu", with_test=True)
    assert s.train_x.shape == (80, 3, 32, 32) and s.test_x.shape == (10, 3, 32, 32) and s.num_classes == 10


def test_cifar100_layout_and_errors(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    _cifar_batch(base / "train", 30, 100, b"fine_labels", 1)
    with pytest.raises(DataError, match="missing CIFAR file .*test"):
        load_cifar(str(tmp_path), 100)
    _cifar_batch(base / "test", 10, 100, b"fine_labels", 2)
    assert load_cifar(str(tmp_path), 100).num_classes == 100
    (base / "test").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR python batch"):
        load_cifar(str(tmp_path), 100)
    with pytest.raises(DataError, match="data.root must name"):
        load_cifar("", 100)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/bqnn_pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    with open(base / "train", "wb") as f:
        pickle.dump({b"data": _Evil(), b"fine_labels": [0]}, f, protocol=2)
    with pytest.raises(DataError, match="is not allowed"):
        load_cifar(str(tmp_path), 100)
    assert not os.path.exists("/tmp/bqnn_pwned")


def test_validation_size_larger_than_training_set_is_an_error(tmp_path):
    _fake_fashion(tmp_path, 40)
    with pytest.raises(DataError, match="leaves no training images"):
        load_splits(DataConfig(root=str(tmp_path), val_size=40), "cpu")


def test_epoch_batches_cover_every_index_once():
    g = torch.Generator().manual_seed(0)
    batches = epoch_batches(1000, 256, g, "cpu")
    assert [len(b) for b in batches] == [256, 256, 256, 232]
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
