"""The report's figures (results/plots.py) read at every size: drawn from a run of one iteration, one stopped part-way
and a finished one, each checked for what it must show (markers, a readable range, whole-number ticks) and what it
must not (a correlation of fewer than 3 points, a top-5 of fewer than 5 blocks); block drawings with layer indices
and fewer crossings (blocks/drawing.py)."""
import numpy as np
import pytest

from bqnn.blocks.code import INCEPTION_LIKE, RESIDUAL_LIKE
from bqnn.blocks.drawing import Drawing, Node, crossings, drawing
from bqnn.blocks.space import Space
from bqnn.results import plots
from bqnn.results.summary import curves, training_curves
from bqnn.strategies.qtable import QTable
from tests.conftest import search_in_process

SIM = ["trainer.kind=simulated", "search.blocks_per_iteration=4", "space.max_index=7", "search.replay_samples=4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("figures")
    one = search_in_process(base, "one", [*SIM, "search.schedule=[[1.0, 1]]"])[0]
    finished = search_in_process(base, "finished", [*SIM, "search.schedule=[[1.0, 3], [0.3, 3]]"])[0]
    partial = finished.__class__(**{**finished.__dict__, "iteration": 2})  # as if stopped after 2 of 6
    return {"one": one, "partial": partial, "finished": finished}


def _integer(ticks) -> bool:
    return all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize("which", ["one", "partial", "finished"])
def test_the_search_figure_shows_every_iteration_it_has(runs, which):
    state = runs[which]
    cv = curves(state)
    fig = plots.search_plot(cv["iteration"], cv["epsilon"], cv["mean"], cv["top1"], cv["top5"], "test")
    ax = fig.axes[0]
    assert len(cv["iteration"]) == state.iteration
    assert all(line.get_marker() == "o" for line in ax.lines)  # a lone iteration is a point, not nothing
    assert _integer(ax.get_xticks()) and _integer([t for t in ax.get_xticks() if ax.get_xlim()[0] <= t])
    lo, hi = ax.get_ylim()
    assert hi - lo >= 2.0  # never a scale of 0.96-1.04 around one value
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert ("top-5" in legend) == bool(np.isfinite(cv["top5"]).any())
    if which == "one":  # 4 blocks: no top-5 yet, and the figure says it shows one iteration
        assert not np.isfinite(cv["top5"]).any() and "(1 iteration complete)" in ax.get_title()


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_the_verification_figure_prints_no_correlation_under_three_points(n):
    rng = np.random.default_rng(n)
    reward, early, verified = rng.uniform(50, 80, n), rng.uniform(50, 80, n), rng.uniform(60, 90, n)
    fig = plots.verify_plot(reward, verified, early, 0.5 if n > 1 else None, 0.4 if n > 1 else None)
    ax = fig.axes[0]
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert ("Spearman" in legend) == (n >= 3), legend
    assert ("no correlation" in ax.get_title()) == (n < 3)


@pytest.mark.parametrize("which", ["one", "partial", "finished"])
def test_the_compare_figure_has_no_top5_before_five_blocks_and_names_what_differs(runs, which):
    top1, top5 = training_curves(runs[which])
    assert np.isnan(top5[:4]).all() and np.isfinite(top5[4:]).all()
    assert (np.diff(top5[4:]) >= 0).all()  # once defined, the top-5 mean only rises
    fig = plots.compare_plot([("a", top1, top5), ("b", top1, top5)], note="data.resize differ")
    ax = fig.axes[0]
    assert "not comparable: data.resize differ" in ax.get_title()
    assert _integer(ax.get_xticks())
    assert plots.compare_plot([("a", top1, top5)]).axes[0].get_title() == "best blocks found so far"


def test_block_drawings_have_layer_indices_and_fewer_crossings():
    fig = plots.block_plot(INCEPTION_LIKE)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"Input", "1: Identity", "3: Conv 3x3", "6: Concat", "9: Concat", "Output"} <= texts
    assert crossings(drawing(INCEPTION_LIKE)) == 0 and crossings(drawing(RESIDUAL_LIKE)) == 0
    # against the plain index order of each row, over 300 random blocks of the paper's space
    sampler = QTable(Space(12), seed=3)
    ours = plain = 0
    for _ in range(300):
        d = drawing(sampler.sample(1.0))
        ours += crossings(d)
        rows: dict[int, list[Node]] = {}
        for v in d.nodes:
            rows.setdefault(v.row, []).append(v)
        indexed = [v._replace(x=k) for row in rows.values() for k, v in enumerate(sorted(row, key=lambda v: v.id))]
        plain += crossings(Drawing(indexed, d.edges, d.rows, d.width))
    assert ours < 0.8 * plain, (ours, plain)
