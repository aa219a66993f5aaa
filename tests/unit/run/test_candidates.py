"""The candidate's one record and its table (run/candidates.py): declared once, stored by field name, found by id,
grown as needed."""
import dataclasses

import numpy as np
import pytest

from bqnn.records import get
from bqnn.run.candidates import FIELDS, Candidate, CandidateTable, candidate_dtype
from bqnn.training.result import Status, TrainResult, Where


def record(cid: int, **over):
    fields = dict(id=cid, nsc=np.full((5, 5), cid % 7, np.int16), hash=f"{cid:016x}", reward=cid / 3, message="ok")
    fields.update(over)
    return Candidate(**fields)


def test_records_are_stored_by_field_name_and_found_by_id():
    t = CandidateTable(candidate_dtype(5), capacity=2)
    for cid in (4, 0, 7, 2, 9):  # completion order, not id order; grows past the capacity
        t.add(record(cid))
    assert len(t) == 5 and 7 in t and 5 not in t
    assert t.array()["id"].tolist() == [4, 0, 7, 2, 9]
    row = t[7]
    assert row["hash"] == b"0000000000000007" and row["reward"] == 7 / 3 and (row["nsc"] == 0).all()
    u = CandidateTable(candidate_dtype(5))
    u.load(t.array().copy())
    assert u.array().tobytes() == t.array().tobytes() and u[2]["reward"] == 2 / 3


def test_an_unknown_field_is_an_error_and_a_record_reads_back_equal():
    with pytest.raises(TypeError, match="blocks_per_stage"):
        record(1, blocks_per_stage=2)
    t = CandidateTable(candidate_dtype(5))
    c = record(3, status=Status.PRUNED, rungs=[41.5, 52.0], host="node-7", started=1.5e9, ended=1.5e9 + 30,
               message="é" * 200)
    t.add(c)
    back = t.record(3)
    assert back.message.startswith("...") and back.message.endswith("é" * 120)  # a message keeps its end
    assert len(back.message.encode()) <= 256
    same = {f.name for f in dataclasses.fields(Candidate)} - {"message", "nsc"}
    assert all(getattr(back, n) == getattr(c, n) for n in same) and np.array_equal(back.nsc, c.nsc)
    assert t[3]["rungs"].tolist() == [41.5, 52.0] + [-1.0] * 6


def test_the_fields_are_declared_once_and_the_layouts_follow():
    """The table's, the MPI reply's and search.h5's layouts come from the declarations of TrainResult, Where and
    Candidate: every field of each is a column, and nothing else is."""
    from bqnn.mpi.wire import RESULT_DTYPE

    result = {f.name for f in dataclasses.fields(TrainResult)}
    where = {f.name for f in dataclasses.fields(Where)}
    assert set(candidate_dtype(5).names) == set(FIELDS) == {f.name for f in dataclasses.fields(Candidate)}
    assert result | where <= set(FIELDS) and set(RESULT_DTYPE.names) == result | where | {"id"}
    from bqnn.records import put

    row = np.zeros(1, RESULT_DTYPE)[0]
    result = TrainResult(Status.NAN, 1.5, 2.5, 3, 1, "loss is nan", [7.0])
    put(row, Where(2, "n7", 1.0, 2.0))
    put(row, result)
    assert get(TrainResult, row) == result and get(Where, row) == Where(2, "n7", 1.0, 2.0)
