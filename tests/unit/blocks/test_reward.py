import math

import pytest

from bqnn.blocks.reward import PRESETS, reward, weights
from bqnn.config import RewardConfig


def test_presets():
    assert PRESETS["cvpr"] == (1.0, 8.0) and PRESETS["aaai"] == (0.5, 0.5)
    assert weights(RewardConfig()) == (1.0, 8.0)
    assert weights(RewardConfig(preset="aaai", rho=2.0)) == (0.5, 2.0)


def test_formula_and_units():
    cfg = RewardConfig()
    # accuracy in percent, FLOPs in GFLOPs: 60 % at 1 GFLOPs and density 1 is 60
    assert reward(60.0, 1e9, 1.0, cfg) == pytest.approx(60.0)
    # doubling FLOPs costs ln 2 points, density 1 -> 1.2 costs 8 ln 1.2 points
    assert reward(60.0, 2e9, 1.2, cfg) == pytest.approx(60.0 - math.log(2) - 8 * math.log(1.2))
    # the paper's residual-like CIFAR network (0.44 GFLOPs, density 1) scores above its inception-like one
    # at equal accuracy: -0.82 vs +0.70 points of penalty (docs/reward.md)
    assert reward(60.0, 439_764_068, 1.0, cfg) - reward(60.0, 1_008_542_820, 12 / 11, cfg) == pytest.approx(
        math.log(1_008_542_820 / 439_764_068) + 8 * math.log(12 / 11))
    with pytest.raises(ValueError):
        reward(60.0, 0, 1.0, cfg)
