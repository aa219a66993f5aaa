"""BlockQNN's Q-learning strategy: e-greedy proposals on the Table 2 schedule, Q-updates from results and
experience replay after each iteration.

`updates` is when Q learns (`search.updates`, docs/choices.md "Update rules"): "result+replay" updates once
per new result as it is observed, then replays `replay_samples` remembered blocks after each iteration (the
AAAI text: 64 + 128 per iteration); "replay" only remembers new results, and the `replay_samples` updates
after each iteration are all there is (the CVPR text: 64 per iteration).

Used as a library through `bqnn.strategies.make_strategy`.

`q_init` (the value of unvisited state-action pairs) is not given in the paper.
By default (`search.q_init` unset) it is calibrated once: the mean reward of the
first `blocks_per_iteration` results, which arrive during the e = 1 phase when Q
is not yet used for sampling; updates wait until then. A fixed number can be set
instead. Why: with q_init far below the rewards the greedy block collapses to the
empty block (the terminal's Q dominates early, the paper's sec. 3.2 remark); far
above, every unvisited continuation looks better than stopping (docs/choices.md).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ..blocks.code import NSC, empty_codes, from_array, to_array
from ..blocks.space import Explore, Space
from ..config import Config
from .base import Arrays, Attrs, Strategy, register
from .qtable import EpsilonSchedule, QTable

UpdateRule = Literal["result+replay", "replay"]  # search.updates (the config checks what a job file says)


@register
class QLearningStrategy(Strategy):
    name = "qlearning"

    @classmethod
    def from_config(cls, cfg: Config, space: Space) -> QLearningStrategy:
        s = cfg.search
        return cls(space, EpsilonSchedule(tuple(s.schedule)), s.seed, s.alpha, s.gamma, s.q_init,
                   s.intermediate_reward, s.replay_samples, s.blocks_per_iteration, s.updates, s.explore)

    def __init__(self, space: Space, schedule: EpsilonSchedule, seed: int, alpha: float, gamma: float,
                 q_init: float | None, intermediate: str, replay_samples: int, calibration_size: int,
                 updates: UpdateRule = "result+replay", explore: Explore = "uniform") -> None:
        self.space = space
        self.schedule = schedule
        self.updates = updates
        self.table = QTable(space, seed, alpha, gamma, q_init if q_init is not None else 0.0, intermediate,
                                    replay_samples, explore)
        self.calibrated = q_init is not None
        self.calibration_size = calibration_size
        self.pending: list[tuple[NSC, float]] = []  # observations held until q_init is calibrated

    @property
    def total_iterations(self) -> int:
        return self.schedule.total

    def epsilon(self, iteration: int) -> float:
        return self.schedule.epsilon(iteration)

    def propose(self, iteration: int, n: int) -> list[NSC]:
        eps = self.schedule.epsilon(iteration)
        return [self.table.sample(eps) for _ in range(n)]

    def observe(self, nsc: NSC, reward: float) -> None:
        if not self.calibrated:
            self.pending.append((nsc, reward))
            if len(self.pending) < self.calibration_size:
                return
            self.table.q_init = float(np.mean([r for _, r in self.pending]))
            self.calibrated = True
            held, self.pending = self.pending, []
            for b, r in held:
                self._learn(b, r)
            return
        self._learn(nsc, reward)

    def _learn(self, nsc: NSC, reward: float) -> None:
        if self.updates == "result+replay":
            self.table.update(nsc, reward)
        self.table.remember(nsc, reward)

    def end_iteration(self, iteration: int) -> None:
        if self.calibrated:
            self.table.replay()

    def best_guess(self) -> NSC | None:
        return self.table.greedy_block() if self.calibrated else None

    def state(self) -> tuple[Arrays, Attrs]:
        mi = self.space.max_index
        arrays = self.table.state_arrays(mi)
        arrays["pending_nsc"] = (np.stack([to_array(b, mi) for b, _ in self.pending]) if self.pending
                                 else empty_codes(mi))
        arrays["pending_reward"] = np.array([r for _, r in self.pending], dtype=np.float64)
        attrs = dict(self.table.state_attrs(), q_init=self.table.q_init, calibrated=int(self.calibrated))
        return arrays, attrs

    def load_state(self, arrays: Arrays, attrs: Attrs) -> None:
        self.table.load_state(arrays, attrs)
        self.table.q_init = float(attrs["q_init"])
        self.calibrated = bool(int(attrs["calibrated"]))
        self.pending = [(from_array(b, self.space.max_index), float(r))
                        for b, r in zip(arrays["pending_nsc"], arrays["pending_reward"].tolist(), strict=True)]
