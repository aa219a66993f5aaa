"""Atomic file replacement: the one way bqnn writes a file a crash must never tear.

Used by search checkpoints (run/checkpoint.py), final-training checkpoints and results (training/final.py)
and exported networks (nets/portable.py):

    with atomic_path(Path("DIR/search.h5"), backup=True, verify=read_back) as part:
        write_the_file(part)            # any writer that takes a path: h5py, torch.save, open()

The content is written to `NAME.part`, fsynced, checked by `verify` (if given: it reads the part back and
raises if it is not good), and renamed over `NAME`; the directory is fsynced. So `NAME` is always either
the old or the new, verified file. With `backup`, the old file becomes `NAME.bak` once the new one is in
place (a hard link taken before the rename, or a copy where links are not supported), so a file that later
proves unreadable has its predecessor beside it, and a failed write never touches `.bak`. If the writer, the
check or the rename fails, the part file is removed and `NAME` and `.bak` are left as they were. A leaf:
imports nothing of bqnn.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file or a directory; a filesystem that cannot sync a directory is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path, backup: bool = False, verify: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """Yield the part file's path to write to; on leaving the block, replace `path` with it."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    old = path.with_name(path.name + ".bak.tmp")  # the file being replaced, kept until the new one is in place
    part.unlink(missing_ok=True)
    try:
        yield part
        fsync_path(part)
        if verify is not None:
            verify(part)
        keep = backup and path.exists()
        if keep:
            old.unlink(missing_ok=True)
            try:
                os.link(path, old)  # cheap, and `path` never disappears
            except OSError:
                shutil.copy2(path, old)  # filesystems without hard links
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        old.unlink(missing_ok=True)
        raise
    if keep:
        os.replace(old, path.with_name(path.name + ".bak"))
    fsync_path(path.parent)


def write_bytes(path: Path, data: bytes) -> Path:
    """Replace `path` with `data`, atomically."""
    with atomic_path(path) as part:
        part.write_bytes(data)
    return Path(path)
