"""The strategy interface and registry (strategies/base.py, strategies/__init__.py)."""


from bqnn.strategies import STRATEGIES
from tests.conftest import SIM_SMALL_NET as SIM
from tests.conftest import search_in_process as search

SMALL = [*SIM, "space.max_index=5"]


def test_every_strategy_implements_the_interface(tmp_path):
    for name in STRATEGIES:
        extra = ["pnas.max_size=3", "pnas.beam=4", "pnas.fit_steps=20"] if name == "pnas" else \
            ["search.blocks_per_iteration=4", "search.schedule=[[1.0, 2]]"]
        state, c, _ = search(tmp_path, name, [*SMALL, f"search.strategy={name}", *extra])
        assert state.strategy == name and state.iteration == state.iterations_total
        assert len(c) == sum(state.iteration_sizes.tolist())
