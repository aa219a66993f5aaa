"""The search state in one HDF5 file, `DIR/search.h5`, written atomically.

Used as a library by rank 0's loop (run/master.py) and by `python -m bqnn.report DIR`; readable
with `h5dump -H DIR/search.h5`. Layout (docs/hdf5.md):

    /                 attrs: format, schema_version, config (JSON), versions (JSON),
                      strategy, max_index, iteration (next to run), iterations_total, next_id,
                      elapsed and master_cpu (seconds, all runs), runs, updated (ISO time), world_size
    /candidates       one row per candidate, compound dtype `candidate_dtype` (resizable)
    /cache            hash (S16), id: the candidate whose result answers each block hash
    /inflight         id, iteration, nsc, epsilon: proposed and not finished at save time
    /strategy         the strategy's arrays (Q-table, replay memory, ...); attrs: RNG states (JSON), ...
    /utilization      rank, busy, idle (seconds) per worker rank
    /iteration_sizes  candidates proposed in each iteration so far (PNAS rounds differ in size)

Only numeric datasets, fixed-length byte strings and JSON attributes: nothing is pickled.
Integrity: the file begins with a 512-byte HDF5 user block (which HDF5 skips) holding a SHA-256 of every byte
after it, checked in Python before HDF5 parses anything: HDF5 trusts its own metadata, and some damage makes it
crash the process rather than fail (found by fuzzing). Inside, every dataset carries HDF5's Fletcher-32
checksum and the root attribute `attrs_sha256` is a SHA-256 of every other attribute (root and /strategy),
so a flipped bit is detected on reading, not resumed. A file edited on purpose (h5py) is accepted again after
`seal(path)`. Files without the user block (written before schema 4) are read as they are.
`save` writes `search.h5.part`, fsyncs it, reads it back, then renames it over `search.h5` and keeps the
file it replaced as `search.h5.bak` (bqnn/atomic.py), so `search.h5` always exists, is never torn, and
`.bak` changes only once the new file is in place. `load` falls back to the `.bak` with a warning when
`search.h5` is unreadable or fails the caller's check (run/invariants.py: what a resumable state must
hold), and raises `CheckpointError`, naming both files and what is wrong, when both do. A failed load
changes neither file; a failed save is one `CheckpointWriteError` line.
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import BackupError, atomic_path, pinned
from .candidates import candidate_dtype
from .seal import HDF5_SIGNATURE, SEAL, USERBLOCK, seal, seal_problem  # noqa: F401  (SEAL, HDF5_SIGNATURE: the layout)

FORMAT = "bqnn-search"
# 2: candidates.blocks, /iteration_sizes; 3: candidates.message is a UTF-8 string in HDF5's type (it was ASCII's),
# PNAS's `observed` an int64 dataset (it was a JSON attribute); 4: candidates.rungs (the accuracy at each pruning
# rung, -1 where not reached). Files of schema 1 to 3 are read and upgraded.
SCHEMA_VERSION = 4
FILENAME = "search.h5"


class CheckpointError(Exception):
    """Both the checkpoint and its backup are unreadable, or the file is not a bqnn search."""


class NewerFileError(CheckpointError):
    """A file of the search was written by a newer bqnn (a schema this one cannot read). Not damage: nothing falls
    back from it and nothing overwrites it."""


@dataclass
class SearchState:
    config_json: str
    max_index: int
    strategy: str
    iteration: int = 0  # next iteration to run (all earlier ones are complete)
    iterations_total: int = 0
    next_id: int = 0
    elapsed: float = 0.0
    master_cpu: float = 0.0  # CPU seconds used by rank 0 itself (all runs)
    runs: int = 0
    world_size: int = 1
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0))  # rows of candidate_dtype (__post_init__)
    cache_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, "S16"))
    cache_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inflight_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inflight_iteration: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    inflight_epsilon: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    inflight_nsc: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 5), np.int16))
    strategy_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    strategy_attrs: dict[str, Any] = field(default_factory=dict)
    util_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    util_busy: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    util_idle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    iteration_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # candidates per iteration

    def __post_init__(self) -> None:  # empty tables get the layout that max_index gives them
        if self.candidates.dtype.names is None and not len(self.candidates):
            self.candidates = np.zeros(0, candidate_dtype(self.max_index))
        if not len(self.inflight_nsc) and self.inflight_nsc.shape[1] != self.max_index:
            self.inflight_nsc = np.zeros((0, self.max_index, 5), np.int16)


@functools.cache
def versions() -> dict[str, str]:
    """Versions of what wrote the file; read from the installed packages' metadata (so rank 0 imports no torch),
    once per process."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__,
           "hdf5": h5py.version.hdf5_version}
    for package in ("bqnn", "mpi4py", "torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            if package == "bqnn":
                out[package] = "source"
    return out


class CheckpointWriteError(Exception):
    """search.h5 could not be written (full disk, read-only, immutable file, quota); the message names the
    path and the reason. The previous search.h5 and its .bak are intact."""


def check_replaceable(directory: str | Path) -> None:
    """Before any training: CheckpointWriteError if search.h5 or its .bak carries an inode flag that makes every
    save fail (`chattr +i` or `+a`); a read-only or full directory is found by the lock and by `save`."""
    d = Path(directory)
    for p in (d / FILENAME, d / (FILENAME + ".bak")):
        flag = pinned(p)
        if flag:
            undo = "-i" if flag == "immutable" else "-a"
            raise CheckpointWriteError(f"cannot write {p}: the file is {flag} (chattr {undo} {p} lets bqnn replace it)")


def save(directory: str | Path, state: SearchState, backup: bool = True) -> Path:
    """Write the state atomically, read it back, and only then replace search.h5; the previous file becomes
    search.h5.bak (unless `backup` is off: the previous file is known to be bad)."""
    d = Path(directory)
    main = d / FILENAME
    try:
        d.mkdir(parents=True, exist_ok=True)
        # HDF5 fails badly when the disk fills mid-write (and may crash the interpreter at exit): look first
        need, free = _size(state), shutil.disk_usage(d).free
        if free < need:
            raise CheckpointWriteError(f"cannot write {main}: No space left on device ({free:,} bytes free, about "
                                       f"{need:,} needed)")
        with atomic_path(main, backup=backup, verify=read) as part:
            with h5py.File(part, "w", libver="earliest", userblock_size=USERBLOCK) as f:
                _write(f, state)
            seal(part)
    except BackupError as e:
        raise CheckpointWriteError(f"cannot write {e.filename}: {e.strerror} ({main} itself was written)") from None
    except (OSError, RuntimeError, CheckpointError) as e:  # h5py reports a full disk as either
        raise CheckpointWriteError(f"cannot write {main}: {_reason(e)}") from None
    return main


def _size(state: SearchState) -> int:
    """Bytes the file of `state` will take, with room to spare (HDF5's headers, chunks, checksums)."""
    arrays = [state.candidates, state.cache_hash, state.cache_id, state.inflight_id, state.inflight_iteration,
              state.inflight_epsilon, state.inflight_nsc, state.util_rank, state.util_busy, state.util_idle,
              state.iteration_sizes, *state.strategy_arrays.values()]
    text = len(state.config_json) + sum(len(str(v)) for v in state.strategy_attrs.values())
    return int(1.3 * (sum(a.nbytes for a in arrays) + text)) + (256 << 10)


def space(directory: str | Path, state: SearchState, candidates: int) -> tuple[int, int]:
    """(bytes free in `directory`, bytes the checkpoints of a search like `state` will need once it holds
    `candidates` candidates): three files at once while one is written (search.h5, .bak, the part)."""
    d = Path(directory)
    per_row = state.candidates.dtype.itemsize
    final = _size(state) + int(1.3 * per_row * max(0, candidates - len(state.candidates)))
    return shutil.disk_usage(d if d.exists() else d.parent).free, 3 * final


def _reason(e: BaseException) -> str:
    """The OS's words for a failure; h5py's message is several lines, the OS's words are in one of them."""
    if isinstance(e, OSError) and e.strerror and "\n" not in e.strerror and len(e.strerror) < 80:
        return e.strerror
    text = str(e)
    for words in ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded",
                  "Operation not permitted"):
        if words in text:
            return words
    return text.splitlines()[0] if text else type(e).__name__


