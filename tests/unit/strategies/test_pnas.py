"""PNAS (strategies/pnas.py, strategies/predictor.py): rounds, the predictor, the known optimum, state round trips."""

import numpy as np

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.space import Space
from bqnn.config import load
from bqnn.stats import spearman
from bqnn.strategies import make_strategy
from bqnn.strategies.predictor import Predictor, features
from bqnn.training import simulated
from bqnn.training.result import Status
from bqnn.training.simulated import simulated_accuracy
from tests.conftest import SIM_SMALL_NET as SIM
from tests.conftest import search_in_process as search

SMALL = [*SIM, "space.max_index=5"]


def known_optimum(max_index: int = 5) -> tuple[float, set[str]]:
    """Brute force over every block of the space: the best simulated reward and the blocks that earn it."""
    top, where, distinct = simulated.known_optimum(load(None, [*SIM, f"space.max_index={max_index}"]))
    assert distinct == 2357 if max_index == 5 else distinct > 0
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
    from bqnn.strategies.qtable import QTable

    rng = np.random.default_rng(0)
    distinct = list({canonical_hash(b): b for b in Space(5).blocks()}.values())  # 2 to 4 layers
    small = [distinct[i] for i in rng.choice(len(distinct), 400, replace=False)]
    agent = QTable(Space(9), 0)
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

    from bqnn.blocks.canon import renumber
    from bqnn.blocks.code import INCEPTION_LIKE, NSCError

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
