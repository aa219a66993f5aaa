"""The block as a DAG (blocks/graph.py): nodes, edges, leaves, density."""
import pytest

from bqnn.blocks.code import (
    INCEPTION_LIKE,
    RESIDUAL_LIKE,
    validate,
)
from bqnn.blocks.graph import graph


def test_density_counts_input_and_output_nodes():
    g = graph(RESIDUAL_LIKE)  # in, 1..4, out; in->1, 1->2, 2->3, 1->4, 3->4, 4->out
    assert (g.nodes, g.edges, g.density, g.leaves) == (6, 6, 1.0, (4,))
    g = graph(INCEPTION_LIKE)  # in, 1..9, out; 10 layer edges + in->1 + 9->out
    assert (g.nodes, g.edges, g.leaves) == (11, 12, (9,))
    assert g.density == pytest.approx(12 / 11)
    g = graph(validate([(1, 4, 0, 0, 0), (2, 1, 1, 1, 0), (3, 1, 3, 1, 0), (4, 7, 0, 0, 0)]))
    assert (g.nodes, g.edges, g.leaves) == (5, 5, (2, 3))  # two leaves, both to the output
