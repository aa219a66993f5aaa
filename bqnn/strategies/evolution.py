"""Regularized (aging) evolution (Real et al., AAAI 2019), the field's strongest simple baseline
(`search.strategy = "evolution"`, `[evolution]`).

Used as a library through `bqnn.strategies.make_strategy`; configured by

    [evolution]
    population = 20     # P: the living blocks; the first P proposals are random blocks (search.explore)
    sample = 5          # S: blocks drawn for each tournament

Each proposal after the first P draws S members of the population uniformly (without replacement), takes the one
with the best reward (the earliest on a tie), and proposes one mutation of it (`mutate`): one layer's operation
(type and kernel) or one of its predecessors changed, the result a valid block of the space that differs from
the parent (by canonical hash). Every observed candidate, repeats answered from the reward cache and failures
included, joins the population as its youngest member and the oldest leaves: age, not fitness, decides who dies.
With batch dispatch the proposals of one iteration are drawn from the population as it was at its start (the
batched variant). The budget is the schedule's iterations, as for the other strategies (its epsilons are unused:
`epsilon` shows 1 while proposals are random, 0 after). State: the population (codes, rewards, in age order) and
the generator, so a resumed search equals an uninterrupted one. numpy only.
"""
from __future__ import annotations

import json
from collections import deque

import numpy as np

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, OPS, Layer, NSCError, Op, empty_codes, from_array, to_array, validate
from ..blocks.space import Explore, Space
from ..config import Config
from .base import Arrays, Attrs, Strategy, register
from .qtable import EpsilonSchedule

TRIES = 64  # random mutations tried before a block counts as having none (then a random block is proposed)


def mutate(nsc: NSC, space: Space, rng: np.random.Generator) -> NSC | None:
    """One random mutation of `nsc` within `space` (a layer's op, or one of its predecessors), or None when no
    mutation was found in TRIES attempts (a block of one layer has none)."""
    layers = list(nsc[:-1])
    first = 2 if space.start_identity else 1  # the start identity is not mutated
    if len(layers) < first:
        return None
    parent = canonical_hash(nsc)
    kinds = [(int(op), k) for op, spec in space.ops for k in spec.kernels]
    for _ in range(TRIES):
        pos = int(rng.integers(first, len(layers) + 1))
        old = layers[pos - 1]
        new = _new_op(old, kinds, rng) if rng.random() < 0.5 else _new_pred(old, rng)
        if new is None:
            continue
        child = tuple(layers[: pos - 1] + [new] + layers[pos:]) + (nsc[-1],)
        try:
            validate(child, space.max_index)
        except NSCError:
            continue
        if space.contains(child) and canonical_hash(child) != parent:
            return child
    return None


