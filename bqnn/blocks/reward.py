"""The redefined reward (CVPR 2018, eq. 7) and its presets.

Used as a library by rank 0 (every candidate's reward) and by describe. Pure Python.

    reward = accuracy - mu * ln(FLOPs / flops_unit) - rho * ln(density)

Units (docs/reward.md): accuracy is the early-stop validation accuracy in
percent (0-100), FLOPs are those of the whole searched network for one image
(multiply-add = 2), divided by `flops_unit` (default 1e9, i.e. GFLOPs), ln is
the natural log, density = edges / nodes of the block DAG. With accuracy in
percent, the penalties are a few points: doubling FLOPs costs mu*ln 2 = 0.69
points (cvpr), density 1.0 -> 1.2 costs 8*ln 1.2 = 1.46 points, the same
order as the accuracy differences between candidates (56 % vs 65 % mean in
the paper's Fig. 8). With accuracy as a fraction the penalties would swamp it.
The unit only shifts every reward by mu*ln(unit); differences do not depend on it.
"""
from __future__ import annotations

import math

from ..config import RewardConfig

PRESETS: dict[str, tuple[float, float]] = {
    "cvpr": (1.0, 8.0),  # CVPR 2018: mu = 1, rho = 8
    "aaai": (0.5, 0.5),  # AAAI 2018: mu = rho = 1/2
    "accuracy": (0.0, 0.0),  # plain early-stop accuracy (MetaQNN)
}


def weights(cfg: RewardConfig) -> tuple[float, float]:
    """(mu, rho): the preset's, unless set explicitly."""
    mu, rho = PRESETS[cfg.preset]
    return (mu if cfg.mu is None else cfg.mu, rho if cfg.rho is None else cfg.rho)


def reward(accuracy: float, flops: float, density: float, cfg: RewardConfig) -> float:
    """eq. 7; `accuracy` in percent, `flops` per image of the whole network."""
    mu, rho = weights(cfg)
    if flops <= 0 or density <= 0:
        raise ValueError(f"reward needs positive FLOPs and density, got flops={flops}, density={density}")
    return accuracy - mu * math.log(flops / cfg.flops_unit) - rho * math.log(density)
