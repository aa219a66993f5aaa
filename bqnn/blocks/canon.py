"""The canonical hash of a block: equal for any two codes that describe the same DAG (layers renumbered,
inputs of add/concat swapped), so the reward cache answers a block however it was written.

Used as a library: `canonical_hash(nsc)` (16 hex digits) by rank 0, the strategies and the report;
`renumber` writes the same block in another order (tests and tools). Pure Python.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence

from .code import MAX_INDEX, NSC, NSCError, Op, terminal, validate
from .graph import MEMO_SIZE, graph


def _labels(nsc: NSC) -> list[int]:
    layers = [layer for layer in nsc if layer.type != Op.TERMINAL]
    return [0] + [10 * layer.type + layer.kernel for layer in layers] + [1]


def _relabel(sigs: list) -> list[int]:
    """Colours 0, 1, ... numbering the distinct signatures in sorted order."""
    rank = {s: i for i, s in enumerate(sorted(set(sigs)))}
    return [rank[s] for s in sigs]


def _refine(colors: list[int], preds: Sequence[Sequence[int]], succs: Sequence[Sequence[int]]) -> list[int]:
    """Colour refinement to a stable partition: nodes are split by their colour and the colours of their
    predecessors and successors (as multisets) until no cell splits."""
    count = len(set(colors))
    while True:
        sigs = []
        for v in range(len(colors)):
            ps = sorted(colors[p] for p in preds[v])
            ss = sorted(colors[s] for s in succs[v])
            sigs.append((colors[v], tuple(ps), tuple(ss)))
        new = _relabel(sigs)
        new_count = max(new) + 1  # _relabel numbers the distinct signatures 0, 1, ...
        if new_count == count:
            return new
        colors, count = new, new_count


def _encode(labels: list[int], preds: Sequence[Sequence[int]], colors: list[int]) -> tuple:
    """The labelled DAG written in the order a discrete colouring gives its nodes."""
    order = sorted(range(len(labels)), key=colors.__getitem__)
    return tuple((labels[v], tuple(sorted(colors[p] for p in preds[v]))) for v in order)


class _Search:
    """Individualization-refinement over the ties a refinement leaves: the smallest leaf encoding, and the
    automorphisms met on the way (which prune nodes that one maps onto a node tried before)."""

    def __init__(self, labels: list[int], preds: Sequence[Sequence[int]], succs: Sequence[Sequence[int]]) -> None:
        self.labels, self.preds, self.succs, self.n = labels, preds, succs, len(labels)
        self.first: list[tuple[tuple, list[int]]] = []  # [(encoding, order)] of the first leaf reached
        self.best: list[tuple[tuple, list[int]]] = []  # [(encoding, order)] of the smallest leaf so far
        # Twins (same label, same predecessors, same successors) can always be exchanged: seed the automorphisms
        # with those transpositions so that k parallel identical branches are searched once, not k! times.
        self.autos: list[list[int]] = []
        twins: dict[tuple, list[int]] = {}
        for v in range(self.n):
            twins.setdefault((labels[v], tuple(sorted(preds[v])), tuple(sorted(succs[v]))), []).append(v)
        for group in twins.values():
            for a, b in zip(group, group[1:], strict=False):
                g = list(range(self.n))
                g[a], g[b] = b, a
                self.autos.append(g)

    def orbit(self, v: int, fixed: list[int]) -> int:
        """Smallest node in v's orbit under the automorphisms found that fix `fixed` pointwise."""
        group = [g for g in self.autos if all(g[p] == p for p in fixed)]
        seen, stack = {v}, [v]
        while stack:
            x = stack.pop()
            for g in group:
                if g[x] not in seen:
                    seen.add(g[x])
                    stack.append(g[x])
        return min(seen)

    def leaf(self, colors: list[int]) -> None:
        enc = _encode(self.labels, self.preds, colors)
        order = sorted(range(self.n), key=colors.__getitem__)
        for ref_enc, ref_order in self.first + self.best:
            if enc == ref_enc:  # same encoding: the two labelings differ by an automorphism
                g = [0] * self.n
                for pos, v in enumerate(order):
                    g[v] = ref_order[pos]
                self.autos.append(g)
                return
        if not self.first:
            self.first.append((enc, order))
        if not self.best or enc < self.best[0][0]:
            self.best[:] = [(enc, order)]

    def search(self, colors: list[int], fixed: list[int]) -> None:
        cells: dict[int, list[int]] = {}
        for v, c in enumerate(colors):
            cells.setdefault(c, []).append(v)
        target = next((cells[c] for c in sorted(cells) if len(cells[c]) > 1), None)
        if target is None:
            self.leaf(colors)
            return
        tried: list[int] = []
        for v in target:
            if any(self.orbit(t, fixed) == self.orbit(v, fixed) for t in tried):
                continue
            tried.append(v)
            split = _relabel([(c, 0 if x == v else 1) for x, c in enumerate(colors)])
            self.search(_refine(split, self.preds, self.succs), fixed + [v])


def _canonical_form(labels: list[int], preds: Sequence[Sequence[int]]) -> tuple:
    """Minimal encoding over all relabelings of a node-labelled DAG whose edges into a node are unordered.
    Individualization-refinement: colour refinement (`_refine`) splits nodes by label and by the colours of their
    predecessors and successors; remaining ties are broken by trying each node of the first non-singleton cell,
    pruning nodes that an automorphism already found maps onto one tried before (`_Search`). Exact, and fast on
    symmetric blocks (k identical branches cost O(k^2) leaves, not k!)."""
    succs: list[list[int]] = [[] for _ in labels]
    for v, ps in enumerate(preds):
        for p in ps:
            succs[p].append(v)
    s = _Search(labels, preds, succs)
    s.search(_refine(_relabel(labels), preds, succs), [])
    return s.best[0][0]


@functools.lru_cache(maxsize=MEMO_SIZE)
def canonical_hash(nsc: NSC) -> str:
    """16 hex digits, equal for codes that describe isomorphic blocks."""
    g = graph(nsc)
    form = _canonical_form(_labels(nsc), g.preds)
    return hashlib.sha256(repr(form).encode()).hexdigest()[:16]


def renumber(nsc: NSC, order: Sequence[int], swap: Iterable[int] = ()) -> NSC:
    """The same block written in another topological order of its layers.

    `order` lists the old layer indices in their new order (a topological order
    starting with the layer that reads the input); layers in `swap` (old
    indices) get their two inputs exchanged. Used by tests and tools."""
    layers = [layer for layer in nsc if layer.type != Op.TERMINAL]
    if sorted(order) != list(range(1, len(layers) + 1)):
        raise NSCError(f"order {list(order)} is not a permutation of 1..{len(layers)}")
    new_of = {0: 0, **{old: new for new, old in enumerate(order, start=1)}}
    swapped = set(swap)
    rows: list[tuple[int, ...]] = []
    for new, old in enumerate(order, start=1):
        layer = layers[old - 1]
        p1, p2 = new_of[layer.pred1], (new_of[layer.pred2] if layer.pred2 else 0)
        if old in swapped and p2:
            p1, p2 = p2, p1
        rows.append((new, layer.type, layer.kernel, p1, p2))
    rows.append(tuple(terminal(len(rows) + 1)))
    return validate(rows, max(len(rows), MAX_INDEX))
