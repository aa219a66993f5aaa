"""The search state in one HDF5 file, `DIR/search.h5`, written atomically.

Used as a library by rank 0's loop (run/master.py) and by `python -m bqnn.report DIR`; readable
with `h5dump -H DIR/search.h5`. What the file holds, field by field, is the SearchState record (run/state.py);
how it lies in HDF5, and the rules that read earlier schemas, run/h5state.py; this module owns the file.

Integrity: the file begins with a 512-byte HDF5 user block (which HDF5 skips) holding a SHA-256 of every byte
after it, checked in Python before HDF5 parses anything (run/seal.py): HDF5 trusts its own metadata, and some
damage makes it crash the process rather than fail (found by fuzzing). A file edited on purpose (h5py) is accepted
again after `seal(path)`. Files without the user block (written before schema 4) are read as they are.
`save` writes `search.h5.part`, fsyncs it, reads it back, then renames it over `search.h5` and keeps the
file it replaced as `search.h5.bak` (bqnn/atomic.py), so `search.h5` always exists, is never torn, and
`.bak` changes only once the new file is in place. `load` falls back to the `.bak` with a warning when
`search.h5` is unreadable or fails the caller's check (run/invariants.py: what a resumable state must
hold), and raises `CheckpointError`, naming both files and what is wrong, when both do; a file written by a newer
bqnn is refused, never fallen back from. A failed load changes neither file; a failed save is one
`CheckpointWriteError` line.
"""
from __future__ import annotations

import functools
import json
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ..atomic import BackupError, atomic_path, pinned
from . import h5state
from .candidates import candidate_dtype  # noqa: F401  (the table's layout, for readers of the file)
from .h5state import CheckpointError, attr
from .h5state import attrs_digest as _attrs_digest  # noqa: F401  (tests seal edited files with it)
from .seal import HDF5_SIGNATURE, SEAL, USERBLOCK, seal, seal_problem  # noqa: F401  (SEAL, HDF5_SIGNATURE: the layout)
from .state import SearchState, arrays

FORMAT = "bqnn-search"
# 2: candidates.blocks, /iteration_sizes; 3: candidates.message is a UTF-8 string in HDF5's type (it was ASCII's),
# PNAS's `observed` an int64 dataset (it was a JSON attribute); 4: candidates.rungs (the accuracy at each pruning
# rung, -1 where not reached); 5: candidates.host, started, ended (where and when each was trained), the columns in
# the record's declaration order. Files of schema 1 to 4 are read and upgraded (run/h5state.py).
SCHEMA_VERSION = 5
FILENAME = "search.h5"


class NewerFileError(CheckpointError):
    """A file of the search was written by a newer bqnn (a schema this one cannot read). Not damage: nothing falls
    back from it and nothing overwrites it."""


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
                h5state.write(f, state, SCHEMA_VERSION, FORMAT, versions())
            seal(part)
    except BackupError as e:
        raise CheckpointWriteError(f"cannot write {e.filename}: {e.strerror} ({main} itself was written)") from None
    except (OSError, RuntimeError, CheckpointError) as e:  # h5py reports a full disk as either
        raise CheckpointWriteError(f"cannot write {main}: {_reason(e)}") from None
    return main


def _size(state: SearchState) -> int:
    """Bytes the file of `state` will take, with room to spare (HDF5's headers, chunks, checksums)."""
    text = len(state.config_json) + sum(len(str(v)) for v in state.strategy_attrs.values())
    return int(1.3 * (sum(a.nbytes for a in arrays(state)) + text)) + (256 << 10)


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


def _check_seal(path: Path) -> None:
    problem = seal_problem(path)
    if problem:
        raise CheckpointError(f"{path}{problem}")


def read(path: str | Path) -> SearchState:
    """Read one file; any problem raises CheckpointError naming the file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        _check_seal(p)
        with h5py.File(p, "r") as f:
            if attr(f.attrs, "format") != FORMAT:
                raise CheckpointError(f"{p} is not a bqnn search file")
            schema = int(f.attrs["schema_version"])
            if schema > SCHEMA_VERSION:
                raise NewerFileError(_newer_message(p, f))
            return h5state.read(f, p, size, schema)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{p} does not exist") from None
    except Exception as e:  # h5py raises OSError/KeyError/ValueError on torn or foreign files
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{p} is unreadable ({type(e).__name__}: {first})") from None


def _newer_message(path: Path, f: h5py.File) -> str:
    try:
        wrote = json.loads(attr(f.attrs, "versions")).get("bqnn", "unknown")
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
            if attr(f.attrs, "format") == FORMAT and int(f.attrs["schema_version"]) > SCHEMA_VERSION:
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
