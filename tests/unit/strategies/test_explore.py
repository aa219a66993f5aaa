"""The two exploration rules (blocks/space.random_action, search.explore): legal blocks only, and the terminal
drawn with the documented probability."""
import math

import numpy as np
import pytest

from bqnn.blocks.code import Op, validate
from bqnn.blocks.space import Space
from bqnn.strategies.qtable import QTable


@pytest.mark.parametrize("rule", ["uniform", "by_type"])
def test_both_exploration_rules_propose_only_legal_blocks(rule):
    for space in (Space(7), Space(23), Space(6, layers="separate"), Space(5, start_identity=False)):
        agent = QTable(space, 3, explore=rule)
        for _ in range(400):
            nsc = agent.sample(1.0)
            assert space.contains(nsc)
            validate(nsc, space.max_index)


def test_by_type_draws_the_terminal_with_the_documented_probability():
    """by_type: the terminal is one of the layer types offered at that index, each equally likely: 1/5 at index 2
    (no join has two earlier layers yet), 1/7 from index 3 on (conv, max pool, avg pool, identity, add, concat,
    terminal); uniform: 1 in the number of legal actions (1/9 at 2, 1/19 at 3, 1/31 at 4 for max_index 23)."""
    space = Space(23)
    assert space.terminal_probability(2) == 1 / 5
    assert all(space.terminal_probability(i) == 1 / 7 for i in range(3, 23))
    assert space.terminal_probability(23) == 1.0
    assert [space.terminal_probability(i, "uniform") for i in (2, 3, 4)] == [1 / 9, 1 / 19, 1 / 31]
    # drawn: the layer at which random blocks end, over 20,000 blocks, against the geometric law of those rates
    agent = QTable(space, 4, explore="by_type")
    n = 20_000
    ends = np.array([len(agent.sample(1.0)) for _ in range(n)])  # the terminal's index
    for index in (2, 3, 4):
        p = space.terminal_probability(index)
        reach = np.prod([1 - space.terminal_probability(i) for i in range(2, index)])
        expected = n * reach * p
        sd = math.sqrt(n * reach * p * (1 - reach * p))
        assert abs((ends == index).sum() - expected) < 5 * sd, (index, (ends == index).sum(), expected)
    law = [np.prod([1 - space.terminal_probability(i) for i in range(2, k)]) * space.terminal_probability(k)
           for k in range(2, 24)]
    mean = sum(k * q for k, q in zip(range(2, 24), law, strict=True))  # 7.4 rows, the terminal included
    sd = math.sqrt(sum((k - mean) ** 2 * q for k, q in zip(range(2, 24), law, strict=True)) / n)
    assert abs(ends.mean() - mean) < 5 * sd and abs(sum(law) - 1) < 1e-12
    assert all(nsc_end.type == Op.TERMINAL for nsc_end in [agent.sample(1.0)[-1] for _ in range(10)])


def test_the_paper_jobs_explore_by_type_and_the_others_uniformly():
    """The paper jobs draw random actions by type (Fig. 8(a) and Appendix B, bench/README.md); the demo and the
    landscape jobs keep the default, the uniform draw their figures were measured with."""
    from bqnn.config import load
    from tests.conftest import ROOT

    for job in ("cifar100_paper", "cifar100_paper_L", "cifar100_aaai", "cifar100_pruned"):
        assert load(ROOT / "jobs" / f"{job}.toml").search.explore == "by_type", job
    for job in ("demo", "landscape"):
        assert load(ROOT / "jobs" / f"{job}.toml").search.explore == "uniform", job
