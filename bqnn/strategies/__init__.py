"""Search strategies behind one interface (`base.Strategy`).

Used as a library: `make_strategy(config)` returns the strategy named by
`search.strategy`; an unknown name raises ValueError listing the known ones.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..agent import EpsilonSchedule
from ..space import Space
from .base import Strategy
from .pnas import PNASStrategy
from .qlearning import QLearningStrategy
from .random_search import RandomStrategy

if TYPE_CHECKING:
    from ..config import Config


def _qlearning(cfg: "Config", space: Space, schedule: EpsilonSchedule) -> Strategy:
    s = cfg.search
    return QLearningStrategy(space, schedule, s.seed, s.alpha, s.gamma, s.q_init, s.shaped_reward,
                             s.replay_samples, s.blocks_per_iteration)


def _random(cfg: "Config", space: Space, schedule: EpsilonSchedule) -> Strategy:
    return RandomStrategy(space, schedule, cfg.search.seed)


def _pnas(cfg: "Config", space: Space, schedule: EpsilonSchedule) -> Strategy:
    return PNASStrategy(space, cfg.pnas, cfg.search.seed)


STRATEGIES: dict[str, Callable[["Config", Space, EpsilonSchedule], Strategy]] = {
    "qlearning": _qlearning,
    "random": _random,
    "pnas": _pnas,
}


def make_strategy(cfg: "Config") -> Strategy:
    try:
        factory = STRATEGIES[cfg.search.strategy]
    except KeyError:
        raise ValueError(f"unknown search.strategy {cfg.search.strategy!r} (known: {', '.join(STRATEGIES)})") from None
    space = Space(cfg.space.max_index, cfg.space.start_identity)
    return factory(cfg, space, EpsilonSchedule(tuple(cfg.search.schedule)))


__all__ = ["Strategy", "make_strategy", "STRATEGIES"]
