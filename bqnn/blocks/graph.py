"""The block as a DAG, and its density (the reward's graph term).

Used as a library: `graph(nsc)` by the channel plan, the canonical hash, the reward and the PNAS
predictor's features. numpy-free, pure Python; memoized per code.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from .code import NSC, OPS, Op


@dataclass(frozen=True)
class BlockGraph:
    """The block as a DAG. Node 0 is the block input, nodes 1..n the layers
    (terminal excluded), node n+1 the block output (concat of the leaves).

    `density` = edges / nodes with input and output counted as nodes and the
    edges input->layer 1 and leaf->output counted as edges (docs/choices.md).
    """

    n_layers: int
    preds: tuple[tuple[int, ...], ...]  # per node, its predecessor nodes
    leaves: tuple[int, ...]

    @property
    def nodes(self) -> int:
        return self.n_layers + 2

    @property
    def edges(self) -> int:
        return sum(len(p) for p in self.preds)

    @property
    def density(self) -> float:
        return self.edges / self.nodes


# Pure functions of a code that rank 0 and the workers call several times per candidate (hash, costs,
# density, the simulated accuracy): memoized per code. A code is a tuple of NamedTuples, so hashable;
# the results are immutable.
MEMO_SIZE = 1 << 15
_BINARY = frozenset(int(op) for op, spec in OPS.items() if spec.arity == 2)
_TERMINAL = int(Op.TERMINAL)


@functools.lru_cache(maxsize=MEMO_SIZE)
def graph(nsc: NSC) -> BlockGraph:
    layers = [layer for layer in nsc if layer.type != _TERMINAL]
    n = len(layers)
    preds: list[tuple[int, ...]] = [()]
    has_succ = [False] * (n + 1)
    for layer in layers:
        ps = (layer.pred1, layer.pred2) if layer.type in _BINARY else (layer.pred1,)
        preds.append(ps)
        for p in ps:
            has_succ[p] = True
    leaves = tuple(i for i in range(1, n + 1) if not has_succ[i])
    preds.append(leaves)
    return BlockGraph(n, tuple(preds), leaves)
