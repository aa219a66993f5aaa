"""The table trainer under mpiexec -n 3 (training/table.py): candidates answered by worker ranks from a landscape
table with the table's numbers, pruning included (the trainer sleeps its recorded seconds x a time scale, so that
rank 0's answers reach it between epochs)."""
import numpy as np

from bqnn.landscape.table import Table
from bqnn.results.landscape import build
from bqnn.run import checkpoint
from bqnn.training.result import Status
from tests.conftest import mpi_search, needs_mpiexec, search_in_process

pytestmark = needs_mpiexec

RECIPE = ["search.strategy=exhaustive", "trainer.kind=simulated", "space.max_index=4", "search.blocks_per_iteration=32",
          "trainer.epochs=4", "pruning.record=true", "pruning.rungs=[1,2,3]", "network.blocks_per_stage=1",
          "network.filters=[8,16,32]", "data.resize=14"]


def test_a_search_on_a_table_under_mpi_answers_the_tables_numbers_and_prunes(tmp_path):
    dirs = []
    for seed in (0, 1):
        search_in_process(tmp_path, f"seed-{seed}", [*RECIPE, f"search.seed={seed}"])
        dirs.append(tmp_path / f"seed-{seed}")
    table = build(dirs)
    table.seconds[:] = 0.2  # recorded seconds, slept x table_time_scale by the workers
    for s in range(2):
        table.accuracy[:, s] += s / 2
        table.curve[:, s] += s / 2
    table.write(tmp_path / "t.h5")
    args = [x for s in [*RECIPE, "trainer.kind=table", f"trainer.table={tmp_path / 't.h5'}",
                        "search.strategy=qlearning",
                        "search.schedule=[[1.0, 4], [0.3, 4]]", "search.blocks_per_iteration=8",
                        "search.replay_samples=8", "pruning.rule=median", "pruning.rungs=[1,2]",
                        "pruning.record=false", "pruning.min_candidates=8", "trainer.table_time_scale=1.0"]
            for x in ("--set", s)]
    r = mpi_search(3, tmp_path / "q", "--config", "/dev/null", *args)
    assert r.returncode == 0, r.stderr
    c = checkpoint.load(tmp_path / "q")[0].candidates
    t = Table.read(tmp_path / "t.h5")
    trained = c[c["repeat"] == 0]
    assert set(trained["rank"].tolist()) == {1, 2}
    pruned = trained[trained["status"] == Status.PRUNED]
    assert len(pruned) >= 3, trained["status"]  # the median rule stopped some, between epochs, over MPI
    for rec in trained:
        i = t.row(rec["hash"].decode())
        if rec["status"] == Status.OK:
            assert rec["accuracy"] in t.accuracy[i].astype(float).tolist() and rec["seconds"] == np.float32(0.2)
        else:
            e = int(rec["epochs"])
            assert rec["accuracy"] in t.curve[i, :, e - 1].astype(float).tolist()
            assert rec["seconds"] == np.float32(0.2) * e / 4
