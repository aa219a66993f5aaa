"""The canonical hash (blocks/canon.py): equal exactly for isomorphic blocks, fast, stable across releases."""
import itertools
import random
from pathlib import Path

from bqnn.blocks.canon import canonical_hash, renumber
from bqnn.blocks.code import (
    INCEPTION_LIKE,
    MAX_INDEX,
    RESIDUAL_LIKE,
    format_nsc,
    parse,
    validate,
)
from bqnn.blocks.graph import graph
from bqnn.blocks.space import Space

HERE = Path(__file__).resolve().parent


def _random_blocks(n, max_index=MAX_INDEX, seed=0):
    from bqnn.strategies.qtable import QTable

    agent = QTable(Space(max_index), seed=seed)
    return [agent.sample(1.0) for _ in range(n)]


def _topological_orders(nsc, limit=200):
    layers = [layer for layer in nsc if layer.type != 7]
    preds = {layer.index: {p for p in (layer.pred1, layer.pred2) if p} for layer in layers}
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


def _isomorphic(a, b) -> bool:
    """Brute force: a relabeling of layers mapping a onto b (input and output fixed)."""
    ga, gb = graph(a), graph(b)
    if ga.n_layers != gb.n_layers:
        return False
    la = {layer.index: (layer.type, layer.kernel) for layer in a}
    lb = {layer.index: (layer.type, layer.kernel) for layer in b}
    n = ga.n_layers
    ea = {(p, v) for v in range(n + 2) for p in ga.preds[v]}
    eb = {(p, v) for v in range(n + 2) for p in gb.preds[v]}
    for perm in itertools.permutations(range(1, n + 1)):
        m = {0: 0, n + 1: n + 1, **{i + 1: perm[i] for i in range(n)}}
        if all(la[i] == lb[m[i]] for i in range(1, n + 1)) and {(m[p], m[v]) for p, v in ea} == eb:
            return True
    return False


def test_hash_equal_for_renumbered_and_swapped_variants():
    for nsc in (INCEPTION_LIKE, RESIDUAL_LIKE):
        h = canonical_hash(nsc)
        orders = _topological_orders(nsc)
        assert len(orders) > (100 if nsc is INCEPTION_LIKE else 0)  # the residual chain has one order
        joins = [layer.index for layer in nsc if layer.type in (5, 6)]
        for order in orders:
            for k in range(len(joins) + 1):
                for swap in itertools.combinations(joins, k):
                    variant = renumber(nsc, order, swap)
                    assert canonical_hash(variant) == h, format_nsc(variant)
    # a hand-written variant of the residual-like block: the add's inputs swapped
    assert canonical_hash(parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,3,1),(5,7,0,0,0)]")) == \
        canonical_hash(RESIDUAL_LIKE)


def test_hash_differs_for_different_blocks():
    # Shared vs duplicated branch: same tree unfolding, different DAGs (different parameters).
    shared = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,2,3,2,0),(4,2,3,2,0),(5,6,0,3,4),(6,7,0,0,0)]")
    duplicated = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,1,0),(4,2,3,2,0),(5,2,3,3,0),(6,6,0,4,5),(7,7,0,0,0)]")
    assert canonical_hash(shared) != canonical_hash(duplicated)
    kernel = parse("[(1,4,0,0,0),(2,1,5,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]")
    join = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,6,0,1,3),(5,7,0,0,0)]")
    hashes = {canonical_hash(b) for b in (RESIDUAL_LIKE, INCEPTION_LIKE, kernel, join, shared, duplicated)}
    assert len(hashes) == 6


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
        for x, y in zip(distinct, distinct[1:], strict=False):
            assert _isomorphic(x, y), (format_nsc(x), format_nsc(y))
            checked_equal += 1
    assert checked_equal > 5
    reps = [g[0] for g in by_hash.values()]
    for _ in range(300):  # different hashes: never isomorphic
        x, y = rng.sample(reps, 2)
        if len(x) == len(y):
            assert not _isomorphic(x, y)


def test_hash_is_fast_on_symmetric_blocks(monkeypatch):
    """k identical branches cost O(k^2) leaves of the search, not k!: counted, not timed (a count does not depend on
    the machine or its load). Measured: 1 leaf for 21 identical branches (twins are exchanged up front; without that
    seeding, 211), 46 for 10 parallel two-layer chains (bound: k^2 = 100)."""
    from bqnn.blocks import canon

    leaves = []
    real = canon._Search.leaf
    monkeypatch.setattr(canon._Search, "leaf", lambda self, colors: (leaves.append(1), real(self, colors))[1])
    rows = [(1, 4, 0, 0, 0)] + [(i, 1, 1, 1, 0) for i in range(2, 23)] + [(23, 7, 0, 0, 0)]  # 21 identical branches
    canon._canonical_form(canon._labels(validate(rows)), canon.graph(validate(rows)).preds)
    assert len(leaves) <= 21, len(leaves)
    leaves.clear()
    chains = [(1, 4, 0, 0, 0)] + [(i, 1, 1, 1, 0) for i in range(2, 12)] + [(i, 2, 3, i - 10, 0) for i in range(12, 22)]
    nsc = validate(chains + [(22, 7, 0, 0, 0)])
    canon._canonical_form(canon._labels(nsc), canon.graph(nsc).preds)
    assert len(leaves) <= 10 * 10, len(leaves)


def test_canonical_hashes_never_change():
    """search.h5 stores each candidate's hash; its seed and the reward cache are keyed by it, so a resumed
    search needs today's hashes to equal those written by earlier versions (digests from the first release
    of the hash, over every code of max_index 5 and 300 blocks sampled at epsilon = 1 of the full space, kept in
    sampled_blocks.jsonl so that the digest does not depend on a sampler's random stream)."""
    import hashlib
    import json

    digest = lambda blocks: hashlib.sha256("".join(canonical_hash(b) for b in blocks).encode()).hexdigest()[:16]  # noqa: E731
    every = list(Space(5).blocks())
    small = [b for b in every if len(b) > 2]  # as recorded, before blocks() yielded the start identity alone
    big = [validate(json.loads(line)) for line in (HERE / "sampled_blocks.jsonl").read_text().splitlines()]
    assert (len(every), len(small), digest(small)) == (4473, 4472, "ed123d6c51e86947")
    assert digest(big) == "5aa419fae9a42276"
    assert (canonical_hash(RESIDUAL_LIKE), canonical_hash(INCEPTION_LIKE)) == ("f2d55df4e82d8023", "1c8364f1d35e7f5d")
