"""The seal of a search file: a SHA-256 of its HDF5 data in a 512-byte user block before it, checked in Python
before HDF5 parses a byte.

Used by run/checkpoint.py (`seal` after each write, `seal_problem` before each read) and by anyone who edits a
search.h5 on purpose with h5py (`seal(path)` makes it whole again). HDF5 skips a user block, so h5dump and h5py
read a sealed file as usual. Why: HDF5 trusts its own metadata, and the checkpoint fuzz found damage that crashes
the process inside HDF5 rather than failing (docs/state.md). Files without a user block (written before schema 4)
pass, to be read by HDF5 as before. No torch, no MPI, no h5py.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

USERBLOCK = 512  # bytes before the HDF5 data: SEAL, the SHA-256 of the rest in hex, a newline, zeros
SEAL = b"bqnn-search sha256 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def digest(path: Path) -> str:
    """SHA-256 (hex) of the file's bytes after the user block."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(USERBLOCK)
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def seal(path: str | Path) -> None:
    """Write the SHA-256 of the HDF5 data into the file's user block: after a file is written, and after a
    deliberate edit with h5py (which would otherwise read as damage)."""
    header = (SEAL + digest(Path(path)).encode() + b"\n").ljust(USERBLOCK, b"\0")
    with open(path, "r+b") as f:
        f.write(header)


def seal_problem(path: Path) -> str | None:
    """What is wrong with the file's seal, as the end of a sentence that starts with its path (None: the bytes are
    those it was sealed with, or it has no user block)."""
    with open(path, "rb") as f:
        head = f.read(USERBLOCK)
    if head.startswith(HDF5_SIGNATURE):
        return None
    if not head.startswith(SEAL):
        return " is not a bqnn search file (or its first bytes are damaged)"
    stored = head[len(SEAL): len(SEAL) + 64].decode("ascii", "replace")
    if stored != digest(path):
        return ": its contents do not match their checksum (the file is damaged or truncated)"
    return None
