import pytest

from bqnn.blocks.code import MAX_INDEX, Layer, Op, terminal, validate
from bqnn.blocks.space import START, Space
from bqnn.strategies.qtable import QTable


def test_action_counts_follow_table1():
    s = Space()
    assert s.actions(START) == (Layer(1, 4, 0, 0, 0),)  # start_identity: the paper's examples
    # index 2, one earlier layer: conv x3 + max x2 + avg x2 + identity, + terminal
    assert len(s.actions(Layer(1, 4, 0, 0, 0))) == 8 + 1
    # index 3: 8 single-input choices per pred (2 preds) + add(1,2) + concat(1,2) + terminal
    assert len(s.actions(Layer(2, 1, 3, 1, 0))) == 16 + 2 + 1
    # index t: 8(t-1) + 2 * C(t-1, 2) + 1
    for t in range(2, MAX_INDEX):
        assert len(s.layers_at(t)) == 8 * (t - 1) + (t - 1) * (t - 2)
    assert s.actions(Layer(MAX_INDEX - 1, 1, 3, 1, 0)) == (terminal(MAX_INDEX),)  # depth limit: only the terminal
    free = Space(start_identity=False)
    assert sorted(a.type for a in free.actions(START)) == [1, 1, 1, 2, 2, 3, 3, 4]


def test_every_offered_action_leads_to_a_valid_block():
    for space in (Space(), Space(6, start_identity=False)):
        prefix = [layer for layer in space.layers_at(1)[:1]]
        for index in range(2, space.max_index + 1):
            for action in space.actions(prefix[-1]):
                rows = prefix + [action] + ([] if action.type == Op.TERMINAL else [terminal(index + 1)])
                if len(rows) > space.max_index:
                    continue  # a non-terminal at max_index - 1 needs the terminal at max_index: checked below
                validate(rows, space.max_index)
            if index < space.max_index:
                prefix.append(space.layers_at(index)[index % len(space.layers_at(index))])
        assert space.actions(prefix[-1]) == (terminal(space.max_index),)
        validate(prefix + [terminal(space.max_index)], space.max_index)


def test_ten_thousand_random_blocks_are_valid_and_within_depth():
    agent = QTable(Space(), seed=7)
    lengths = set()
    for _ in range(10_000):
        nsc = agent.sample(1.0)
        validate(nsc)  # raises on any invalid block
        assert agent.space.contains(nsc)
        lengths.add(len(nsc))
    assert max(lengths) <= MAX_INDEX and min(lengths) >= 2
    assert len(lengths) > 10  # short and long blocks both occur


def test_small_max_index():
    agent = QTable(Space(4), seed=1)
    for _ in range(500):
        assert len(validate(agent.sample(1.0), 4)) <= 4
    with pytest.raises(ValueError):
        Space(1)


@pytest.mark.parametrize("start_identity,layers", [(True, "pcc"), (False, "pcc"), (True, "separate")])
def test_blocks_are_exactly_what_the_actions_build(start_identity, layers):
    """Space.blocks (the brute force behind known optima) enumerates every block the agent can sample, and
    nothing else: the start identity followed by the terminal included."""
    space = Space(5, start_identity, layers)

    def walk(state, rows):
        for a in space.actions(state):
            if a.type == 7:
                yield (*rows, a)
            else:
                yield from walk(a, (*rows, a))

    from bqnn.blocks.space import START

    assert sorted(space.blocks()) == sorted(walk(START, ()))
