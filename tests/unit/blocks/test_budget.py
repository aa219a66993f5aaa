"""BlockQNN-L (blocks/budget.py): the largest N that fits, rejection over the limits, never training over them."""
import dataclasses

import pytest

from bqnn.blocks import budget as limits
from bqnn.blocks.code import RESIDUAL_LIKE, parse
from bqnn.blocks.reward import reward
from bqnn.blocks.space import Space
from bqnn.config import ConfigError, load
from bqnn.data.shapes import dataset_shape
from bqnn.training.result import Status
from tests.conftest import SIM_SMALL_NET as SIM
from tests.conftest import search_in_process as search

LIMITED = [*SIM[:1], "network.blocks_per_stage=3", "network.filters=[16,32,64]", "space.max_index=8",
           "search.blocks_per_iteration=32", "search.schedule=[[1.0, 4]]", "search.replay_samples=8",
           "limits.params=60000"]


def _code(row) -> str:
    from bqnn.blocks.code import format_nsc, from_array

    return format_nsc(from_array(row["nsc"]))


def test_blockqnn_l_never_trains_over_the_limit_and_n_is_the_largest_that_fits(tmp_path):
    state, c, log = search(tmp_path, "L", LIMITED)
    cfg = load(None, LIMITED)
    shape = dataset_shape(cfg.data)
    trained = c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]
    rejected = c[(c["repeat"] == 0) & (c["status"] == Status.REJECTED)]
    assert len(trained) and len(rejected), "the limit should bind for some blocks and not others"
    assert (trained["params"] <= 60000).all()  # every trained network within the budget
    assert set(trained["blocks"].tolist()) >= {1, 3}  # N adapts
    for row in trained:
        nsc = parse(str(_code(row)))
        n = int(row["blocks"])
        assert 1 <= n <= 3
        def at(k: int, nsc=nsc):
            return limits.network_cost(nsc, dataclasses.replace(cfg.network, blocks_per_stage=k), *shape)

        assert at(n).params == row["params"]  # recorded at the N it was trained with
        if n < 3:
            assert at(n + 1).params > 60000  # and N is the largest that fits
    for row in rejected:  # never reached a trainer, got the failure reward
        nsc = parse(str(_code(row)))
        assert row["blocks"] == 0 and row["seconds"] == 0 and row["rank"] == -1 and row["epochs"] == 0
        one = limits.network_cost(nsc, dataclasses.replace(cfg.network, blocks_per_stage=1), *shape)
        assert one.params > 60000 and row["params"] == one.params
        assert row["reward"] == pytest.approx(reward(0.0, int(row["flops"]), float(row["density"]), cfg.reward))
        assert b"over the limits" in row["message"]
    assert "limits: params <= 60,000" in log


def test_fixed_n_rejects_instead_of_adapting():
    base = load(None, ["network.blocks_per_stage=3"])
    shape = dataset_shape(base.data)
    at = [limits.network_cost(RESIDUAL_LIKE, dataclasses.replace(base.network, blocks_per_stage=n), *shape).params
          for n in (1, 2, 3)]
    assert at[0] < at[1] < at[2]
    cfg = load(None, ["network.blocks_per_stage=3", f"limits.params={(at[1] + at[2]) // 2}",
                      "limits.adaptive_blocks=false"])
    assert limits.fit(RESIDUAL_LIKE, cfg.network, cfg.limits, *shape).blocks == 0
    adaptive = dataclasses.replace(cfg.limits, adaptive_blocks=True)
    assert limits.fit(RESIDUAL_LIKE, cfg.network, adaptive, *shape) == (2, limits.network_cost(
        RESIDUAL_LIKE, dataclasses.replace(base.network, blocks_per_stage=2), *shape))


def test_flops_limit():
    cfg = load(None, ["network.blocks_per_stage=4"])
    shape = dataset_shape(cfg.data)
    full = limits.network_cost(RESIDUAL_LIKE, cfg.network, *shape)
    lim = dataclasses.replace(cfg.limits, flops=full.flops - 1)
    fit = limits.fit(RESIDUAL_LIKE, cfg.network, lim, *shape)
    assert fit.blocks == 3 and fit.cost.flops < full.flops


def test_real_trainer_builds_the_network_at_the_adapted_n():
    import torch

    from bqnn.data.splits import Splits
    from bqnn.training.early_stop import EarlyStopTrainer

    cfg = load(None, ["network.blocks_per_stage=3", "network.filters=[8,16,32]", "trainer.epochs=1"])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    splits = Splits(x, y, x[:32], y[:32], 10, (0.0,), (1.0,))
    t = EarlyStopTrainer(cfg, torch.device("cpu"), splits)
    shape = (1, 28, 10)
    for n in (1, 3):
        t.train(RESIDUAL_LIKE, 0, 1, blocks_per_stage=n)
        want = limits.network_cost(RESIDUAL_LIKE, dataclasses.replace(cfg.network, blocks_per_stage=n), *shape)
        assert t.model_params == want.params
    t.train(RESIDUAL_LIKE, 0, 1)  # 0: as configured
    assert t.model_params == limits.network_cost(RESIDUAL_LIKE, cfg.network, *shape).params


def test_bad_limits_are_config_errors():
    with pytest.raises(ConfigError, match="limits.params"):
        load(None, ["limits.params=-1"])
    with pytest.raises(ConfigError, match="pnas.max_size"):
        load(None, ["search.strategy=pnas", "space.max_index=6", "pnas.max_size=6"])
    with pytest.raises(ConfigError, match="dispatch"):
        load(None, ["search.strategy=pnas", "search.dispatch=async"])


@pytest.mark.parametrize("framework,filters,n_max,shape", [("cifar", "[32,64,128]", 4, (3, 32, 100)),
                                                           ("imagenet", "[64,128,256,512]", 3, (3, 224, 1000)),
                                                           ("cifar", "[16,24,40]", 5, (1, 28, 10))])
def test_limits_fit_matches_costing_every_n(framework, filters, n_max, shape):
    """fit evaluates the network twice and takes the cost as affine in N; brute force costs every N."""
    from bqnn.blocks.cost import network_cost
    from bqnn.strategies.qtable import QTable

    cfg = load(None, [f"network.framework={framework}", f"network.filters={filters}",
                      f"network.blocks_per_stage={n_max}"])
    agent = QTable(Space(12), seed=3)
    for _ in range(15):
        nsc = agent.sample(1.0)
        costs = {n: network_cost(nsc, dataclasses.replace(cfg.network, blocks_per_stage=n), *shape)
                 for n in range(1, n_max + 1)}
        for n_limit in range(1, n_max + 1):  # limits between the costs at n_limit and n_limit + 1
            lim = dataclasses.replace(cfg.limits, params=costs[n_limit].params + 1, flops=0)
            n, cost = limits.fit(nsc, cfg.network, lim, *shape)
            assert n == n_limit and cost == costs[n_limit]
        lim = dataclasses.replace(cfg.limits, params=costs[1].params - 1, flops=0)
        assert limits.fit(nsc, cfg.network, lim, *shape).blocks == 0
