"""Fault injection for tests (`trainer.inject_fault`, `trainer.inject_every`): the one rule that decides which
candidates fail and how, used by the real and the simulated trainer alike.

    fault = scheduled(cfg.trainer, candidate_id)     # "none", "exception", "nan" or "oom"

The real trainer raises the fault inside its first epoch (so its own handlers are what is tested); the
simulated trainer turns it into the same result. No torch.
"""
from __future__ import annotations

from ..config import TrainerConfig

EXCEPTION_MESSAGE = "injected exception (trainer.inject_fault)"
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 1.00 GiB (injected, trainer.inject_fault)"


class InjectedFault(RuntimeError):
    """The exception `inject_fault = "exception"` raises."""


def scheduled(t: TrainerConfig, candidate_id: int) -> str:
    """The fault this candidate gets: every candidate whose id is a multiple of `inject_every`."""
    if t.inject_fault != "none" and t.inject_every and candidate_id % t.inject_every == 0:
        return t.inject_fault
    return "none"
