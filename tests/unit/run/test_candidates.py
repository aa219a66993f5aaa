"""The candidate table (run/candidates.py): records by field name, found by id, grown as needed."""
import numpy as np
import pytest

from bqnn.run.candidates import CandidateTable, candidate_dtype


def record(cid: int, **over):
    fields = {name: 0 for name in candidate_dtype(5).names}
    fields.update(id=cid, nsc=np.full((5, 5), cid % 7, np.int16), hash=f"{cid:016x}".encode(), reward=cid / 3,
                  message=b"ok")
    fields.update(over)
    return fields


def test_records_are_stored_by_field_name_and_found_by_id():
    t = CandidateTable(candidate_dtype(5), capacity=2)
    for cid in (4, 0, 7, 2, 9):  # completion order, not id order; grows past the capacity
        t.add(**record(cid))
    assert len(t) == 5 and 7 in t and 5 not in t
    assert t.array()["id"].tolist() == [4, 0, 7, 2, 9]
    row = t[7]
    assert row["hash"] == b"0000000000000007" and row["reward"] == 7 / 3 and (row["nsc"] == 0).all()
    u = CandidateTable(candidate_dtype(5))
    u.load(t.array().copy())
    assert np.array_equal(u.array(), t.array()) and u[2]["reward"] == 2 / 3


def test_a_missing_or_unknown_field_is_an_error():
    t = CandidateTable(candidate_dtype(5))
    fields = record(1)
    del fields["epsilon"]
    with pytest.raises(KeyError, match="missing \\['epsilon'\\]"):
        t.add(**fields)
    with pytest.raises(KeyError, match="unknown \\['blocks_per_stage'\\]"):
        t.add(**record(1), blocks_per_stage=2)
    assert len(t) == 0
