"""The exhaustive strategy (strategies/exhaustive.py): every distinct block of a small space once, in canonical-hash
order, checkpointed and resumable like any search."""
import numpy as np
import pytest

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.space import Space
from bqnn.config import load
from bqnn.strategies import make_strategy
from bqnn.strategies.exhaustive import MAX_CODES, count_codes, distinct_blocks
from tests.conftest import run_module, search_in_process

SIM = ["trainer.kind=simulated", "search.strategy=exhaustive", "search.blocks_per_iteration=16"]


@pytest.mark.parametrize("max_index", [2, 3, 4, 5])
def test_distinct_blocks_are_every_hash_of_the_space_once_in_hash_order(max_index):
    space = Space(max_index)
    codes = list(space.blocks())
    assert count_codes(space) == len(codes)
    blocks = distinct_blocks(space)
    hashes = [h for h, _ in blocks]
    assert hashes == sorted(set(canonical_hash(c) for c in codes))
    assert all(canonical_hash(nsc) == h and space.contains(nsc) for h, nsc in blocks)
    first = {}
    for c in codes:  # the code kept is the first the enumeration gives for its hash
        first.setdefault(canonical_hash(c), c)
    assert all(first[h] == nsc for h, nsc in blocks)
    if max_index == 5:
        assert len(blocks) == 2357 and len(codes) == 4473


def test_a_space_too_large_to_enumerate_is_refused_in_one_line(tmp_path):
    assert count_codes(Space(8)) > MAX_CODES
    r = run_module("bqnn.search", "--config", "/dev/null", "--out", str(tmp_path / "big"),
                   *[x for s in SIM for x in ("--set", s)], "--set", "space.max_index=8")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "the space (space.max_index 8) has" in r.stderr and "codes, more than 2,000,000" in r.stderr
    assert not (tmp_path / "big").exists()


def test_an_exhaustive_search_trains_each_distinct_block_exactly_once(tmp_path):
    state, c, out = search_in_process(tmp_path, "ex", [*SIM, "space.max_index=4", "pruning.record=true",
                                                       "pruning.rungs=[1,2]", "trainer.epochs=3"])
    want = [h for h, _ in distinct_blocks(Space(4))]
    assert len(c) == len(want) and (c["repeat"] == 0).all()
    assert [h.decode() for h in c["hash"]] == want  # in hash order, once each
    assert state.iterations_total == -(-len(want) // 16) and list(state.iteration_sizes[:-1]) == \
        [16] * (len(state.iteration_sizes) - 1)
    assert (c["rungs"][:, :2] > 0).all() and (c["rungs"][:, 2:] == -1).all()  # the curve is recorded


def test_a_second_seed_trains_the_same_blocks_with_other_seeds(tmp_path):
    _, a, _ = search_in_process(tmp_path, "s0", [*SIM, "space.max_index=3"])
    _, b, _ = search_in_process(tmp_path, "s1", [*SIM, "space.max_index=3", "search.seed=1"])
    assert np.array_equal(a["hash"], b["hash"])


def test_the_strategy_state_restores_and_refuses_another_space():
    cfg = load(None, [*SIM, "space.max_index=4"])
    s = make_strategy(cfg)
    arrays, attrs = s.state()
    make_strategy(cfg).load_state(arrays, attrs)
    with pytest.raises(ValueError, match="blocks, this space"):
        make_strategy(load(None, [*SIM, "space.max_index=3"])).load_state(arrays, attrs)
