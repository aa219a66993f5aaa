"""Regularized evolution (strategies/evolution.py): valid mutations, an aging population, resumable state."""
import numpy as np
import pytest

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import validate
from bqnn.blocks.space import Space
from bqnn.config import ConfigError, load
from bqnn.strategies import make_strategy
from bqnn.strategies.evolution import mutate
from bqnn.strategies.qtable import QTable
from bqnn.training.simulated import simulated_accuracy
from tests.conftest import search_in_process

EVO = ["trainer.kind=simulated", "search.strategy=evolution", "space.max_index=8", "search.blocks_per_iteration=8",
       "search.schedule=[[1.0, 12]]", "evolution.population=12", "evolution.sample=4"]


@pytest.mark.parametrize("max_index,layers,explore", [(8, "pcc", "uniform"), (23, "pcc", "by_type"),
                                                      (6, "separate", "uniform"), (5, "pcc", "by_type")])
def test_mutations_are_always_valid_blocks_of_the_space_and_differ_from_their_parent(max_index, layers, explore):
    space = Space(max_index, layers=layers)
    sampler = QTable(space, 1, explore=explore)
    rng = np.random.default_rng(2)
    kinds = {"op": 0, "pred": 0}
    for _ in range(1500):
        parent = sampler.sample(1.0)
        child = mutate(parent, space, rng)
        if child is None:  # only blocks without a mutable layer have none
            assert len(parent) <= 2 or (len(parent) == 3 and not space.start_identity)
            continue
        validate(child, max_index)
        assert space.contains(child) and canonical_hash(child) != canonical_hash(parent)
        assert len(child) == len(parent) and child[0] == parent[0]  # the start identity stays
        diff = [i for i, (a, b) in enumerate(zip(parent, child, strict=True)) if a != b]
        assert len(diff) == 1  # one layer changed
        a, b = parent[diff[0]], child[diff[0]]
        kinds["op" if (a.type, a.kernel) != (b.type, b.kernel) else "pred"] += 1
    assert min(kinds.values()) > 200, kinds  # both kinds of mutation happen


def test_the_population_ages_the_oldest_dies_whatever_its_reward():
    cfg = load(None, EVO)
    s = make_strategy(cfg)
    first = s.propose(0, 12)
    for k, nsc in enumerate(first):
        s.observe(nsc, 100.0 if k == 0 else 1.0)  # the oldest is by far the best
    assert [n for n, _ in s.population] == first
    children = s.propose(1, 8)
    assert all(validate(c) for c in children)
    for c in children[:1]:
        s.observe(c, 0.0)
    assert len(s.population) == 12 and s.population[0][0] == first[1]  # the best, being oldest, died
    assert max(r for _, r in s.population) == 1.0


def test_tournaments_pick_the_best_of_the_sample():
    cfg = load(None, [*EVO, "evolution.sample=12"])  # the whole population: always the best
    s = make_strategy(cfg)
    blocks = s.propose(0, 12)
    for k, nsc in enumerate(blocks):
        s.observe(nsc, float(k))
    best = blocks[-1]
    for child in s.propose(1, 8):
        diff = [i for i, (a, b) in enumerate(zip(best, child, strict=False)) if a != b]
        assert len(child) == len(best) and len(diff) == 1  # a mutation of the best


def test_evolution_resumes_equal_to_uninterrupted():
    cfg = load(None, EVO)

    def play(s, start, stop):
        for it in range(start, stop):
            for b in s.propose(it, 8):
                s.observe(b, simulated_accuracy(b))
            s.end_iteration(it)

    a = make_strategy(cfg)
    play(a, 0, 6)
    b = make_strategy(cfg)
    play(b, 0, 3)
    arrays, attrs = b.state()
    c = make_strategy(cfg)
    c.load_state({k: v.copy() for k, v in arrays.items()}, dict(attrs))
    play(c, 3, 6)
    (sa, aa), (sc, ac) = a.state(), c.state()
    assert aa == ac and all(np.array_equal(sa[k], sc[k]) for k in sa)


def test_an_evolution_search_runs_through_bqnn_search(tmp_path):
    """The strategy through bqnn.search: its budget is the schedule's, its population is in search.h5 (resumed
    after SIGKILLs under MPI: tests/mpi/test_strategies_mpi.py)."""
    state, c, _ = search_in_process(tmp_path, "evo", EVO)
    assert len(c) == 96 and state.strategy == "evolution"
    assert set(state.strategy_arrays) == {"population_nsc", "population_reward"}
    assert len(state.strategy_arrays["population_reward"]) == 12


def test_the_config_checks_the_tournament_size():
    with pytest.raises(ConfigError, match="evolution.sample: must be at most evolution.population"):
        load(None, [*EVO, "evolution.sample=13"])
