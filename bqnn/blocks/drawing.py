"""Where to draw a block's layers: a layered drawing of its DAG, the input at the top, the output at the bottom,
each layer labelled with its index, and the layers of a row ordered to cross few edges.

Used by the report's block figures (results/plots.py, matplotlib) and by the dashboard and report page (the browser
draws the same positions as SVG), so both show one drawing:

    d = drawing(nsc)        # Drawing(nodes=[Node(id, label, row, x, kind)], edges=[(from, to)], rows, width)

Rows are the longest path from the input (so every edge points down); within a row the nodes are ordered by the
barycentre of their neighbours, sweeping down and up a few times (Sugiyama's heuristic), which removes the
needless crossings of a plain index order. `x` is the node's place in its row, centred: -k/2 .. k/2. Pure Python.
"""
from __future__ import annotations

from typing import NamedTuple

from .code import NSC, OPS, Op
from .graph import graph

SWEEPS = 4


class Node(NamedTuple):
    id: int  # 0: the block's input; 1..n: its layers (the NSC's index); n + 1: the output
    label: str
    row: int
    x: float
    kind: str  # "input" | "layer" | "output"


class Drawing(NamedTuple):
    nodes: list[Node]
    edges: list[tuple[int, int]]
    rows: int
    width: int  # the most nodes in a row


def label(nsc: NSC, i: int) -> str:
    """Layer i as the drawing names it: its index, its op, its kernel ("3: Conv 3x3")."""
    layer = nsc[i - 1]
    op = Op(layer.type)
    name = OPS[op].short
    return f"{i}: {name} {layer.kernel}x{layer.kernel}" if layer.kernel else f"{i}: {name}"


def _centre(v: int, near: list[int], pos: dict[int, int]) -> float:
    """The mean place of `v`'s neighbours in the next row (its own place when it has none there)."""
    return sum(pos[u] for u in near) / len(near) if near else pos[v]


def _crossings_order(rows: list[list[int]], preds: list[list[int]], succs: list[list[int]]) -> list[list[int]]:
    """Rows reordered by the barycentre of the neighbours in the row above (sweeping down) or below (up)."""
    pos = {v: k for row in rows for k, v in enumerate(row)}
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        near = preds if down else succs
        order = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
        for r in order:
            keys = {v: (_centre(v, near[v], pos), pos[v]) for v in rows[r]}
            rows[r] = sorted(rows[r], key=keys.__getitem__)
            for k, v in enumerate(rows[r]):
                pos[v] = k
    return rows


def drawing(nsc: NSC) -> Drawing:
    g = graph(nsc)
    n = g.n_layers
    preds = [list(g.preds[v]) for v in range(n + 2)]
    succs: list[list[int]] = [[] for _ in range(n + 2)]
    for v in range(n + 2):
        for p in preds[v]:
            succs[p].append(v)
    depth = [0] * (n + 2)
    for v in range(1, n + 2):
        depth[v] = 1 + max(depth[p] for p in preds[v])
    rows: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for v in range(n + 2):
        rows[depth[v]].append(v)
    rows = _crossings_order(rows, preds, succs)
    out = "Concat" if len(g.leaves) > 1 else "Output"
    nodes = []
    for r, row in enumerate(rows):
        for k, v in enumerate(row):
            kind = "input" if v == 0 else "output" if v == n + 1 else "layer"
            text = "Input" if v == 0 else out if v == n + 1 else label(nsc, v)
            nodes.append(Node(v, text, r, k - (len(row) - 1) / 2, kind))
    edges = [(p, v) for v in range(1, n + 2) for p in preds[v]]
    return Drawing(sorted(nodes), edges, len(rows), max(len(r) for r in rows))


def crossings(d: Drawing) -> int:
    """Pairs of edges that cross (between the same two rows, their ends in opposite orders)."""
    at = {v.id: v for v in d.nodes}
    spans = [(at[a].row, at[a].x, at[b].row, at[b].x) for a, b in d.edges]
    count = 0
    for i, (r1, x1, s1, y1) in enumerate(spans):
        for r2, x2, s2, y2 in spans[i + 1:]:
            if (r1, s1) == (r2, s2) and (x1 - x2) * (y1 - y2) < 0:
                count += 1
    return count
