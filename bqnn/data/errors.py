"""The one error every data reader raises: a missing or malformed dataset, with a message naming the file.

Used as a library by data/ and by the entry points, which turn it into one line and exit 2. No torch.
"""
from __future__ import annotations


class DataError(Exception):
    """A missing or malformed dataset; the message names the file and the problem."""


def describe(e: BaseException) -> str:
    """An exception from a library (zlib, pickle, numpy) as 'Type: text' on one line, for a DataError."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
