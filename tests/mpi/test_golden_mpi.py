"""The paper's search under `mpiexec -n 3` (batch dispatch, simulated workers) equals its golden record byte for
byte (the same record as one process), with no rank able to import torch."""
from tests.conftest import needs_mpiexec
from tests.golden.digest import compare, digest, expected, run_case

pytestmark = needs_mpiexec


def test_a_three_rank_search_equals_its_golden_record_without_torch(tmp_path):
    r = run_case("paper-mpi3", tmp_path / "run", no_torch=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 workers, batch dispatch" in r.stdout
    got = digest(tmp_path / "run" / "search.h5")
    assert compare(got, expected("paper-mpi3")) is None
    assert compare(got, expected("paper")) is None  # the same search as one process
