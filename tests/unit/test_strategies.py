"""BlockQNN-L limits, the PNAS strategy and its predictor, and the strategy interface they share with
Q-learning and random search. Searches run in this process (world size 1, simulated trainer)."""
import contextlib
import dataclasses
import io

import numpy as np
import pytest

from bqnn import checkpoint, limits
from bqnn.config import ConfigError, load
from bqnn.data import dataset_shape
from bqnn.nsc import RESIDUAL_LIKE, canonical_hash, parse
from bqnn.protocol import Status
from bqnn.reward import reward
from bqnn.search import main
from bqnn import simulated
from bqnn.simulated import simulated_accuracy
from bqnn.space import Space
from bqnn.stats import spearman
from bqnn.strategies import STRATEGIES, make_strategy
from bqnn.strategies.predictor import Predictor, features

SIM = ["trainer.kind=simulated", "network.blocks_per_stage=1", "network.filters=[8,16,32]"]


def search(tmp_path, name, sets, config="/dev/null"):
    out = tmp_path / name
    args = ["--config", config, "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    assert code == 0, buf.getvalue()
    state, _, _ = checkpoint.load(out)
    c = state.candidates
    return state, c[np.argsort(c["id"], kind="stable")], buf.getvalue()


# ------------------------------------------------------------------ limits

LIMITED = [*SIM[:1], "network.blocks_per_stage=3", "network.filters=[16,32,64]", "space.max_index=8",
           "search.blocks_per_iteration=32", "search.schedule=[[1.0, 4]]", "search.replay_samples=8",
           "limits.params=60000"]


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
        at = lambda k: limits.network_cost(nsc, dataclasses.replace(cfg.network, blocks_per_stage=k), *shape)  # noqa: E731
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


def _code(row) -> str:
    from bqnn.nsc import format_nsc, from_array

    return format_nsc(from_array(row["nsc"]))


def test_fixed_n_rejects_instead_of_adapting():
    base = load(None, ["network.blocks_per_stage=3"])
    shape = dataset_shape(base.data)
    at = [limits.network_cost(RESIDUAL_LIKE, dataclasses.replace(base.network, blocks_per_stage=n), *shape).params
          for n in (1, 2, 3)]
    assert at[0] < at[1] < at[2]
    cfg = load(None, ["network.blocks_per_stage=3", f"limits.params={(at[1] + at[2]) // 2}", "limits.adaptive_blocks=false"])
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

    from bqnn.data import Splits
    from bqnn.trainer import EarlyStopTrainer

    cfg = load(None, ["network.blocks_per_stage=3", "network.filters=[8,16,32]", "trainer.epochs=1"])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    splits = Splits(x, y, x[:32], y[:32], 10, (0.0,), (1.0,))
    t = EarlyStopTrainer(cfg, torch.device("cpu"), splits)
    shape = (1, 28, 10)
    for n in (1, 3):
        t.train(RESIDUAL_LIKE, 0, 1, blocks=n)
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


# --------------------------------------------------------------------- PNAS

SMALL = [*SIM, "space.max_index=5"]


def known_optimum(max_index: int = 5) -> tuple[float, set[str]]:
    """Brute force over every block of the space: the best simulated reward and the blocks that earn it."""
    top, where, distinct = simulated.known_optimum(load(None, [*SIM, f"space.max_index={max_index}"]))
    assert distinct == 2356 if max_index == 5 else distinct > 0
    return top, where


def trainings_to_reach(c: np.ndarray, target: float) -> int | None:
    trained = c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]
    hits = np.nonzero(trained["reward"] >= target)[0]
    return int(hits[0]) + 1 if len(hits) else None


def test_pnas_finds_the_known_optimum_with_fewer_trainings_than_random(tmp_path):
    top, where = known_optimum()
    assert len(where) >= 1
    budget = 640
    for seed in (0, 1, 2):
        _, p, log = search(tmp_path, f"pnas{seed}", [*SMALL, "search.strategy=pnas", "pnas.max_size=4", "pnas.beam=8",
                                                     f"search.seed={seed}"])
        _, r, _ = search(tmp_path, f"random{seed}", [*SMALL, "search.strategy=random", "search.blocks_per_iteration=64",
                                                     f"search.schedule=[[1.0, {budget // 64}]]", f"search.seed={seed}"])
        n_pnas, n_random = trainings_to_reach(p, top), trainings_to_reach(r, top)
        assert n_pnas is not None, f"seed {seed}: PNAS missed the optimum {top:.3f} (best {p['reward'].max():.3f})"
        assert p["hash"][p["reward"] == p["reward"].max()][0].decode() in where
        random_cost = n_random if n_random is not None else len(r[r["repeat"] == 0]) + 1
        assert n_pnas < random_cost, (seed, n_pnas, n_random)
        assert len(p) == 8 + 8 + 8  # round 0: all 8 one-layer blocks; then the beam
        assert "size 4, predictor Spearman" in log