def _preds(index: int, arity: int, keep: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """Predecessors for a layer of `arity` at `index`, keeping `keep` where it can; None if impossible."""
    if index == 1:
        return (0, 0) if arity == 1 else None
    if arity == 1:
        return (keep if 1 <= keep < index else int(rng.integers(1, index)), 0)
    if index < 3:  # a join needs two distinct earlier layers
        return None
    p1 = keep if 1 <= keep < index else int(rng.integers(1, index))
    p2 = int(rng.integers(1, index - 1))
    p2 += p2 >= p1  # any earlier layer but p1
    return (min(p1, p2), max(p1, p2))


def _new_op(old: Layer, kinds: list[tuple[int, int]], rng: np.random.Generator) -> Layer | None:
    others = [k for k in kinds if k != (old.type, old.kernel)]
    t, k = others[int(rng.integers(len(others)))]
    preds = _preds(old.index, OPS[Op(t)].arity, old.pred1, rng)
    return None if preds is None else Layer(old.index, t, k, *preds)


def _new_pred(old: Layer, rng: np.random.Generator) -> Layer | None:
    arity = OPS[Op(old.type)].arity
    choices = [p for p in range(1, old.index) if p not in (old.pred1, old.pred2)]
    if not choices:
        return None
    p = choices[int(rng.integers(len(choices)))]
    if arity == 1:
        return Layer(old.index, old.type, old.kernel, p, 0)
    keep = old.pred2 if rng.random() < 0.5 else old.pred1  # replace the other one
    return Layer(old.index, old.type, old.kernel, min(p, keep), max(p, keep))


@register
class EvolutionStrategy(Strategy):
    name = "evolution"

    @classmethod
    def from_config(cls, cfg: Config, space: Space) -> EvolutionStrategy:
        e = cfg.evolution
        return cls(space, EpsilonSchedule(tuple(cfg.search.schedule)), cfg.search.seed, e.population, e.sample,
                   cfg.search.explore)

    def __init__(self, space: Space, schedule: EpsilonSchedule, seed: int, population: int, sample: int,
                 explore: Explore = "uniform") -> None:
        from .qtable import QTable  # its sampler draws the random blocks, with the same exploration rule

        if not 1 <= sample <= population:
            raise ValueError(f"evolution.sample must be 1 to evolution.population ({population}), got {sample}")
        self.space, self.schedule = space, schedule
        self.size, self.sample = population, sample
        self.population: deque[tuple[NSC, float]] = deque()  # oldest first
        self.proposed = 0  # blocks proposed so far (the first `size` are random)
        self.sampler = QTable(space, seed, explore=explore)
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed).spawn(3)[2]))

    @property
    def total_iterations(self) -> int:
        return self.schedule.total

    def epsilon(self, iteration: int) -> float:
        return 1.0 if not self.population else 0.0

    def propose(self, iteration: int, n: int) -> list[NSC]:
        living = list(self.population)  # the population at the iteration's start (batched)
        out = []
        for _ in range(n):
            child = None
            if self.proposed >= self.size and living:
                child = mutate(self._tournament(living), self.space, self.rng)
            out.append(child if child is not None else self.sampler.sample(1.0))
            self.proposed += 1
        return out

    def _tournament(self, living: list[tuple[NSC, float]]) -> NSC:
        k = min(self.sample, len(living))
        drawn = sorted(self.rng.choice(len(living), size=k, replace=False).tolist())
        best = max(drawn, key=lambda i: (living[i][1], -i))
        return living[best][0]

    def observe(self, nsc: NSC, reward: float) -> None:
        self.population.append((nsc, reward))
        if len(self.population) > self.size:
            self.population.popleft()  # the oldest dies

    def end_iteration(self, iteration: int) -> None:
        pass

    def note(self, iteration: int) -> str:
        if not self.population:
            return ""
        return f"population {len(self.population)}, best living {max(r for _, r in self.population):.2f}"

    def state(self) -> tuple[Arrays, Attrs]:
        codes = [to_array(nsc, self.space.max_index) for nsc, _ in self.population]
        return ({"population_nsc": np.stack(codes) if codes else empty_codes(self.space.max_index),
                 "population_reward": np.array([r for _, r in self.population], np.float64)},
                {"proposed": self.proposed, "rng": json.dumps(self.rng.bit_generator.state),
                 "rng_sample": json.dumps(self.sampler.rng.bit_generator.state)})

    def load_state(self, arrays: Arrays, attrs: Attrs) -> None:
        codes, rewards = arrays["population_nsc"], arrays["population_reward"]
        if len(codes) != len(rewards) or len(codes) > self.size:
            raise ValueError(f"population of {len(codes)} codes and {len(rewards)} rewards (size {self.size})")
        self.population = deque((from_array(c, self.space.max_index), float(r))
                                for c, r in zip(codes, rewards, strict=True))
        self.proposed = int(attrs["proposed"])
        self.rng.bit_generator.state = json.loads(attrs["rng"])
        self.sampler.rng.bit_generator.state = json.loads(attrs["rng_sample"])