def _attrs_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute of the root (but this digest) and of /strategy, in name order."""
    h = hashlib.sha256()
    for where, attrs in (("/", f.attrs), ("/strategy", f["strategy"].attrs)):
        for name in sorted(attrs.keys()):
            if name != "attrs_sha256":
                h.update(f"{where}:{name}={_attr(attrs, name)!r};".encode())
    return h.hexdigest()


def _write(f: h5py.File, state: SearchState) -> None:
    a = f.attrs
    a["format"] = FORMAT
    a["schema_version"] = SCHEMA_VERSION
    a["config"] = state.config_json
    a["versions"] = json.dumps(versions(), sort_keys=True)
    a["strategy"] = state.strategy
    a["max_index"] = state.max_index
    a["iteration"] = state.iteration
    a["iterations_total"] = state.iterations_total
    a["next_id"] = state.next_id
    a["elapsed"] = state.elapsed
    a["master_cpu"] = state.master_cpu
    a["runs"] = state.runs
    a["world_size"] = state.world_size
    a["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.create_dataset("candidates", data=state.candidates.astype(_stored(state.candidates.dtype)), maxshape=(None,),
                     chunks=True, fletcher32=True)
    datasets = {"cache/hash": state.cache_hash, "cache/id": state.cache_id, "inflight/id": state.inflight_id,
                "inflight/iteration": state.inflight_iteration, "inflight/epsilon": state.inflight_epsilon,
                "inflight/nsc": state.inflight_nsc, "utilization/rank": state.util_rank,
                "utilization/busy": state.util_busy, "utilization/idle": state.util_idle,
                "iteration_sizes": state.iteration_sizes,
                **{f"strategy/{name}": arr for name, arr in state.strategy_arrays.items()}}
    f.create_group("strategy")
    for name, arr in datasets.items():
        f.create_dataset(name, data=arr, fletcher32=True)  # HDF5 makes the groups on the way
    for name, value in state.strategy_attrs.items():
        f["strategy"].attrs[name] = value
    a["attrs_sha256"] = _attrs_digest(f)


def _stored(dtype: np.dtype) -> np.dtype:
    """The candidates' dtype as written: `message` tagged UTF-8, so HDF5 tools decode it as such (numpy sees the
    same bytes either way)."""
    fields = [(n, h5py.string_dtype("utf-8", dtype[n].itemsize) if n == "message" else dtype[n])
              for n in dtype.names or ()]
    return np.dtype(fields)


def _attr(a: Any, name: str) -> Any:
    v = a[name]
    return v.decode() if isinstance(v, bytes) else v


def _check_seal(path: Path) -> None:
    problem = seal_problem(path)
    if problem:
        raise CheckpointError(f"{path}{problem}")


def _data(path: Path, file_size: int, d: h5py.Dataset) -> np.ndarray:
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


def read(path: str | Path) -> SearchState:
    """Read one file; any problem raises CheckpointError naming the file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        _check_seal(p)
        with h5py.File(p, "r") as f:
            a = f.attrs
            if _attr(a, "format") != FORMAT:
                raise CheckpointError(f"{p} is not a bqnn search file")
            if int(a["schema_version"]) > SCHEMA_VERSION:
                raise NewerFileError(_newer_message(p, f))
            if int(a["schema_version"]) >= 2 and "attrs_sha256" in a and \
                    _attr(a, "attrs_sha256") != _attrs_digest(f):  # files written before the digest have none
                raise CheckpointError(f"{p}: its attributes do not match their checksum (the file is damaged)")
            max_index = int(a["max_index"])
            version = int(a["schema_version"])
            s = f["strategy"]
            state = SearchState(
                config_json=str(_attr(a, "config")),
                max_index=max_index,
                strategy=str(_attr(a, "strategy")),
                iteration=int(a["iteration"]),
                iterations_total=int(a["iterations_total"]),
                next_id=int(a["next_id"]),
                elapsed=float(a["elapsed"]),
                master_cpu=float(a.get("master_cpu", 0.0)),
                runs=int(a["runs"]),
                world_size=int(a["world_size"]),
                candidates=_data(p, size, f["candidates"]),
                cache_hash=_data(p, size, f["cache/hash"]),
                cache_id=_data(p, size, f["cache/id"]),
                inflight_id=_data(p, size, f["inflight/id"]),
                inflight_iteration=_data(p, size, f["inflight/iteration"]),
                inflight_epsilon=_data(p, size, f["inflight/epsilon"]),
                inflight_nsc=_data(p, size, f["inflight/nsc"]),
                strategy_arrays={k: _data(p, size, s[k]) for k in s.keys()},
                strategy_attrs={k: _attr(s.attrs, k) for k in s.attrs.keys()},
                util_rank=_data(p, size, f["utilization/rank"]),
                util_busy=_data(p, size, f["utilization/busy"]),
                util_idle=_data(p, size, f["utilization/idle"]),
                iteration_sizes=(_data(p, size, f["iteration_sizes"]) if "iteration_sizes" in f
                                 else np.zeros(0, np.int64)),
            )
            if version < 4:
                state.candidates = _upgrade(state.candidates, max_index, json.loads(state.config_json))
            if version < 3 and "observed" in state.strategy_attrs:  # PNAS: the positions were a JSON attribute
                state.strategy_arrays["observed"] = np.array(json.loads(state.strategy_attrs.pop("observed")),
                                                             np.int64)
            json.loads(state.config_json)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{p} does not exist") from None
    except Exception as e:  # h5py raises OSError/KeyError/ValueError on torn or foreign files
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{p} is unreadable ({type(e).__name__}: {first})") from None
    if state.candidates.dtype != candidate_dtype(max_index):
        raise CheckpointError(f"{p}: /candidates has an unexpected layout")
    return state


