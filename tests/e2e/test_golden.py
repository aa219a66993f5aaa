"""Whole searches equal their golden records (tests/golden/), byte for byte, in a Python where importing torch
raises: the paper's search at full scale (178 x 64 blocks, simulated trainer), BlockQNN-L with a budget that
rejects blocks and adapts N, a PNAS run, and the paper job exactly as it is (its own update rule: the others
keep the rule they were recorded with). The records were taken before bqnn's layers were separated;
`python -m tests.golden.digest check` runs these and two more cases (BlockQNN-L as its job file has it, and
the paper's search under mpiexec -n 3, also in tests/mpi/test_golden_mpi.py)."""
import pytest

from tests.golden.digest import compare, digest, expected, run_case


@pytest.mark.parametrize("case", ["paper", "paper-L-tight", "pnas", "paper-rule"])
def test_a_search_equals_its_golden_record_without_torch(tmp_path, case):
    r = run_case(case, tmp_path / "run", no_torch=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "torch" not in r.stderr
    assert compare(digest(tmp_path / "run" / "search.h5"), expected(case)) is None
