"""Malformed dataset files (issue 14): every one is a DataError of one line naming the file, never a traceback,
a hang or an exhausted memory. Hand-made cases first, then >= 1,000 generated inputs per reader (hypothesis)."""
import gzip
import pickle
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bqnn.data.errors import DataError
from bqnn.data.readers import MAX_IDX_BYTES, _read_cifar_batch, load_fashion_mnist, read_idx

FUZZ = settings(max_examples=1000, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _one_line_naming(e: DataError, path: Path) -> None:
    text = str(e)
    assert str(path) in text and "\n" not in text, text


def _idx(shape, gz=False) -> bytes:
    arr = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    data = bytes([0, 0, 8, len(shape)]) + struct.pack(">" + "I" * len(shape), *shape) + arr.tobytes()
    return gzip.compress(data) if gz else data


def _cifar(n=4, labels=None, data=None) -> dict:
    return {b"data": np.zeros((n, 3072), np.uint8) if data is None else data,
            b"labels": list(range(n)) if labels is None else labels}


@pytest.mark.parametrize("name,content,words", [
    ("corrupt.gz", (lambda z: z[:10] + b"\x00\xff\x13" + z[13:])(gzip.compress(_idx((20, 28, 28)), mtime=0)),
     "cannot read \\(error: Error -3"),  # a zlib.error traceback before
    ("crc.gz", gzip.compress(_idx((3, 2, 2)), mtime=0)[:-8] + b"\0" * 8, "cannot read"),
    ("overflow", bytes([0, 0, 8, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1), "declares"),
    ("big", bytes([0, 0, 8, 2]) + struct.pack(">II", 2**20, 2**20), "declares"),
    ("empty", b"", "bad magic"),
    ("header", bytes([0, 0, 8, 3, 0, 0]), "truncated IDX header"),
    ("long", _idx((2, 2)) + b"x", "oversized"),
])
def test_malformed_idx_is_one_line_naming_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as e:
        read_idx(path)
    _one_line_naming(e.value, path)


def test_a_gzip_bomb_is_refused_by_its_header_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:  # declares 2^40 bytes, holds 64 MiB of zeros in ~64 KiB
        f.write(bytes([0, 0, 8, 2]) + struct.pack(">II", 2**20, 2**20))
        f.write(b"\0" * (64 << 20))
    assert path.stat().st_size < 1 << 20 and 2**40 > MAX_IDX_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="declares"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # by its header: nothing near the 64 MiB it holds was inflated (measured, not timed)


def test_fashion_mnist_with_a_corrupt_gzip_is_one_line(tmp_path):
    for prefix, shape in (("train", (5, 28, 28)), ("t10k", (5, 28, 28))):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(_idx(shape, gz=True))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(_idx((5,), gz=True))
    assert load_fashion_mnist(str(tmp_path)).train_x.shape == (5, 1, 28, 28)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[20:40] = b"\xff" * 20
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        load_fashion_mnist(str(tmp_path))
    _one_line_naming(e.value, bad)


def _shared_nested_lists() -> bytes:
    """A few hundred bytes that unpickle to lists sharing one inner list: converted naively, 2^40 elements."""
    inner = [0] * 1024
    outer = [inner] * 1024
    return pickle.dumps({b"data": [[outer] * 1024] * 1, b"labels": [[outer]]}, protocol=2)


@pytest.mark.parametrize("name,content,words", [
    ("dict_data", pickle.dumps(_cifar(data={b"a": 1}), protocol=2), "'data' must be a uint8 array"),
    ("nested", _shared_nested_lists(), "'data' must be a uint8 array"),
    ("text_labels", pickle.dumps(_cifar(labels=["a", "b", "c", "d"]), protocol=2), "must be 4 integers"),
    ("nan_labels", pickle.dumps(_cifar(labels=[float("nan")] * 4), protocol=2), "must be 4 integers"),
    ("huge_labels", pickle.dumps(_cifar(labels=[2**70] * 4), protocol=2), "beyond 64 bits"),
    ("short_labels", pickle.dumps(_cifar(labels=[0, 1]), protocol=2), "must be 4 integers"),
    ("float_data", pickle.dumps(_cifar(data=np.zeros((4, 3072))), protocol=2), "found a float64 array"),
    ("shape", pickle.dumps(_cifar(data=np.zeros((4, 3, 32, 32), np.uint8)), protocol=2), "shape \\(4, 3, 32, 32\\)"),
    ("list", pickle.dumps([1, 2], protocol=2), "expected a dict, found list"),
    ("keys", pickle.dumps({b"x": 1}, protocol=2), "lacks 'data'"),
    ("truncated", pickle.dumps(_cifar(), protocol=2)[:-30], "not a CIFAR python batch"),
    ("persistent_id", b"\x80\x02Pabc\n.", "persistent_load"),  # the unpickler's message has two lines
])
def test_malformed_cifar_is_one_line_naming_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    assert len(content) < 200_000  # the nested case: a few hundred bytes
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=words) as e:
            _read_cifar_batch(path, "labels")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak  # refused by type and size, before any conversion (the nested one: > 4 GiB)
    _one_line_naming(e.value, path)


# ------------------------------------------------------------------ generated inputs

def _check_idx(content: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("f-idx.gz" if gz else "f-idx")
        path.write_bytes(gzip.compress(content) if gz and content[:1] != b"\x1f" else content)
        try:
            arr = read_idx(path)
        except DataError as e:
            _one_line_naming(e, path)
        else:  # what was read is exactly the file's data after its header
            plain = gzip.decompress(path.read_bytes()) if gz else content
            assert arr.dtype == np.uint8 and arr.tobytes() == plain[4 + 4 * arr.ndim:]


_VALID_IDX = [_idx((3, 2, 2)), _idx((5,)), _idx((2, 3, 1, 1))]


@st.composite
def _idx_bytes(draw):
    kind = draw(st.sampled_from(["mutate", "header", "random", "gzip-mutate"]))
    if kind == "random":
        return draw(st.binary(max_size=64)), draw(st.booleans())
    if kind == "header":
        ndim = draw(st.integers(0, 6))
        dims = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 5), min_size=ndim, max_size=ndim))
        body = draw(st.binary(max_size=48))
        return bytes([0, 0, 8, ndim]) + struct.pack(">" + "I" * ndim, *dims) + body, draw(st.booleans())
    base = draw(st.sampled_from(_VALID_IDX))
    if kind == "gzip-mutate":
        base = gzip.compress(base)
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data), kind == "gzip-mutate"


