"""Exhaustive search: every distinct block of the space trained once (`search.strategy = "exhaustive"`).

Used as a library through `bqnn.strategies.make_strategy`; run as any search:

    python -m bqnn.search --config jobs/landscape.toml --out runs/landscape-s0 --set search.seed=0

The blocks are those `Space.blocks()` enumerates (exactly what the actions can build), one per canonical hash,
written as the first code of that hash in the enumeration's depth-first order, and trained in **ascending order
of canonical hash**. A hash is a pseudo-random label, so any prefix of the order is a uniform sample of the
space: a table stopped part-way (or still being built) is an unbiased subset, and the blocks' sizes are mixed
over the whole run, so every iteration costs about the same. Iterations hold `search.blocks_per_iteration`
blocks (the last one the rest). Nothing is learnt: the strategy's state is the order itself, rebuilt from the
space on resume, so a resumed search trains exactly the blocks not yet recorded. A second exhaustive search with
another `search.seed` trains every block again with other initial weights and batch order (the seeds of a
landscape table, bench/landscape.py).

The space must be small: a space of more than MAX_CODES codes is refused with one line (it is counted, not
enumerated, first). numpy only.
"""
from __future__ import annotations

from functools import cached_property

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC
from ..blocks.space import Space
from ..config import Config
from .base import Arrays, Attrs, Strategy, register

# Codes (before deduplication) an exhaustive search may enumerate: max_index 5 has 4,473, 6 about 110,000.
MAX_CODES = 2_000_000


def count_codes(space: Space) -> int:
    """How many codes `space.blocks()` yields, without enumerating them: the sum over block lengths i of the
    product of the layer choices at indices 1..i."""
    total, product = 0, 1
    for i in range(1, space.max_index):
        product *= len(space.layers_at(i))
        total += product
    return total


def distinct_blocks(space: Space) -> list[tuple[str, NSC]]:
    """(canonical hash, code) of every distinct block of `space`, in ascending hash order; the code is the first
    one the depth-first enumeration yields for that hash."""
    codes = count_codes(space)
    if codes > MAX_CODES:
        raise ValueError(f"search.strategy = \"exhaustive\": the space (space.max_index {space.max_index}) has "
                         f"{codes:,} codes, more than {MAX_CODES:,}; use a smaller space.max_index")
    first: dict[str, NSC] = {}
    for nsc in space.blocks():
        first.setdefault(canonical_hash(nsc), nsc)
    return sorted(first.items())


@register
class ExhaustiveStrategy(Strategy):
    name = "exhaustive"
    fixed_size = False  # the last iteration holds the rest

    @classmethod
    def from_config(cls, cfg: Config, space: Space) -> ExhaustiveStrategy:
        return cls(space, cfg.search.blocks_per_iteration)

    def __init__(self, space: Space, per_iteration: int) -> None:
        self.space = space
        self.per_iteration = per_iteration

    @cached_property
    def order(self) -> list[tuple[str, NSC]]:
        return distinct_blocks(self.space)

    @property
    def total_iterations(self) -> int:
        return max(1, -(-len(self.order) // self.per_iteration))

    def planned_candidates(self, n: int) -> int:
        return len(self.order)

    def propose(self, iteration: int, n: int) -> list[NSC]:
        start = iteration * self.per_iteration
        return [nsc for _, nsc in self.order[start:start + self.per_iteration]]

    def observe(self, nsc: NSC, reward: float) -> None:
        pass

    def end_iteration(self, iteration: int) -> None:
        pass

    def note(self, iteration: int) -> str:
        done = min((iteration + 1) * self.per_iteration, len(self.order))
        return f"{done:,} of {len(self.order):,} blocks"

    def state(self) -> tuple[Arrays, Attrs]:
        return {}, {"blocks": len(self.order)}

    def load_state(self, arrays: Arrays, attrs: Attrs) -> None:
        if int(attrs.get("blocks", len(self.order))) != len(self.order):
            raise ValueError(f"the checkpoint's exhaustive search has {attrs['blocks']} blocks, this space "
                             f"{len(self.order)}")
