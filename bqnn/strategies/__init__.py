"""Who proposes blocks: the search strategies behind one interface (`base.Strategy`), registered by name.

Used as a library: `make_strategy(config)` returns the strategy named by `search.strategy`; an unknown
name raises ValueError listing the known ones. numpy only.
"""
from __future__ import annotations

from ..blocks.space import Space
from ..config import STRATEGY_NAMES, Config
from . import evolution, exhaustive, pnas, qlearning, random_search  # noqa: F401  (each registers its class)
from .base import REGISTRY, Strategy

# In the config's order; a name the config admits but no class registered fails here, at import.
STRATEGIES: dict[str, type[Strategy]] = {name: REGISTRY[name] for name in STRATEGY_NAMES}


def make_strategy(cfg: Config) -> Strategy:
    try:
        cls = STRATEGIES[cfg.search.strategy]
    except KeyError:
        raise ValueError(f"unknown search.strategy {cfg.search.strategy!r} (known: {', '.join(STRATEGIES)})") from None
    return cls.from_config(cfg, Space.of(cfg.space))


__all__ = ["STRATEGIES", "Strategy", "make_strategy"]
