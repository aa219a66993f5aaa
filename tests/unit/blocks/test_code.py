"""The block code (blocks/code.py): Table 1's rules, the text and array forms, the named blocks."""
import numpy as np
import pytest

from bqnn.blocks.code import (
    INCEPTION_LIKE,
    MAX_INDEX,
    OPS,
    RESIDUAL_LIKE,
    NSCError,
    Op,
    format_nsc,
    from_array,
    parse,
    to_array,
    validate,
)
from bqnn.blocks.space import Space

BASE = [(1, 4, 0, 0, 0), (2, 1, 3, 1, 0)]  # a valid prefix: identity, conv reading it


def _random_blocks(n, max_index=MAX_INDEX, seed=0):
    from bqnn.strategies.qtable import QTable

    agent = QTable(Space(max_index), seed=seed)
    return [agent.sample(1.0) for _ in range(n)]


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
    (BASE + [(3, 11, 0, 1, 0), (4, 7, 0, 0, 0)], "type 11 is not one of 1..10"),
    (BASE + [(3, 0, 0, 1, 0), (4, 7, 0, 0, 0)], "type 0 is not one of 1..10"),
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


def test_from_array_reads_numpy_rows_and_rejects_non_integers():
    arr = to_array(INCEPTION_LIKE)
    assert from_array(arr) == INCEPTION_LIKE and all(type(v) is int for layer in from_array(arr) for v in layer)
    with pytest.raises(NSCError, match="an NSC row is 5 integers"):
        from_array(arr.astype(np.float64))
