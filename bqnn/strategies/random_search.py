"""Random search with the budget and interface of Q-learning (the paper's Appendix A baseline).

Used as a library through `bqnn.strategies.make_strategy` (`search.strategy = "random"`).

It samples with the agent's own sampler at e = 1 and never learns, so with the
same seed it draws exactly the blocks Q-learning draws during its e = 1 phase:
"the compared random search method start[s] from the same exploration phase as
BlockQNN for fairness".
"""
from __future__ import annotations

import json

from ..blocks.code import NSC
from ..blocks.space import Explore, Space
from ..config import Config
from .base import Arrays, Attrs, Strategy, register
from .qtable import EpsilonSchedule, QTable


@register
class RandomStrategy(Strategy):
    name = "random"

    @classmethod
    def from_config(cls, cfg: Config, space: Space) -> RandomStrategy:
        return cls(space, EpsilonSchedule(tuple(cfg.search.schedule)), cfg.search.seed, cfg.search.explore)

    def __init__(self, space: Space, schedule: EpsilonSchedule, seed: int, explore: Explore = "uniform") -> None:
        self.schedule = schedule
        self.sampler = QTable(space, seed, explore=explore)

    @property
    def total_iterations(self) -> int:
        return self.schedule.total

    def propose(self, iteration: int, n: int) -> list[NSC]:
        return [self.sampler.sample(1.0) for _ in range(n)]

    def observe(self, nsc: NSC, reward: float) -> None:
        pass

    def end_iteration(self, iteration: int) -> None:
        pass

    def state(self) -> tuple[Arrays, Attrs]:
        return {}, {"rng_sample": json.dumps(self.sampler.rng.bit_generator.state)}

    def load_state(self, arrays: Arrays, attrs: Attrs) -> None:
        self.sampler.rng.bit_generator.state = json.loads(attrs["rng_sample"])
