"""The search space: which layers may come next from a state (Table 1).

Used as a library (by the agent and the strategies); no torch.

A state is the last layer written, as an NSC `Layer`; the start state is
`START = (0,0,0,0,0)`. From a state with index i the legal actions are every
valid layer with index i+1 plus the terminal (i+1,7,0,0,0); at index
`max_index` only the terminal is left. Because legality depends only on the
index, the action lists are built once per index and cached.

Choices where the paper is silent (docs/choices.md):
- `start_identity` (default True): layer 1 is always (1,4,0,0,0), as in both
  worked examples and the AAAI text ("we start block with the identity layer");
  it is what lets later layers reach the block input (residual connections).
  With False, layer 1 may be any single-input op reading the input.
- Add and concat are offered once per unordered pair of inputs (pred1 < pred2);
  the reversed pair is the same block (same canonical hash) and would otherwise
  double their share of random exploration.
- The terminal is not offered at index 1 (an empty block).

`layers` picks the layer types (docs/choices.md, "Separate components"): "pcc" (Table 1: the
convolution is the pre-activation cell ReLU -> Conv -> BN) or "separate" (CVPR Fig. 9, AAAI
Fig. 3: ReLU, batch norm and a plain convolution are layers of their own, types 8, 9, 10, and
type 1 is not offered); pools, identity, add, concat and the terminal are in both.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from ..config import SpaceConfig
from .code import MAX_INDEX, NSC, OPS, Layer, NSCError, Op, OpSpec, terminal

START = Layer(0, 0, 0, 0, 0)
Explore = Literal["uniform", "by_type"]  # search.explore: how a random action is drawn

# The layer types each space proposes (terminal aside), in the op table's order.
LAYER_TYPES: dict[str, tuple[Op, ...]] = {
    "pcc": (Op.CONV, Op.MAX_POOL, Op.AVG_POOL, Op.IDENTITY, Op.ADD, Op.CONCAT),
    "separate": (Op.MAX_POOL, Op.AVG_POOL, Op.IDENTITY, Op.ADD, Op.CONCAT, Op.RELU, Op.BATCH_NORM, Op.PLAIN_CONV),
}


def spaces_of(nsc: NSC) -> list[str]:
    """The names of the spaces whose layer types `nsc` uses (its indices and joins aside)."""
    used = {layer.type for layer in nsc if layer.type != Op.TERMINAL}
    return [name for name, types in LAYER_TYPES.items() if used <= {int(t) for t in types}]


@dataclass(frozen=True)
class Space:
    max_index: int = MAX_INDEX
    start_identity: bool = True
    layers: str = "pcc"  # a key of LAYER_TYPES
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.max_index < 2:
            raise NSCError(f"max_index must be at least 2 (one layer and the terminal), got {self.max_index}")
        if self.layers not in LAYER_TYPES:
            raise NSCError(f"space.layers {self.layers!r}: expected one of {', '.join(LAYER_TYPES)}")

    @classmethod
    def of(cls, cfg: SpaceConfig) -> Space:
        """The space a config's `[space]` section describes."""
        return cls(cfg.max_index, cfg.start_identity, cfg.layers)

    @property
    def ops(self) -> tuple[tuple[Op, OpSpec], ...]:
        """(op, spec) of every layer type this space proposes, terminal aside."""
        return tuple((op, OPS[op]) for op in LAYER_TYPES[self.layers])

    @property
    def kinds(self) -> tuple[tuple[int, int], ...]:
        """Every (type, kernel) a layer of this space can have, terminal aside."""
        return tuple((int(op), k) for op, spec in self.ops for k in spec.kernels)

    def layers_at(self, index: int) -> tuple[Layer, ...]:
        """All legal non-terminal layers with this index."""
        if index in self._cache:
            return self._cache[index]
        out: list[Layer] = []
        if 1 <= index < self.max_index:
            if index == 1:
                if self.start_identity:
                    out.append(Layer(1, int(Op.IDENTITY), 0, 0, 0))
                else:
                    for op, spec in self.ops:
                        if spec.arity == 1:
                            out.extend(Layer(1, int(op), k, 0, 0) for k in spec.kernels)
            else:
                for op, spec in self.ops:
                    if spec.arity == 1:
                        out.extend(Layer(index, int(op), k, p, 0) for k in spec.kernels for p in range(1, index))
                    elif spec.arity == 2:
                        out.extend(
                            Layer(index, int(op), 0, p1, p2) for p1 in range(1, index) for p2 in range(p1 + 1, index)
                        )
        self._cache[index] = tuple(out)
        return self._cache[index]

    def actions(self, state: Layer) -> tuple[Layer, ...]:
        """Legal next layers from `state`, terminal included (last)."""
        nxt = state.index + 1
        key = ("actions", nxt)
        if key not in self._cache:
            acts = self.layers_at(nxt)
            if nxt >= 2:
                acts = acts + (terminal(nxt),)
            self._cache[key] = acts
        return self._cache[key]

    def n_actions(self, state: Layer) -> int:
        return len(self.actions(state))

    def random_action(self, state: Layer, rng: np.random.Generator, rule: Explore = "uniform") -> Layer:
        """A random legal next layer (exploration, docs/choices.md "Exploration"). "uniform": each legal action
        equally likely (one draw), so the terminal is 1 of ~100 and random blocks run to `max_index`; "by_type":
        the layer type first, each type offered at this index equally likely (the terminal is one of them: 1/7 from
        index 3 on in the pcc space, 1/5 at index 2 where no join has two inputs yet), then its kernel, then its
        predecessors, each uniformly (three draws)."""
        actions = self.actions(state)
        if rule == "uniform":
            return actions[int(rng.integers(len(actions)))]
        groups = self._by_type(state.index + 1)
        kernels = groups[int(rng.integers(len(groups)))]
        choices = kernels[int(rng.integers(len(kernels)))]
        return choices[int(rng.integers(len(choices)))]

    def _by_type(self, index: int) -> tuple[tuple[tuple[Layer, ...], ...], ...]:
        """The actions at `index` grouped by type, then by kernel: [type][kernel][predecessors]."""
        key = ("by_type", index)
        if key not in self._cache:
            groups: dict[int, dict[int, list[Layer]]] = {}
            for a in self.actions(Layer(index - 1, 0, 0, 0, 0)):
                groups.setdefault(a.type, {}).setdefault(a.kernel, []).append(a)
            self._cache[key] = tuple(tuple(tuple(by_pred) for by_pred in by_kernel.values())
                                     for by_kernel in groups.values())
        return self._cache[key]

    def terminal_probability(self, index: int, rule: Explore = "by_type") -> float:
        """The chance that a random action at layer `index` is the terminal."""
        if rule == "uniform":
            acts = self.actions(Layer(index - 1, 0, 0, 0, 0))
            return sum(a.type == Op.TERMINAL for a in acts) / len(acts)
        groups = self._by_type(index)
        return sum(g[0][0].type == Op.TERMINAL for g in groups) / len(groups)

    @cached_property
    def size_hint(self) -> int:
        """Number of (state, action) pairs; the Q-table's upper bound."""
        total = len(self.actions(START))
        for i in range(1, self.max_index):
            total += len(self.layers_at(i)) * len(self.actions(Layer(i, 0, 0, 0, 0)))
        return total

    def blocks(self, max_size: int | None = None) -> Iterator[tuple[Layer, ...]]:
        """Every block of the space with at most `max_size` layers (terminal not counted), depth first: exactly
        the blocks `actions` can build, the start identity followed by the terminal included. Exhaustive, so only
        for small spaces: 4,473 codes (2,357 distinct blocks) at max_index 5."""
        limit = min(max_size or self.max_index - 1, self.max_index - 1)

        def grow(rows: tuple[Layer, ...]) -> Iterator[tuple[Layer, ...]]:
            i = len(rows)
            if i >= 1:  # actions offer the terminal from index 2 on
                yield rows + (terminal(i + 1),)
            if i < limit:
                for layer in self.layers_at(i + 1):
                    yield from grow(rows + (layer,))

        yield from grow(())

    def contains(self, nsc: tuple[Layer, ...]) -> bool:
        """True if every transition of `nsc` is an action this space offers."""
        state = START
        for layer in nsc:
            if layer not in self.actions(state):
                return False
            state = layer
        return state.type == Op.TERMINAL
