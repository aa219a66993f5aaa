"""Network Structure Codes (NSC): the block encoding of BlockQNN (CVPR 2018, Table 1).

Used as a library; from the shell, a code is inspected with

    python -m bqnn.describe "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]"

A block is a tuple of `Layer` rows ``(index, type, kernel, pred1, pred2)``:

    type  op              kernels   predecessors
    1     convolution     1, 3, 5   pred1
    2     max pooling     1, 3      pred1
    3     average pooling 1, 3      pred1
    4     identity        0         pred1
    5     elemental add   0         pred1, pred2 (distinct)
    6     concat          0         pred1, pred2 (distinct)
    7     terminal        0         none (0, 0); always the last row

and, for the separate-components space (`space.layers = "separate"`; CVPR Fig. 9, AAAI Fig. 3), the
three parts of the convolution layer above as layer types of their own:

    8     ReLU              0         pred1
    9     batch norm        0         pred1
    10    plain convolution 1, 3, 5   pred1 (stride 1, same padding, with a bias; no ReLU, no BN)

Every code of types 1..10 is valid; a search space (`blocks.space`) decides which types it proposes.

Row i has index i (1-based). Layer 1 reads the block input, written pred1 = 0;
every later layer reads earlier layers, 1 <= pred < index. Layers without a
successor are concatenated into the block output. The largest index, terminal
included, is `max_index` (23 in the paper).

Two forms here: the text form exactly as the paper prints it, and a fixed-shape integer array
(max_index x 5, zero padded) for MPI messages and HDF5. The block as a DAG is `blocks.graph`, its
canonical hash (equal for codes of the same DAG) `blocks.canon`. numpy only.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from ..config import MAX_INDEX

ARRAY_DTYPE = np.int16
NSC_WIDTH = 5  # the fields of a row: (layer index, type, kernel size, pred1, pred2)


class Op(IntEnum):
    CONV = 1
    MAX_POOL = 2
    AVG_POOL = 3
    IDENTITY = 4
    ADD = 5
    CONCAT = 6
    TERMINAL = 7
    RELU = 8
    BATCH_NORM = 9
    PLAIN_CONV = 10


@dataclass(frozen=True)
class OpSpec:
    """One row of Table 1: what an op type accepts."""

    name: str
    short: str  # label used in drawings and describe output
    kernels: tuple[int, ...]
    arity: int  # number of predecessors: 1, 2, or 0 (terminal)


# The one op table. Builders (nets/ops.py) and cost formulas (blocks/cost.py) are keyed by Op.
OPS: dict[Op, OpSpec] = {
    Op.CONV: OpSpec("convolution", "Conv", (1, 3, 5), 1),
    Op.MAX_POOL: OpSpec("max pooling", "MaxP", (1, 3), 1),
    Op.AVG_POOL: OpSpec("average pooling", "AvgP", (1, 3), 1),
    Op.IDENTITY: OpSpec("identity", "Identity", (0,), 1),
    Op.ADD: OpSpec("elemental add", "Add", (0,), 2),
    Op.CONCAT: OpSpec("concat", "Concat", (0,), 2),
    Op.TERMINAL: OpSpec("terminal", "Terminal", (0,), 0),
    Op.RELU: OpSpec("ReLU", "ReLU", (0,), 1),
    Op.BATCH_NORM: OpSpec("batch norm", "BN", (0,), 1),
    Op.PLAIN_CONV: OpSpec("plain convolution", "PlainConv", (1, 3, 5), 1),
}


class Layer(NamedTuple):
    index: int  # type: ignore[assignment]  # the paper's name for a row's position; shadows tuple.index
    type: int
    kernel: int
    pred1: int
    pred2: int

    def __str__(self) -> str:
        return "({},{},{},{},{})".format(*(int(v) for v in self))


NSC = tuple[Layer, ...]


class NSCError(ValueError):
    """An invalid code; the message names the row and the rule broken."""


def terminal(index: int) -> Layer:
    return Layer(index, int(Op.TERMINAL), 0, 0, 0)


class _Where:
    """'row I (I,T,K,P1,P2)' for an error message, formatted only if one is raised."""

    __slots__ = ("layer",)

    def __init__(self, layer: Layer) -> None:
        self.layer = layer

    def __str__(self) -> str:
        return f"row {self.layer.index} {self.layer}"


def check_layer(layer: Layer, max_index: int = MAX_INDEX) -> None:
    """Raise NSCError if `layer` breaks a rule of Table 1 at its own index."""
    index, typ, kernel, p1, p2 = layer
    where = _Where(layer)  # formatted only when a message is
    if not 1 <= index <= max_index:
        raise NSCError(f"{where}: index must be in 1..{max_index}")
    spec = OPS.get(typ)  # type: ignore[call-overload]  # Op is an IntEnum: a plain int finds its entry
    if spec is None:
        raise NSCError(f"{where}: type {typ} is not one of 1..{len(OPS)}")
    if kernel not in spec.kernels:
        allowed = ", ".join(map(str, spec.kernels))
        raise NSCError(f"{where}: kernel {kernel} is not allowed for {spec.name} (allowed: {allowed})")
    if spec.arity == 0:
        if p1 != 0 or p2 != 0:
            raise NSCError(f"{where}: terminal must have pred1 = pred2 = 0")
        if index == 1:
            raise NSCError(f"{where}: a block needs at least one layer before the terminal")
        return
    if index == 1:
        if spec.arity == 2:
            raise NSCError(f"{where}: {spec.name} needs two earlier layers; layer 1 has only the block input")
        if p1 != 0:
            raise NSCError(f"{where}: layer 1 reads the block input, so pred1 must be 0")
    elif not 1 <= p1 < index:
        raise NSCError(f"{where}: pred1 must be in 1..{index - 1} (an earlier layer)")
    if spec.arity == 1:
        if p2 != 0:
            raise NSCError(f"{where}: pred2 must be 0 for {spec.name} (only add and concat have two inputs)")
    else:
        if not 1 <= p2 < index:
            raise NSCError(f"{where}: pred2 of {spec.name} must be in 1..{index - 1} (an earlier layer)")
        if p2 == p1:
            raise NSCError(f"{where}: pred1 and pred2 of {spec.name} must be different layers")


def validate(rows: Iterable[Sequence[int]], max_index: int = MAX_INDEX) -> NSC:
    """Return the rows as an NSC, or raise NSCError naming the row and the rule broken."""
    layers: list[Layer] = []
    for i, row in enumerate(rows, start=1):
        try:  # operator.index: ints and numpy integers, nothing else (floats and text raise TypeError)
            layer = Layer._make(map(operator.index, row))
        except TypeError:
            raise NSCError(f"row {i} {tuple(row)}: an NSC row is 5 integers "
                           "(index, type, kernel, pred1, pred2)") from None
        if layer.index != i:
            raise NSCError(f"row {i} {layer}: index must be {i} (rows are numbered 1, 2, 3, ... in order)")
        if layers and layers[-1].type == Op.TERMINAL:
            raise NSCError(f"row {i} {layer}: nothing may follow the terminal (row {i - 1})")
        check_layer(layer, max_index)
        layers.append(layer)
    if not layers:
        raise NSCError("empty code: a block needs at least one layer and a terminal")
    if layers[-1].type != Op.TERMINAL:
        raise NSCError(f"row {len(layers)} {layers[-1]}: the last row must be the terminal (T,7,0,0,0)")
    return tuple(layers)


# ---------------------------------------------------------------- text form

# A row: five integers of ASCII digits (at most 6: no code needs more), in parentheses, separated by commas.
_NUM = r"\s*(-?[0-9]{1,6})\s*"
_ROW = re.compile(r"\(" + ",".join([_NUM] * NSC_WIDTH) + r"\)")


def parse(text: str, max_index: int = MAX_INDEX) -> NSC:
    """Parse the paper's text form, e.g. ``[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]``."""
    body = text.strip()
    if body.startswith("Codes") and "=" in body:  # accept a line copied from the paper's figures
        body = body.split("=", 1)[1].strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise NSCError(f"not an NSC list: expected '[(1,4,0,0,0),...]', got {text!r}")
    inner = body[1:-1].strip()
    rows: list[tuple[int, ...]] = []
    pos = 0
    while pos < len(inner):
        m = _ROW.match(inner, pos)
        if not m:
            raise NSCError(f"cannot read row {len(rows) + 1} at {inner[pos:pos + 20]!r}: expected (i,t,k,p1,p2) "
                           "with integers of at most 6 digits")
        rows.append(tuple(int(g) for g in m.groups()))
        rest = inner[m.end():].lstrip()
        if rest:  # rows are separated by one comma, and the list does not end with one
            if not rest.startswith(","):
                raise NSCError(f"after row {len(rows)}: expected ',' between rows, got {rest[:20]!r}")
            rest = rest[1:].lstrip()
            if not rest:
                raise NSCError(f"after row {len(rows)}: a comma ends the list")
        pos = len(inner) - len(rest)
    return validate(rows, max_index)


