"""A SearchState in an open HDF5 file and back, every field by its declared place (run/state.py), with the rules
that read files of earlier schemas.

Used by run/checkpoint.py, which owns the file (atomic writes, the seal, the backup, the checks):

    write(f, state, schema, versions)     # f: an h5py.File open for writing
    state = read(f, path, size, schema)   # CheckpointError on anything damaged or missing

Only numeric datasets, fixed-length byte strings and JSON attributes: nothing is pickled. Every dataset carries
HDF5's Fletcher-32 checksum and every chunk's stored size is checked before HDF5 reads it; the root attribute
`attrs_sha256` is a SHA-256 of every other attribute (root and /strategy). Older schemas, read by rule:
1 no candidates.blocks (every network had the configured N) and no /iteration_sizes; 2 candidates.message typed
ASCII (the bytes are the same) and PNAS's `observed` a JSON attribute; 3 no candidates.rungs; 4 no candidates.host,
started, ended, and the columns in another order. A column an older file lacks takes its declared default
(run/candidates.DEFAULTS); the columns are matched by name.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..records import upgrade
from .candidates import DEFAULTS, candidate_dtype
from .state import Attr, SearchState, layout


class CheckpointError(Exception):
    """Both the checkpoint and its backup are unreadable, or the file is not a bqnn search."""


def attr(a: Any, name: str) -> Any:
    v = a[name]
    return v.decode() if isinstance(v, bytes) else v


def attrs_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute of the root (but this digest) and of /strategy, in name order."""
    h = hashlib.sha256()
    for where, attrs in (("/", f.attrs), ("/strategy", f["strategy"].attrs)):
        for name in sorted(attrs.keys()):
            if name != "attrs_sha256":
                h.update(f"{where}:{name}={attr(attrs, name)!r};".encode())
    return h.hexdigest()


def _stored(dtype: np.dtype) -> np.dtype:
    """A table's dtype as written: text columns tagged UTF-8, so HDF5 tools decode them as such (numpy sees the
    same bytes either way)."""
    return np.dtype([(n, h5py.string_dtype("utf-8", dtype[n].itemsize) if dtype[n].kind == "S" and n != "hash"
                      else dtype[n]) for n in dtype.names or ()])


def write(f: h5py.File, state: SearchState, schema: int, fmt: str, versions: dict[str, str]) -> None:
    a = f.attrs
    a["format"], a["schema_version"] = fmt, schema
    a["versions"] = json.dumps(versions, sort_keys=True)
    a["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.create_group("strategy")
    for name, where in layout():
        value = getattr(state, name)
        if isinstance(where, Attr):
            a[where.name] = value
        elif where.rows:
            f.create_dataset(where.path, data=value.astype(_stored(value.dtype)), maxshape=(None,), chunks=True,
                             fletcher32=True)
        else:
            f.create_dataset(where.path, data=value, fletcher32=True)  # HDF5 makes the groups on the way
    for name, arr in state.strategy_arrays.items():
        f.create_dataset(f"strategy/{name}", data=arr, fletcher32=True)
    for name, value in state.strategy_attrs.items():
        f["strategy"].attrs[name] = value
    a["attrs_sha256"] = attrs_digest(f)


def data(path: Path, file_size: int, d: h5py.Dataset) -> np.ndarray:
    """The dataset's values, once its chunks are known to be whole: HDF5 trusts a damaged chunk index, and its
    Fletcher-32 filter reads out of bounds on a chunk whose stored size is 0 (a segmentation fault, found by the
    checkpoint fuzz). bqnn writes every chunk unfiltered but for the checksum, so each is exactly the chunk's
    bytes plus 4, within the file."""
    if d.chunks is not None:
        whole = int(np.prod(d.chunks)) * d.dtype.itemsize + (4 if d.fletcher32 else 0)
        for i in range(d.id.get_num_chunks()):
            info = d.id.get_chunk_info(i)
            if info.size != whole or info.filter_mask != 0 or info.byte_offset + info.size > file_size:
                raise CheckpointError(f"{path}: dataset {d.name}: chunk {i} is damaged ({info.size} bytes stored at "
                                      f"{info.byte_offset}, {whole} expected)")
    return d[()]


def read(f: h5py.File, path: Path, size: int, schema: int) -> SearchState:
    """The state in `f` (of schema `schema`, at most this bqnn's); KeyError or CheckpointError when damaged."""
    a = f.attrs
    if schema >= 2 and "attrs_sha256" in a and attr(a, "attrs_sha256") != attrs_digest(f):  # none before the digest
        raise CheckpointError(f"{path}: its attributes do not match their checksum (the file is damaged)")
    kwargs: dict[str, Any] = {}
    for name, where in layout():
        if isinstance(where, Attr):
            if where.name in a or schema >= where.since:
                value = attr(a, where.name)  # KeyError when damaged
                kwargs[name] = value if isinstance(value, str) else value.item()
        elif where.path in f or schema >= where.since:
            kwargs[name] = data(path, size, f[where.path])
    s = f["strategy"]
    state = SearchState(**kwargs, strategy_arrays={k: data(path, size, s[k]) for k in s.keys()},
                        strategy_attrs={k: attr(s.attrs, k) for k in s.attrs.keys()})
    json.loads(state.config_json)
    state.candidates = _candidates(state, path)
    if schema < 3 and "observed" in state.strategy_attrs:  # PNAS: the positions were a JSON attribute
        state.strategy_arrays["observed"] = np.array(json.loads(state.strategy_attrs.pop("observed")), np.int64)
    return state


def _candidates(state: SearchState, path: Path) -> np.ndarray:
    """The candidate rows in this bqnn's layout: columns matched by name, the missing ones at their defaults."""
    want = candidate_dtype(state.max_index)
    rows = state.candidates
    if rows.dtype == want:
        return rows
    have = set(rows.dtype.names or ())
    if not have <= set(want.names or ()) or any(rows.dtype[n].shape != want[n].shape for n in have):
        raise CheckpointError(f"{path}: /candidates has an unexpected layout")
    defaults = dict(DEFAULTS)
    defaults["blocks"] = int(json.loads(state.config_json).get("network", {}).get("blocks_per_stage", 4))
    return upgrade(rows, want, defaults)