def test_pnas_rounds_grow_by_one_layer_from_the_beam(tmp_path):
    state, c, _ = search(tmp_path, "grow", [*SIM, "space.max_index=8", "search.strategy=pnas", "pnas.max_size=6",
                                            "pnas.beam=6", "pnas.fit_steps=50"])
    assert state.iteration == state.iterations_total == 5
    assert state.iteration_sizes.tolist() == [8, 6, 6, 6, 6]
    layers = [int(np.count_nonzero((row["nsc"].any(1)) & (row["nsc"][:, 1] != 7))) for row in c]
    assert layers == [2] * 8 + [3] * 6 + [4] * 6 + [5] * 6 + [6] * 6
    assert len(set(c["hash"].tolist())) == len(c)  # never the same block twice
    for it in range(1, 5):  # every block of round r is a block of round r-1 plus one layer
        prev = {tuple(map(tuple, row["nsc"][: it + 1])) for row in c if row["iteration"] == it - 1}
        for row in c[c["iteration"] == it]:
            assert tuple(map(tuple, row["nsc"][: it + 1])) in prev
    rho = state.strategy_arrays["round_spearman"]
    assert np.isnan(rho[0]) and np.isfinite(rho[1:]).all() and (np.abs(rho[1:]) <= 1).all()
    assert state.strategy_arrays["beam_nsc"].shape[0] == 6
    assert state.strategy_arrays["predictor_w1"].shape[0] == 5  # the ensemble


def test_predictor_learns_and_generalises_to_larger_blocks():
    from bqnn.agent import QLearningAgent

    rng = np.random.default_rng(0)
    distinct = list({canonical_hash(b): b for b in Space(5).blocks()}.values())  # 2 to 4 layers
    small = [distinct[i] for i in rng.choice(len(distinct), 400, replace=False)]
    agent = QLearningAgent(Space(9), 0)
    large = list({canonical_hash(b): b for b in (agent.sample(1.0) for _ in range(400)) if len(b) > 5}.values())
    assert len(large) > 100
    pred = Predictor(ensemble=5, hidden=64, steps=300, lr=0.005, seed=0)
    pred.fit(np.stack([features(b) for b in small]), np.array([simulated_accuracy(b) for b in small]), 0)
    guess = pred.predict(np.stack([features(b) for b in large]))
    rho = spearman(guess, [simulated_accuracy(b) for b in large])
    assert rho > 0.5, rho  # ranks unseen, larger blocks well
    shuffled = rng.permutation([simulated_accuracy(b) for b in small])
    pred.fit(np.stack([features(b) for b in small]), shuffled, 0)  # no signal: no skill
    assert abs(spearman(pred.predict(np.stack([features(b) for b in large])),
                        [simulated_accuracy(b) for b in large])) < rho - 0.3


def test_features_are_the_same_for_the_same_block_numbered_differently():
    import itertools

    from bqnn.nsc import INCEPTION_LIKE, NSCError, renumber

    n = len(INCEPTION_LIKE) - 1
    variants = []
    for order in itertools.permutations(range(1, n + 1)):
        try:
            variants.append(renumber(INCEPTION_LIKE, order, swap=[n]))
        except NSCError:
            pass
    variants = [v for v in variants if v != INCEPTION_LIKE]
    assert variants
    for other in variants:
        assert canonical_hash(other) == canonical_hash(INCEPTION_LIKE)
        assert np.array_equal(features(other), features(INCEPTION_LIKE))


def test_pnas_state_round_trip_continues_identically():
    cfg = load(None, [*SIM, "space.max_index=7", "search.strategy=pnas", "pnas.max_size=5", "pnas.beam=5",
                      "pnas.fit_steps=40"])

    def play(s, start, stop):
        for it in range(start, stop):
            for b in s.propose(it, 64):
                s.observe(b, simulated_accuracy(b))
            s.end_iteration(it)

    a = make_strategy(cfg)
    play(a, 0, 4)
    b = make_strategy(cfg)
    play(b, 0, 2)
    arrays, attrs = b.state()
    c = make_strategy(cfg)
    c.load_state({k: v.copy() for k, v in arrays.items()}, dict(attrs))
    play(c, 2, 4)
    sa, sc = a.state()[0], c.state()[0]
    assert sa.keys() == sc.keys()
    for k in sa:
        assert np.array_equal(sa[k], sc[k], equal_nan=True), k


def test_every_strategy_implements_the_interface(tmp_path):
    for name in STRATEGIES:
        extra = ["pnas.max_size=3", "pnas.beam=4", "pnas.fit_steps=20"] if name == "pnas" else \
            ["search.blocks_per_iteration=4", "search.schedule=[[1.0, 2]]"]
        state, c, _ = search(tmp_path, name, [*SMALL, f"search.strategy={name}", *extra])
        assert state.strategy == name and state.iteration == state.iterations_total
        assert len(c) == sum(state.iteration_sizes.tolist())


@pytest.mark.parametrize("framework,filters,n_max,shape", [("cifar", "[32,64,128]", 4, (3, 32, 100)),
                                                           ("imagenet", "[64,128,256,512]", 3, (3, 224, 1000)),
                                                           ("cifar", "[16,24,40]", 5, (1, 28, 10))])
def test_limits_fit_matches_costing_every_n(framework, filters, n_max, shape):
    """fit evaluates the network twice and takes the cost as affine in N; brute force costs every N."""
    from bqnn.agent import QLearningAgent
    from bqnn.network import network_cost

    cfg = load(None, [f"network.framework={framework}", f"network.filters={filters}", f"network.blocks_per_stage={n_max}"])
    agent = QLearningAgent(Space(12), seed=3)
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