def format_nsc(nsc: NSC) -> str:
    """The paper's text form, without spaces."""
    return "[" + ",".join(str(layer) for layer in nsc) + "]"


# --------------------------------------------------------------- array form

def empty_codes(max_index: int) -> np.ndarray:
    """No codes, in the stacked array form (0, max_index, NSC_WIDTH)."""
    return np.zeros((0, max_index, NSC_WIDTH), dtype=ARRAY_DTYPE)


def to_array(nsc: NSC, max_index: int = MAX_INDEX) -> np.ndarray:
    """Fixed-shape (max_index, NSC_WIDTH) int16 array, zero padded after the terminal."""
    if len(nsc) > max_index:
        raise NSCError(f"code has {len(nsc)} rows, more than max_index {max_index}")
    arr = np.zeros((max_index, NSC_WIDTH), dtype=ARRAY_DTYPE)
    arr[: len(nsc)] = np.asarray(nsc, dtype=ARRAY_DTYPE)
    return arr


def from_array(arr: np.ndarray, max_index: int | None = None) -> NSC:
    """Inverse of `to_array`: rows up to the first all-zero row, validated."""
    a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] != NSC_WIDTH:
        raise NSCError(f"NSC array must have shape (rows, {NSC_WIDTH}), got {a.shape}")
    limit = a.shape[0] if max_index is None else max_index
    nonzero = np.asarray(a.any(axis=1))
    n = int(nonzero.argmin()) if not nonzero.all() else a.shape[0]  # the first all-zero row
    if nonzero[n:].any():
        raise NSCError(f"row {n + 1}: a zero row ends the code, but non-zero rows follow it")
    return validate(a[:n].tolist(), limit)


# ------------------------------------------------------------ named blocks

# The paper's worked examples (CVPR 2018, Fig. 2), usable as test vectors and with `bqnn.train --block`.
INCEPTION_LIKE: NSC = parse(
    "[(1,4,0,0,0),(2,1,1,1,0),(3,1,3,2,0),(4,1,1,1,0),(5,1,5,4,0),(6,6,0,3,5),(7,2,3,1,0),(8,1,1,7,0),(9,6,0,6,8),(10,7,0,0,0)]"
)
RESIDUAL_LIKE: NSC = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]")
NAMED_BLOCKS: dict[str, NSC] = {"inception-like": INCEPTION_LIKE, "residual-like": RESIDUAL_LIKE}
