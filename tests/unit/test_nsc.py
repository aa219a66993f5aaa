import itertools
import random

import numpy as np
import pytest

from bqnn.nsc import (INCEPTION_LIKE, MAX_INDEX, OPS, RESIDUAL_LIKE, NSCError, Op, canonical_hash, format_nsc,
                      from_array, graph, parse, renumber, to_array, validate)
from bqnn.space import Space

BASE = [(1, 4, 0, 0, 0), (2, 1, 3, 1, 0)]  # a valid prefix: identity, conv reading it


@pytest.mark.parametrize("op,kernel", [(op, k) for op, spec in OPS.items() if op != Op.TERMINAL for k in spec.kernels])
def test_every_row_of_table1_is_accepted(op, kernel):
    pred2 = 2 if OPS[op].arity == 2 else 0
    nsc = validate(BASE + [(3, int(op), kernel, 1, pred2), (4, 7, 0, 0, 0)])
    assert nsc[2].type == op and nsc[2].kernel == kernel


def test_layer1_and_terminal_forms():
    for op in (Op.CONV, Op.MAX_POOL, Op.AVG_POOL, Op.IDENTITY):
        k = OPS[op].kernels[-1]
        assert validate([(1, int(op), k, 0, 0), (2, 7, 0, 0, 0)])[0].type == op


@pytest.mark.parametrize("rows,message", [
    ([], "empty code"),
    ([(1, 4, 0, 0, 0)], "last row must be the terminal"),
    ([(1, 4, 0, 0, 0), (3, 7, 0, 0, 0)], "row 2 (3,7,0,0,0): index must be 2"),
    (BASE + [(3, 8, 0, 1, 0), (4, 7, 0, 0, 0)], "type 8 is not one of 1..7"),
    (BASE + [(3, 0, 0, 1, 0), (4, 7, 0, 0, 0)], "type 0 is not one of 1..7"),
    (BASE + [(3, 1, 2, 1, 0), (4, 7, 0, 0, 0)], "kernel 2 is not allowed for convolution (allowed: 1, 3, 5)"),
    (BASE + [(3, 2, 5, 1, 0), (4, 7, 0, 0, 0)], "kernel 5 is not allowed for max pooling (allowed: 1, 3)"),
    (BASE + [(3, 3, 0, 1, 0), (4, 7, 0, 0, 0)], "kernel 0 is not allowed for average pooling (allowed: 1, 3)"),
    (BASE + [(3, 4, 1, 1, 0), (4, 7, 0, 0, 0)], "kernel 1 is not allowed for identity (allowed: 0)"),
    (BASE + [(3, 5, 3, 1, 2), (4, 7, 0, 0, 0)], "kernel 3 is not allowed for elemental add"),
    (BASE + [(3, 1, 3, 3, 0), (4, 7, 0, 0, 0)], "row 3 (3,1,3,3,0): pred1 must be in 1..2"),
    (BASE + [(3, 1, 3, 0, 0), (4, 7, 0, 0, 0)], "pred1 must be in 1..2"),
    ([(1, 4, 0, 1, 0), (2, 7, 0, 0, 0)], "layer 1 reads the block input, so pred1 must be 0"),
    (BASE + [(3, 1, 3, 1, 2), (4, 7, 0, 0, 0)], "pred2 must be 0 for convolution"),
    (BASE + [(3, 5, 0, 1, 0), (4, 7, 0, 0, 0)], "pred2 of elemental add must be in 1..2"),
    (BASE + [(3, 6, 0, 1, 3), (4, 7, 0, 0, 0)], "pred2 of concat must be in 1..2"),
    (BASE + [(3, 6, 0, 2, 2), (4, 7, 0, 0, 0)], "pred1 and pred2 of concat must be different layers"),
    ([(1, 5, 0, 0, 0), (2, 7, 0, 0, 0)], "elemental add needs two earlier layers"),
    (BASE + [(3, 7, 0, 1, 0)], "terminal must have pred1 = pred2 = 0"),
    ([(1, 7, 0, 0, 0)], "at least one layer before the terminal"),
    (BASE + [(3, 7, 0, 0, 0), (4, 1, 1, 1, 0)], "nothing may follow the terminal"),
    ([(1, 4, 0, 0)], "an NSC row is 5 integers"),
    ([(1, 4, 0, 0, 0.5), (2, 7, 0, 0, 0)], "an NSC row is 5 integers"),
])
def test_each_rule_violation_is_rejected_with_its_message(rows, message):
    with pytest.raises(NSCError) as e:
        validate(rows)
    assert message in str(e.value)


