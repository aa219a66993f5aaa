"""The interface every search strategy implements, and the registry of strategies by name, so that the
master, the checkpoint and the report never know which one runs.

Used as a library: `bqnn.strategies.make_strategy(config)`; a strategy class registers itself with
`@register` under its `name` and builds itself from a config with `from_config`.

The master calls, per iteration i: `propose(i, n)` for the blocks to evaluate
(n = search.blocks_per_iteration; a strategy whose iterations differ in size, such as PNAS's
rounds, returns as many as it wants and says `fixed_size = False`, and then runs in batch dispatch),
then `observe(nsc, reward)` once per evaluated block (repeats answered from the
reward cache included), in candidate-id order in batch mode or as results
arrive in async mode, then `end_iteration(i)` once all of iteration i is in.
`state()` / `load_state()` carry everything needed to continue bit-exactly
after a restart: plain numpy arrays and JSON-able attributes, never pickles.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, TypeVar

import numpy as np

from ..blocks.code import NSC
from ..blocks.space import Space
from ..config import Config

Arrays = dict[str, np.ndarray]
Attrs = dict[str, Any]


class Strategy(ABC):
    name: str = ""
    fixed_size: bool = True  # every iteration proposes exactly n blocks (async dispatch needs it)

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Config, space: Space) -> Strategy:
        """The strategy as `cfg` configures it, over `space`."""

    @property
    @abstractmethod
    def total_iterations(self) -> int: ...

    def epsilon(self, iteration: int) -> float:
        """Exploration rate shown in progress lines (1.0 for pure random search)."""
        return 1.0

    def planned_candidates(self, n: int) -> int:
        """Candidates of the whole search (progress lines)."""
        return self.total_iterations * n

    def note(self, iteration: int) -> str:
        """Anything the strategy adds to the progress line of a completed iteration."""
        return ""

    @abstractmethod
    def propose(self, iteration: int, n: int) -> list[NSC]: ...

    @abstractmethod
    def observe(self, nsc: NSC, reward: float) -> None: ...

    @abstractmethod
    def end_iteration(self, iteration: int) -> None: ...

    def best_guess(self) -> NSC | None:
        """The block the strategy itself would pick now (greedy), if it has one."""
        return None

    @abstractmethod
    def state(self) -> tuple[Arrays, Attrs]: ...

    @abstractmethod
    def load_state(self, arrays: Arrays, attrs: Attrs) -> None: ...


REGISTRY: dict[str, type[Strategy]] = {}
S = TypeVar("S", bound=type[Strategy])


def register(cls: S) -> S:
    """Class decorator: make `cls` available as `search.strategy = cls.name`."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"strategy name {cls.name!r} is empty or taken")
    REGISTRY[cls.name] = cls
    return cls
