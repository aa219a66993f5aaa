"""PNAS and BlockQNN-L under real `mpiexec`: a PNAS search killed with SIGKILL at random points and
resumed ends with the same beam, results and predictor as an uninterrupted one."""
import h5py
import numpy as np

from bqnn.run import checkpoint
from bqnn.training.result import Status
from tests.conftest import mpi_search, needs_mpiexec, sigkill_and_resume

pytestmark = needs_mpiexec

PNAS = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.strategy=pnas",
        "--set", "space.max_index=8", "--set", "pnas.max_size=6", "--set", "pnas.beam=6", "--set", "pnas.fit_steps=150",
        "--set", "search.seed=3", "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]",
        "--set", "trainer.sim_seconds=0.05", "--set", "search.checkpoint_interval=0"]
TOTAL = 8 + 4 * 6


def strategy_arrays(out):
    with h5py.File(out / "search.h5") as f:
        return {k: f["strategy"][k][()] for k in f["strategy"].keys()}


def test_pnas_sigkill_at_random_points_then_resume_gives_the_same_final_beam(tmp_path):
    ref = tmp_path / "ref"
    r = mpi_search(3, ref, *PNAS)
    assert r.returncode == 0, r.stderr
    assert "round" in r.stdout and "predictor Spearman" in r.stdout
    out = tmp_path / "killed"
    kills = len(sigkill_and_resume(out, tuple(PNAS), latest=0.5))  # up to three kills, then left to finish
    assert kills >= 1
    a, b = checkpoint.load(ref)[0], checkpoint.load(out)[0]
    assert b.runs == kills + 1 and b.iteration == b.iterations_total == 5
    ca, cb = (s.candidates[np.argsort(s.candidates["id"])] for s in (a, b))
    assert cb["id"].tolist() == list(range(TOTAL))  # every candidate exactly once
    assert np.array_equal(ca["nsc"], cb["nsc"]) and np.array_equal(ca["reward"], cb["reward"])
    sa, sb = strategy_arrays(ref), strategy_arrays(out)
    assert sa.keys() == sb.keys() and "beam_nsc" in sa and "predictor_w1" in sa
    for k in sa:  # the same final beam, results, correlations and predictor weights
        assert np.array_equal(sa[k], sb[k], equal_nan=True), k


def test_blockqnn_l_under_mpi_rejects_on_the_master(tmp_path):
    out = tmp_path / "L"
    r = mpi_search(3, out, "--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "space.max_index=8",
                   "--set", "search.blocks_per_iteration=16", "--set", "search.schedule=[[1.0, 2], [0.5, 1]]",
                   "--set", "network.blocks_per_stage=3", "--set", "network.filters=[16,32,64]",
                   "--set", "limits.params=60000", "--set", "search.dispatch=async")
    assert r.returncode == 0, r.stderr
    c = checkpoint.load(out)[0].candidates
    trained = c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]
    rejected = c[(c["repeat"] == 0) & (c["status"] == Status.REJECTED)]
    assert len(rejected) and (rejected["rank"] == -1).all()  # no worker saw them
    assert (trained["params"] <= 60000).all() and set(trained["rank"].tolist()) <= {1, 2}


EXHAUSTIVE = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.strategy=exhaustive",
              "--set", "space.max_index=4", "--set", "search.blocks_per_iteration=8",
              "--set", "trainer.sim_seconds=0.05",
              "--set", "search.checkpoint_interval=0", "--set", "pruning.record=true", "--set", "pruning.rungs=[1,5]"]


def test_an_exhaustive_search_killed_and_resumed_trains_each_block_once_per_seed(tmp_path):
    """Issue 26: under mpiexec -n 3, SIGKILLed at random points and resumed, every distinct block of the space is
    trained exactly once, with the results, curves and order of an uninterrupted search."""
    from bqnn.blocks.space import Space
    from bqnn.strategies.exhaustive import distinct_blocks

    want = [h for h, _ in distinct_blocks(Space(4))]
    ref = tmp_path / "ref"
    assert mpi_search(3, ref, *EXHAUSTIVE).returncode == 0
    out = tmp_path / "killed"
    kills = len(sigkill_and_resume(out, tuple(EXHAUSTIVE), latest=0.5))
    assert kills >= 1
    a, b = checkpoint.load(ref)[0], checkpoint.load(out)[0]
    ca, cb = (s.candidates[np.argsort(s.candidates["id"])] for s in (a, b))
    assert cb["id"].tolist() == list(range(len(want))) and (cb["repeat"] == 0).all()
    assert [h.decode() for h in cb["hash"]] == want  # each distinct block once, in hash order
    for name in ("nsc", "accuracy", "reward", "rungs"):
        assert np.array_equal(ca[name], cb[name]), name
    assert set(cb["rank"].tolist()) == {1, 2}


EVOLUTION = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.strategy=evolution",
             "--set", "space.max_index=8", "--set", "search.blocks_per_iteration=6", "--set", "search.seed=4",
             "--set", "search.schedule=[[1.0, 8]]", "--set", "evolution.population=10", "--set", "evolution.sample=3",
             "--set", "search.explore=by_type", "--set", "trainer.sim_seconds=0.05",
             "--set", "search.checkpoint_interval=0"]


def test_evolution_sigkill_at_random_points_then_resume_gives_the_same_population(tmp_path):
    ref = tmp_path / "ref"
    assert mpi_search(3, ref, *EVOLUTION).returncode == 0
    out = tmp_path / "killed"
    kills = len(sigkill_and_resume(out, tuple(EVOLUTION), latest=0.5))
    assert kills >= 1
    a, b = checkpoint.load(ref)[0], checkpoint.load(out)[0]
    ca, cb = (s.candidates[np.argsort(s.candidates["id"])] for s in (a, b))
    assert cb["id"].tolist() == list(range(48))
    assert np.array_equal(ca["nsc"], cb["nsc"]) and np.array_equal(ca["reward"], cb["reward"])
    sa, sb = strategy_arrays(ref), strategy_arrays(out)
    assert sorted(sa) == ["population_nsc", "population_reward"]
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