def test_max_index_is_enforced():
    rows = [(1, 4, 0, 0, 0)] + [(i, 1, 3, i - 1, 0) for i in range(2, 23)] + [(23, 7, 0, 0, 0)]
    assert len(validate(rows)) == MAX_INDEX == 23
    too_long = rows[:-1] + [(23, 1, 3, 22, 0), (24, 7, 0, 0, 0)]
    with pytest.raises(NSCError, match=r"row 24 .*index must be in 1..23"):
        validate(too_long)
    with pytest.raises(NSCError, match="index must be in 1..5"):
        validate(rows, max_index=5)


def test_text_form_is_the_papers():
    text = "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]"
    assert format_nsc(parse(text)) == text
    assert parse("Codes = [(1,4,0,0,0), (2,1,3,1,0), (3,1,3,2,0), (4,5,0,1,3), (5,7,0,0,0)]") == RESIDUAL_LIKE
    assert parse(" [ ( 1, 4,0,0,0 ) ,(2,7,0,0,0)] ") == validate([(1, 4, 0, 0, 0), (2, 7, 0, 0, 0)])
    for bad in ["(1,4,0,0,0)", "[(1,4,0,0,0),(2,7,0,0)]", "[(1,4,0,0,0)(2,7,0,0,0)x]", "[]"]:
        with pytest.raises(NSCError):
            parse(bad)


def _random_blocks(n, max_index=MAX_INDEX, seed=0):
    from bqnn.agent import QLearningAgent

    agent = QLearningAgent(Space(max_index), seed=seed)
    return [agent.sample(1.0) for _ in range(n)]


def test_text_array_text_round_trips():
    for nsc in [INCEPTION_LIKE, RESIDUAL_LIKE] + _random_blocks(300):
        arr = to_array(nsc)
        assert arr.shape == (MAX_INDEX, 5) and arr.dtype == np.int16
        assert not arr[len(nsc):].any()
        back = from_array(arr)
        assert back == nsc
        assert parse(format_nsc(back)) == nsc


def test_from_array_rejects_rows_after_padding_and_bad_shapes():
    arr = to_array(RESIDUAL_LIKE)
    arr[7] = (8, 1, 1, 1, 0)
    with pytest.raises(NSCError, match="non-zero rows follow"):
        from_array(arr)
    with pytest.raises(NSCError, match="shape"):
        from_array(np.zeros((23, 4), np.int16))


def test_density_counts_input_and_output_nodes():
    g = graph(RESIDUAL_LIKE)  # in, 1..4, out; in->1, 1->2, 2->3, 1->4, 3->4, 4->out
    assert (g.nodes, g.edges, g.density, g.leaves) == (6, 6, 1.0, (4,))
    g = graph(INCEPTION_LIKE)  # in, 1..9, out; 10 layer edges + in->1 + 9->out
    assert (g.nodes, g.edges, g.leaves) == (11, 12, (9,))
    assert g.density == pytest.approx(12 / 11)
    g = graph(validate([(1, 4, 0, 0, 0), (2, 1, 1, 1, 0), (3, 1, 3, 1, 0), (4, 7, 0, 0, 0)]))
    assert (g.nodes, g.edges, g.leaves) == (5, 5, (2, 3))  # two leaves, both to the output


def _topological_orders(nsc, limit=200):
    layers = [l for l in nsc if l.type != 7]
    preds = {l.index: {p for p in (l.pred1, l.pred2) if p} for l in layers}
    out = []

    def rec(order, left):
        if len(out) >= limit:
            return
        if not left:
            out.append(list(order))
            return
        for v in sorted(left):
            if preds[v] <= set(order):
                order.append(v)
                rec(order, left - {v})
                order.pop()

    rec([], set(preds))
    return out


def test_hash_equal_for_renumbered_and_swapped_variants():
    for nsc in (INCEPTION_LIKE, RESIDUAL_LIKE):
        h = canonical_hash(nsc)
        orders = _topological_orders(nsc)
        assert len(orders) > (100 if nsc is INCEPTION_LIKE else 0)  # the residual chain has one order
        joins = [l.index for l in nsc if l.type in (5, 6)]
        for order in orders:
            for k in range(len(joins) + 1):
                for swap in itertools.combinations(joins, k):
                    variant = renumber(nsc, order, swap)
                    assert canonical_hash(variant) == h, format_nsc(variant)
    # a hand-written variant of the residual-like block: the add's inputs swapped
    assert canonical_hash(parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,3,1),(5,7,0,0,0)]")) == canonical_hash(RESIDUAL_LIKE)


