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

import fcntl
import os
import shutil
import sys
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


class BackupError(OSError):
    """The new file is in place, but the old one could not become NAME.bak (which is left as it was)."""


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
        bak = path.with_name(path.name + ".bak")
        try:
            os.replace(old, bak)
        except OSError as e:  # `path` is the new, verified file; the backup stays the older one
            old.unlink(missing_ok=True)
            raise BackupError(e.errno, e.strerror, str(bak)) from None
    fsync_path(path.parent)


# Linux inode flags (FS_IOC_GETFLAGS): a file with either can be neither renamed over nor linked, even by root.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL, _FS_APPEND_FL = 0x10, 0x20


def pinned(path: Path) -> str | None:
    """'immutable' or 'append-only' when `path` carries that inode flag (`chattr +i` / `+a`), so that
    replacing it will fail; None otherwise, or where the filesystem keeps no such flags."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
    except OSError:  # not supported by this filesystem (tmpfs, NFS, ...)
        return None
    finally:
        os.close(fd)
    flags = int.from_bytes(buf[:4], sys.byteorder)
    return "immutable" if flags & _FS_IMMUTABLE_FL else "append-only" if flags & _FS_APPEND_FL else None


def write_bytes(path: Path, data: bytes) -> Path:
    """Replace `path` with `data`, atomically."""
    with atomic_path(path) as part:
        part.write_bytes(data)
    return Path(path)