def _upgrade(rows: np.ndarray, max_index: int, config: dict) -> np.ndarray:
    """The candidates of an older schema in today's layout: schema 1 had no `blocks` column (every network had the
    configured N), schemas 1-3 no `rungs` (nothing was pruned: no rung reached)."""
    out = np.zeros(len(rows), candidate_dtype(max_index))
    have = set(rows.dtype.names or ())
    for name in have & set(out.dtype.names or ()):
        out[name] = rows[name]
    if "blocks" not in have:
        out["blocks"] = int(config.get("network", {}).get("blocks_per_stage", 4))
    if "rungs" not in have:
        out["rungs"] = -1.0  # run/pruning.NOT_REACHED
    return out


def _newer_message(path: Path, f: h5py.File) -> str:
    try:
        wrote = json.loads(_attr(f.attrs, "versions")).get("bqnn", "unknown")
    except Exception:  # the version is a courtesy: the schema alone decides
        wrote = "unknown"
    return (f"{path} has schema {int(f.attrs['schema_version'])}, written by bqnn {wrote}; this bqnn "
            f"({versions()['bqnn']}) "
            f"reads schemas up to {SCHEMA_VERSION}: use the newer bqnn (both files are left as they are)")


def newer(path: Path) -> str | None:
    """Why `path` is a search file of a newer schema than this bqnn reads, or None (it is not, or it does not exist,
    or it is damaged: damage is for `read` to find)."""
    try:
        _check_seal(path)
        with h5py.File(path, "r") as f:
            if _attr(f.attrs, "format") == FORMAT and int(f.attrs["schema_version"]) > SCHEMA_VERSION:
                return _newer_message(path, f)
    except Exception:
        return None
    return None