def test_hash_differs_for_different_blocks():
    # Shared vs duplicated branch: same tree unfolding, different DAGs (different parameters).
    shared = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,2,3,2,0),(4,2,3,2,0),(5,6,0,3,4),(6,7,0,0,0)]")
    duplicated = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,1,0),(4,2,3,2,0),(5,2,3,3,0),(6,6,0,4,5),(7,7,0,0,0)]")
    assert canonical_hash(shared) != canonical_hash(duplicated)
    kernel = parse("[(1,4,0,0,0),(2,1,5,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]")
    join = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,6,0,1,3),(5,7,0,0,0)]")
    hashes = {canonical_hash(b) for b in (RESIDUAL_LIKE, INCEPTION_LIKE, kernel, join, shared, duplicated)}
    assert len(hashes) == 6


def _isomorphic(a, b) -> bool:
    """Brute force: a relabeling of layers mapping a onto b (input and output fixed)."""
    ga, gb = graph(a), graph(b)
    if ga.n_layers != gb.n_layers:
        return False
    la = {l.index: (l.type, l.kernel) for l in a}
    lb = {l.index: (l.type, l.kernel) for l in b}
    n = ga.n_layers
    ea = {(p, v) for v in range(n + 2) for p in ga.preds[v]}
    eb = {(p, v) for v in range(n + 2) for p in gb.preds[v]}
    for perm in itertools.permutations(range(1, n + 1)):
        m = {0: 0, n + 1: n + 1, **{i + 1: perm[i] for i in range(n)}}
        if all(la[i] == lb[m[i]] for i in range(1, n + 1)) and {(m[p], m[v]) for p, v in ea} == eb:
            return True
    return False


def test_hash_equality_is_exactly_isomorphism_on_small_blocks():
    # Small space (layers of at most 5 kinds of choice), so that equal hashes and collisions both occur.
    blocks = [b for b in _random_blocks(3000, max_index=6, seed=3) if len(b) <= 6]
    by_hash = {}
    for b in blocks:
        by_hash.setdefault(canonical_hash(b), []).append(b)
    rng = random.Random(0)
    checked_equal = 0
    for group in by_hash.values():
        distinct = list(dict.fromkeys(group))
        for x, y in zip(distinct, distinct[1:]):
            assert _isomorphic(x, y), (format_nsc(x), format_nsc(y))
            checked_equal += 1
    assert checked_equal > 5
    reps = [g[0] for g in by_hash.values()]
    for _ in range(300):  # different hashes: never isomorphic
        x, y = rng.sample(reps, 2)
        if len(x) == len(y):
            assert not _isomorphic(x, y)


def test_hash_is_fast_on_symmetric_blocks():
    import time

    rows = [(1, 4, 0, 0, 0)] + [(i, 1, 1, 1, 0) for i in range(2, 23)] + [(23, 7, 0, 0, 0)]  # 21 identical branches
    t = time.perf_counter()
    canonical_hash(validate(rows))
    chains = [(1, 4, 0, 0, 0)] + [(i, 1, 1, 1, 0) for i in range(2, 12)] + [(i, 2, 3, i - 10, 0) for i in range(12, 22)]
    canonical_hash(validate(chains + [(22, 7, 0, 0, 0)]))
    assert time.perf_counter() - t < 2.0


def test_canonical_hashes_never_change():
    """search.h5 stores each candidate's hash; its seed and the reward cache are keyed by it, so a resumed
    search needs today's hashes to equal those written by earlier versions (digests from the first release
    of the hash, over every code of max_index 5 and 300 blocks sampled at epsilon = 1 of the full space)."""
    import hashlib

    from bqnn.agent import QLearningAgent

    digest = lambda blocks: hashlib.sha256("".join(canonical_hash(b) for b in blocks).encode()).hexdigest()[:16]  # noqa: E731
    small = list(Space(5).blocks())
    agent = QLearningAgent(Space(23), seed=0)
    big = [agent.sample(1.0) for _ in range(300)]
    assert (len(small), digest(small)) == (4472, "ed123d6c51e86947")
    assert digest(big) == "5aa419fae9a42276"
    assert (canonical_hash(RESIDUAL_LIKE), canonical_hash(INCEPTION_LIKE)) == ("f2d55df4e82d8023", "1c8364f1d35e7f5d")


def test_from_array_reads_numpy_rows_and_rejects_non_integers():
    arr = to_array(INCEPTION_LIKE)
    assert from_array(arr) == INCEPTION_LIKE and all(type(v) is int for layer in from_array(arr) for v in layer)
    with pytest.raises(NSCError, match="an NSC row is 5 integers"):
        from_array(arr.astype(np.float64))
