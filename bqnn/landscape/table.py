"""The landscape table: every distinct block of a small space trained for real with several seeds, one HDF5 file
(docs/landscape.md). numpy and h5py only.

Used by the table trainer (training/table.py: `trainer.kind = "table"`), by its builder (results/landscape.py,
`python bench/landscape.py build`) and by the benches that read real accuracies from it:

    table = Table.read("bench/data/landscape.h5")   # TableError, one line, if missing, damaged or not a table
    row = table.row(block_hash)                       # index of the block, or None if the space lacks it
    table.accuracy[row, s], table.curve[row, s, :], table.seconds[row, s]

Layout: root attributes `format` ("bqnn-landscape"), `version`, `recipe` (the exhaustive searches' config as JSON,
`search.seed` set to 0), `seeds` (JSON list of the search seeds, one column each), `epochs`, `versions` and
`machine` (JSON: what trained it), `built` (ISO time), `command` (what built it), `contents_sha256` (of every
dataset's bytes, in name order); datasets, one row per distinct block in ascending canonical-hash order:

    hash      S16 [B]          canonical hash (blocks/canon.py)
    nsc       int8 [B, M, 5]   the code (M = space.max_index rows, zero-padded)
    params, flops  int64 [B]   of the whole network of the recipe; density float64 [B]
    status    int8 [B, S]      training.result.Status of that seed's training; -1: not trained (yet)
    accuracy  float32 [B, S]   final validation accuracy, percent (NaN unless status is OK)
    curve     float32 [B, S, E] validation accuracy after each epoch (NaN where not reached)
    seconds   float32 [B, S]   training seconds, the validation after each epoch included
    restarts  int8 [B, S]      restarts after an epoch-1 accuracy at chance
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ..blocks.code import NSC_WIDTH

FORMAT = "bqnn-landscape"
VERSION = 1
NOT_TRAINED = -1
DATASETS = ("hash", "nsc", "params", "flops", "density", "status", "accuracy", "curve", "seconds", "restarts")
MAX_BYTES = 256 << 20  # a table of a small space is a few MB; a larger file is not one


class TableError(Exception):
    """The table cannot be used: missing, damaged, not a table, or not this search's; the message names it."""


@dataclass
class Table:
    recipe: str  # config JSON
    seeds: list[int]
    hash: np.ndarray
    nsc: np.ndarray
    params: np.ndarray
    flops: np.ndarray
    density: np.ndarray
    status: np.ndarray
    accuracy: np.ndarray
    curve: np.ndarray
    seconds: np.ndarray
    restarts: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)  # versions, machine, built, command
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rows = {h.decode(): i for i, h in enumerate(self.hash.tolist())}

    @property
    def epochs(self) -> int:
        return int(self.curve.shape[2])

    @property
    def max_index(self) -> int:
        return int(self.nsc.shape[1])

    def row(self, block_hash: str) -> int | None:
        return self._rows.get(block_hash)

    def trained(self) -> np.ndarray:
        """[B, S] True where that seed's training is in the table (any status)."""
        return self.status != NOT_TRAINED

    def pick(self, row: int, seed: int) -> int | None:
        """The seed column whose training answers a candidate of this block with training seed `seed` (the table
        trainer's rule: `seed` mod the number of its recorded trainings); None if the block has none yet."""
        trained = np.nonzero(self.status[row] != NOT_TRAINED)[0]
        return int(trained[seed % len(trained)]) if len(trained) else None

    def mean_accuracy(self) -> np.ndarray:
        """[B] each block's mean final accuracy over its successful seeds (NaN where none)."""
        ok = np.where(self.status == 0, self.accuracy, np.nan)
        with np.errstate(invalid="ignore"):
            return np.nanmean(ok, axis=1) if ok.shape[1] else np.full(len(ok), np.nan)

    def write(self, path: str | Path) -> None:
        """Write the table to `path` (atomically: the file is either the old or the new one)."""
        with atomic_path(Path(path)) as part:
            with h5py.File(part, "w") as f:
                a = f.attrs
                a["format"], a["version"], a["recipe"] = FORMAT, VERSION, self.recipe
                a["seeds"], a["epochs"] = json.dumps(self.seeds), self.epochs
                for k, v in self.attrs.items():
                    a[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                for name in DATASETS:
                    f.create_dataset(name, data=getattr(self, name), compression="gzip", compression_opts=9,
                                     shuffle=True, fletcher32=True)
                a["contents_sha256"] = _contents_digest(f)

    @classmethod
    def read(cls, path: str | Path) -> Table:
        p = Path(path)
        try:
            if not p.is_file():
                raise TableError(f"landscape table {p} does not exist" if not p.exists() else
                                 f"landscape table {p} is not a file")
            if p.stat().st_size > MAX_BYTES:
                raise TableError(f"landscape table {p} is {p.stat().st_size:,} bytes, more than a table can be")
            with h5py.File(p, "r") as f:
                a = f.attrs
                if _text(a.get("format", "")) != FORMAT:
                    raise TableError(f"{p} is not a bqnn landscape table")
                if int(a["version"]) > VERSION:
                    raise TableError(f"landscape table {p} has version {int(a['version'])}, newer than this bqnn "
                                     f"reads ({VERSION})")
                if _text(a.get("contents_sha256", "")) != _contents_digest(f):
                    raise TableError(f"landscape table {p}: its contents do not match their checksum (damaged)")
                data = {name: f[name][()] for name in DATASETS}
                extra = {k: _text(a[k]) for k in ("versions", "machine", "built", "command") if k in a}
                table = cls(recipe=_text(a["recipe"]), seeds=[int(s) for s in json.loads(_text(a["seeds"]))],
                            attrs=extra, **data)
        except TableError:
            raise
        except Exception as e:  # h5py raises OSError, KeyError, ValueError on damaged or foreign files
            first = str(e).splitlines()[0] if str(e) else ""
            raise TableError(f"landscape table {p} is unreadable ({type(e).__name__}: {first})") from None
        problem = table.shape_problem()
        if problem:
            raise TableError(f"landscape table {p}: {problem}")
        return table

    def shape_problem(self) -> str | None:
        """What is inconsistent in the arrays' shapes and values, or None."""
        b, s = len(self.hash), len(self.seeds)
        want = {"nsc": (b, self.max_index, NSC_WIDTH), "params": (b,), "flops": (b,), "density": (b,), "status": (b, s),
                "accuracy": (b, s), "curve": (b, s, self.epochs), "seconds": (b, s), "restarts": (b, s)}
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                return f"{name} has shape {getattr(self, name).shape}, expected {shape}"
        if len(set(self.hash.tolist())) != b or list(self.hash) != sorted(self.hash):
            return "block hashes are not distinct and ascending"
        if len(set(self.seeds)) != s:
            return f"seeds {self.seeds} repeat"
        ok = self.status == 0
        acc, curve = self.accuracy[ok], self.curve[ok]
        if not (np.isfinite(acc).all() and ((acc >= 0) & (acc <= 100)).all()):
            return "an accuracy of a successful training is not a percentage"
        if len(curve) and not np.array_equal(curve[:, -1], acc):
            return "a curve does not end at its training's accuracy"
        if not (np.isfinite(self.seconds[self.trained()]).all() and (self.seconds[self.trained()] >= 0).all()):
            return "a training time is negative or not finite"
        return None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _contents_digest(f: h5py.File) -> str:
    h = hashlib.sha256()
    for name in DATASETS:
        if name in f:
            arr = np.ascontiguousarray(f[name][()])
            h.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()