def discard(directory: str | Path) -> None:
    """Remove a search's files: only for a new search that trained nothing (its first checkpoint, written before
    any training, must not make a corrected rerun a resume)."""
    d = Path(directory)
    for name in (FILENAME, FILENAME + ".bak"):
        (d / name).unlink(missing_ok=True)


def exists(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / FILENAME).exists() or (d / (FILENAME + ".bak")).exists()


def _read_checked(path: Path, check: Callable[[SearchState], None] | None) -> SearchState:
    state = read(path)
    if check is not None:
        try:
            check(state)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
    return state


def load(directory: str | Path,
         check: Callable[[SearchState], None] | None = None) -> tuple[SearchState, Path, str | None]:
    """(state, file used, warning or None). A file that cannot be read, or fails `check` (which raises
    CheckpointError), gives way to search.h5.bak; CheckpointError if both fail. Neither file is changed."""
    d = Path(directory)
    main, bak = d / FILENAME, d / (FILENAME + ".bak")
    for p in (main, bak):  # a newer bqnn wrote here: neither file is damaged, and neither may be replaced
        why = newer(p)
        if why:
            raise NewerFileError(why)
    try:
        return _read_checked(main, check), main, None
    except CheckpointError as e1:
        if not bak.exists():
            raise CheckpointError(f"{e1}; no {bak.name} to fall back to") from None
        try:
            state = _read_checked(bak, check)
        except CheckpointError as e2:
            raise CheckpointError(f"{e1}; and {e2}") from None
        return state, bak, (f"warning: {e1}; resuming from {bak.name} ({state.iteration} of "
                            f"{state.iterations_total} iterations complete)")