@FUZZ
@given(_idx_bytes())
def test_fuzz_idx_reader(case):
    content, gz = case
    _check_idx(content, gz)


_LEAVES = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
           | st.binary(max_size=8) | st.text(max_size=4))
_ARRAYS = st.builds(
    lambda dtype, rows, cols: np.zeros((rows, cols), dtype),
    st.sampled_from([np.uint8, np.int64, np.float32, np.bool_, object]),
    st.integers(0, 3), st.sampled_from([0, 1, 3072, 3073]))
_VALUES = st.recursive(_LEAVES | _ARRAYS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.binary(max_size=6) | st.text(max_size=6), inner, max_size=3), max_leaves=12)


@st.composite
def _cifar_pickles(draw):
    kind = draw(st.sampled_from(["structure", "mutate"]))
    if kind == "structure":
        n = draw(st.integers(0, 3))
        data = draw(st.just(np.zeros((n, 3072), np.uint8)) | _VALUES)
        labels = draw(st.just(list(range(n))) | st.lists(st.integers(-2, 2**65), max_size=4) | _VALUES)
        obj = draw(st.sampled_from([{b"data": data, b"labels": labels}, {"data": data, "labels": labels},
                                    {b"data": data}, [data, labels]]))
        share = draw(st.integers(0, 3))  # shared nested containers: tiny pickle, huge when converted
        for _ in range(share):
            if isinstance(obj, dict) and obj:
                key = next(iter(obj))
                obj[key] = [obj[key]] * 1000
        return pickle.dumps(obj, protocol=draw(st.integers(0, 5)))
    data = bytearray(pickle.dumps(_cifar(2), protocol=2))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        if not data:
            break
    return bytes(data)


@FUZZ
@given(_cifar_pickles())
def test_fuzz_cifar_reader(content):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "data_batch_1"
        path.write_bytes(content)
        try:
            x, y = _read_cifar_batch(path, "labels")
        except DataError as e:
            _one_line_naming(e, path)
        else:
            assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and y.shape == (len(x),)
