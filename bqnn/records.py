"""Typed records with a numpy layout: a dataclass whose fields say their dtype, written and read by field name.

Used for the one record of a candidate (training/result.py: what a trainer returns and where it ran;
run/candidates.py: the whole record rank 0 keeps), which the MPI wire, the candidate table and search.h5 all lay
out from the declaration, so a new field is one line:

    @dataclass
    class Result:
        status: Annotated[int, Col("i1")] = 0
        message: Annotated[str, Col("S256", text="tail")] = ""
        rungs: Annotated[tuple[float, ...], Col("f8", (8,), fill=-1.0)] = ()
        nsc: Annotated[np.ndarray, Col("i2", ("max_index", 5))] = EMPTY

    dtype(Result, max_index=23)      # the structured dtype, in declaration order
    put(row, result)                 # every field into a row of a structured array, by name
    get(Result, row)                 # the record back from a row (missing fields: their defaults)

Text is stored as UTF-8 bytes clipped to the field's size (keeping the head, or the tail for messages, where the
end of a traceback is the useful part); a tuple is padded with `fill` to the field's shape and read back up to
the first `fill`. A leaf: numpy only.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Col:
    """How a field is laid out: its numpy dtype, its shape (names in it are sizes given to `dtype`), and for text
    which end to keep, for a padded tuple the value that pads it."""

    dtype: str
    shape: tuple[int | str, ...] = ()
    text: str = "head"  # head | tail
    fill: float | None = None


@functools.cache
def columns(cls: Any) -> tuple[tuple[str, Col], ...]:
    """(name, Col) of every field of the record class `cls`, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        meta = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, Col)]
        if not meta:
            raise TypeError(f"{cls.__name__}.{f.name} has no Col(...) annotation")
        out.append((f.name, meta[0]))
    return tuple(out)


def dtype(cls: type, **sizes: int) -> np.dtype:
    """The structured dtype of record class `cls`; `sizes` name the symbolic dimensions of its shapes."""
    return np.dtype([(name, col.dtype, tuple(sizes[d] if isinstance(d, str) else d for d in col.shape))
                     for name, col in columns(cls)])


def clip(text: str, size: int, keep: str = "head") -> bytes:
    """UTF-8 bytes of `text` that fit `size`, keeping its head or its tail ("..." marks the cut), never splitting a
    character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= size:
        return data
    if keep == "tail":
        data = b"..." + data[-(size - 3):]
        return data.decode("utf-8", "ignore").encode("utf-8")[:size]
    return data[:size].decode("utf-8", "ignore").encode("utf-8")


def put(row: Any, record: Any) -> None:
    """Write every field of `record` into `row` (a row of a structured array with the record's dtype)."""
    cls: Any = type(record)
    for name, col in columns(cls):
        value = getattr(record, name)
        if isinstance(value, str):
            value = clip(value, np.dtype(col.dtype).itemsize, col.text)
        elif col.fill is not None:
            padded = np.full(row[name].shape, col.fill, dtype=col.dtype)
            given = np.asarray(value, dtype=col.dtype)
            padded[: len(given)] = given
            value = padded
        row[name] = value


def get(cls: type, row: Any) -> Any:
    """The record of class `cls` in `row`; a field the row lacks (an older layout) takes its default."""
    names = row.dtype.names or ()
    kwargs: dict[str, Any] = {}
    for name, col in columns(cls):
        if name not in names:
            continue
        value = row[name]
        if isinstance(value, bytes):
            kwargs[name] = value.decode("utf-8", "replace")
        elif col.fill is not None:
            v = np.asarray(value).tolist()
            kwargs[name] = tuple(v[: v.index(col.fill)] if col.fill in v else v)
        elif col.shape:
            kwargs[name] = np.array(value)
        else:
            kwargs[name] = value.item() if hasattr(value, "item") else value
    return cls(**kwargs)


def fields_of(cls: type, record: Any) -> dict[str, Any]:
    """The values of `cls`'s fields in `record` (a record of `cls` or of a record class that extends it)."""
    return {name: getattr(record, name) for name, _ in columns(cls)}


def upgrade(rows: np.ndarray, target: np.dtype, defaults: dict[str, Any]) -> np.ndarray:
    """`rows` of an older layout in `target`'s: every column copied by name, a column it lacks set to its default
    (`defaults[name]`, else zeros)."""
    out = np.zeros(len(rows), target)
    have = set(rows.dtype.names or ())
    for name in target.names or ():
        if name in have:
            out[name] = rows[name]
        elif name in defaults:
            out[name] = defaults[name]
    return out
