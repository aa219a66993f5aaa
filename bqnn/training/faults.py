"""Fault injection for tests (`trainer.inject_fault`, `trainer.inject_every`): the one rule that decides which
candidates fail and how, used by the real and the simulated trainer alike.

    fault = scheduled(cfg.trainer, candidate_id)     # "none", "exception", "nan" or "oom"

The real trainer raises the fault inside its first epoch (so its own handlers are what is tested); the
simulated trainer turns it into the same result. No torch.
"""
from __future__ import annotations

from contextvars import ContextVar

from ..config import TrainerConfig

EXCEPTION_MESSAGE = "injected exception (trainer.inject_fault)"
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 1.00 GiB (injected, trainer.inject_fault)"
DEVICE_MESSAGE = "CUDA error: an illegal memory access was encountered (injected, trainer.inject_fault)"
HANG_SECONDS = 3600.0  # "hang": the worker stops answering (it sleeps, deaf to STOP) for this long

# Which attempt at a candidate this process is making (0: first; the MPI worker sets it from the task). The
# faults a retry exists for ("oom", "device", "hang") strike the first attempt only, as a transient fault or a
# broken GPU would: another rank's attempt then succeeds.
attempt: ContextVar[int] = ContextVar("attempt", default=0)


class InjectedFault(RuntimeError):
    """The exception `inject_fault = "exception"` raises."""


def scheduled(t: TrainerConfig, candidate_id: int) -> str:
    """The fault this candidate gets: every candidate whose id is a multiple of `inject_every`."""
    if t.inject_fault != "none" and t.inject_every and candidate_id % t.inject_every == 0:
        if t.inject_fault in ("oom", "device", "hang") and attempt.get() > 0:
            return "none"
        return t.inject_fault
    return "none"
