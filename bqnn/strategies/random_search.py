"""Random search with the budget and interface of Q-learning (the paper's Appendix A baseline).

Used as a library through `bqnn.strategies.make_strategy` (`search.strategy = "random"`).

It samples with the agent's own sampler at e = 1 and never learns, so with the
same seed it draws exactly the blocks Q-learning draws during its e = 1 phase:
"the compared random search method start[s] from the same exploration phase as
BlockQNN for fairness".
"""
from __future__ import annotations

import json

import numpy as np

from ..agent import EpsilonSchedule, QLearningAgent
from ..nsc import NSC
from ..space import Space
from .base import Strategy


class RandomStrategy(Strategy):
    name = "random"

    def __init__(self, space: Space, schedule: EpsilonSchedule, seed: int) -> None:
        self.schedule = schedule
        self.sampler = QLearningAgent(space, seed)

    @property
    def total_iterations(self) -> int:
        return self.schedule.total

    def propose(self, iteration: int, n: int) -> list[NSC]:
        return [self.sampler.sample(1.0) for _ in range(n)]

    def observe(self, nsc: NSC, reward: float) -> None:
        pass

    def end_iteration(self, iteration: int) -> None:
        pass

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        return {}, {"rng_sample": json.dumps(self.sampler.rng.bit_generator.state)}

    def load_state(self, arrays: dict[str, np.ndarray], attrs: dict) -> None:
        self.sampler.rng.bit_generator.state = json.loads(attrs["rng_sample"])
