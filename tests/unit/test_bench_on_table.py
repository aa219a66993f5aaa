"""bench/on_table.py on a tiny table (the simulated trainer's curves, `max_index` 4, 125 blocks, two seeds): the
stats and strategies commands run end to end, a best block found never gets worse with a larger budget, regrets lie
between 0 and the optimum, the runs made again in two processes print the same figures, and a second run reuses
the runs."""
import re
import subprocess
import sys

import h5py
import pytest

from bqnn.results.landscape import build
from tests.conftest import ROOT, search_in_process

JOB = """
[search]
strategy = "exhaustive"
blocks_per_iteration = 32

[space]
max_index = 4

[network]
blocks_per_stage = 1
filters = [8, 16, 32]

[data]
resize = 14

[trainer]
kind = "simulated"
epochs = 6
sim_seconds = 0.0

[pruning]
record = true
rungs = [1, 2, 3, 4, 5]
"""
STRATEGIES = ["random", "qlearning-paper", "pnas", "evolution", "optuna-random", "optuna-tpe"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("on-table")
    job = base / "tiny.toml"
    job.write_text(JOB)
    dirs = []
    for seed in (0, 1):
        search_in_process(base, f"seed-{seed}", [f"search.seed={seed}"], config=str(job))
        dirs.append(base / f"seed-{seed}")
    table = base / "tiny.h5"
    build(dirs, command="test").write(table)
    return base, job, table


def bench(tiny, *args: str, runs: str = "runs") -> subprocess.CompletedProcess:
    base, job, table = tiny
    return subprocess.run([sys.executable, "bench/on_table.py", *args, "--table", str(table), "--job", str(job),
                           "--runs", str(base / runs)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def regrets(out: str, unit: str) -> dict[tuple[str, str], list[float]]:
    """The regret table of `unit` ("candidate-epochs" or "training seconds"): (strategy, pruning) -> means."""
    section = out.split(f"N trainings' worth of {unit}")[1].split("\n\n")[0]
    rows = {}
    for line in section.splitlines()[2:]:
        name, pruning, *cells = line.split()
        rows[(name, pruning)] = [float(c) for c in cells if not c.startswith("(")]
    return rows


def test_stats_reads_the_table(tiny):
    r = bench(tiny, "stats")
    assert r.returncode == 0, r.stderr
    assert "125 blocks x 2 seeds" in r.stdout and "linear fit on the PNAS predictor's features" in r.stdout
    assert re.search(r"rung Spearman, epoch 1 vs final \(6\) over every successful training: [+-]\d", r.stdout)


def test_strategies_run_on_the_table_and_read_back_the_same(tiny):
    args = ["strategies", "--seeds", "1", "--budgets", "10", "20", "--only", *STRATEGIES]
    first = bench(tiny, *args)
    assert first.returncode == 0, first.stderr
    optimum = float(re.search(r"optimum ([\d.]+) % mean accuracy", first.stdout).group(1))
    for unit in ("candidate-epochs", "training seconds"):
        rows = regrets(first.stdout, unit)
        assert {n for n, _ in rows} == set(STRATEGIES) and {p for _, p in rows} == {"none", "median", "halving"}
        for (name, _), (small, large) in rows.items():
            assert 0.0 <= large <= optimum and 0.0 <= small <= optimum
            if name in ("random", "evolution", "optuna-random", "optuna-tpe"):  # one run read at both budgets
                assert large <= small, (name, unit, small, large)
    assert "pruning on the table" in first.stdout and "the target" in first.stdout
    retrained = first.stdout.split("retraining the best 3:", 1)[1].split("the target with retraining")[0]
    rows = [line.split() for line in retrained.splitlines()[2:] if line.strip()]
    assert {(r[0], r[1]) for r in rows} == set(regrets(first.stdout, "candidate-epochs"))
    assert all(0.0 <= float(c) <= optimum for r in rows for c in r[2:] if not c.startswith("("))
    pooled = bench(tiny, *args, "--jobs", "2", runs="runs-pooled")  # every run made again, in two processes
    assert pooled.returncode == 0, pooled.stderr
    assert pooled.stdout.split("\n", 1)[1] == first.stdout.split("\n", 1)[1]  # all but the dated first line
    again = bench(tiny, *args)  # the first runs, read back
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\n", 1)[1] == first.stdout.split("\n", 1)[1]


def test_the_paper_claims_run_on_the_table_with_each_explore_rule(tiny, tmp_path):
    """bench/paper.py's table part: Fig. 8(a) and Appendix B on the tiny table, once per explore rule; the
    second claim reads the first's runs, each rule draws its own figure, and the agent's mean accuracy rises as
    epsilon falls under both rules (the table answers what the agent exploits)."""
    base, job, table = tiny
    out = {}
    for claim in ("fig8a", "appendix-b"):
        r = subprocess.run([sys.executable, "bench/paper.py", claim, "--parts", "table", "--table", str(table),
                            "--table-job", str(job), "--table-seeds", "0", "1", "--explore", "uniform", "by_type",
                            "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        out[claim] = r.stdout
    for rule in ("uniform", "by_type"):
        gain = re.search(rf"fig8a \(table, explore {rule}.*?\n.*?\(([+-][\d.]+) points", out["fig8a"])
        assert gain and float(gain.group(1)) > 0, out["fig8a"]
        assert (tmp_path / "table" / f"fig8a-{rule}.png").stat().st_size > 0
        assert re.search(rf"appendix-b \(table, explore {rule}, seeds \[0, 1\]", out["appendix-b"])
    assert len(list((tmp_path / "table").glob("landscape-*-s0"))) == 2  # one run per rule, both claims read it


@pytest.mark.parametrize("problem", ["missing", "damaged"])
def test_the_table_benches_refuse_a_bad_table_in_one_line(tiny, tmp_path, problem):
    """A table that does not exist, or whose contents were edited, is one line naming it and exit 2 from every
    command that reads it, before anything runs or is written."""
    _, job, table = tiny
    bad = tmp_path / "bad.h5"
    if problem == "damaged":
        bad.write_bytes(table.read_bytes())
        with h5py.File(bad, "r+") as f:  # one accuracy edited: the contents no longer match their checksum
            f["accuracy"][3, 1] += 1
    commands = [["bench/on_table.py", cmd, "--table", str(bad), "--job", str(job), "--runs", str(tmp_path / "runs")]
                for cmd in ("stats", "strategies", "retrain")]
    commands.append(["bench/paper.py", "fig8a", "--parts", "table", "--table", str(bad), "--table-job", str(job),
                     "--out", str(tmp_path / "paper")])
    for cmd in commands:
        r = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "paper").exists()


def test_retraining_the_best_few_hands_over_the_block_whose_mean_is_best():
    """`Truth.retrained` (bench/table_runs.py): a block seen at a lucky seed loses to one that is good at every
    seed once both are trained again on their next table seed; a failed retraining adds nothing; k = 1 keeps the
    lucky one."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from table_runs import Trace, Truth

    from bqnn.landscape.table import Table

    hashes = ["00000000a", "00000000b", "00000000c"]  # candidate seed 0 at search seed 0: each block's seed column 0
    accuracy = np.array([[90.0, 50.0, 52.0], [85.0, 84.0, 83.0], [70.0, 70.0, 70.0]])
    status = np.zeros((3, 3), dtype=np.int8)
    table = Table(recipe="{}", seeds=[0, 1, 2], hash=np.array([h.encode() for h in hashes]),
                  nsc=np.zeros((3, 4, 5), dtype=np.int8), params=np.zeros(3), flops=np.zeros(3), density=np.zeros(3),
                  status=status, accuracy=accuracy, curve=np.zeros((3, 3, 6)), seconds=np.ones((3, 3)),
                  restarts=np.zeros((3, 3)))
    truth = Truth(table)
    seen = Trace(hashes, np.zeros(3, dtype=int), accuracy[:, 0].copy(), np.full(3, 6.0), np.ones(3))
    every = np.ones(3, dtype=bool)
    assert truth.optimum == 84.0 and seen.best(every) == "00000000a" and truth.regret("00000000a") == 20.0
    assert truth.retrained(seen, every, 0, 1) == "00000000a"  # only the lucky block trained again: 70 > nothing else
    assert truth.retrained(seen, every, 0, 2) == "00000000b"  # 84.5 beats (90 + 50) / 2
    status[1, 1] = 1  # B's second training fails: B keeps its 85, still above A's 70
    assert truth.retrained(seen, every, 0, 2) == "00000000b"
    status[1, 1] = 0
    seen.accuracy[1] = 60.0  # B no longer among the best 2 it saw: A (70) against C (70), the first seen wins
    assert truth.retrained(seen, every, 0, 2) == "00000000a"
    assert truth.retrained(seen, np.zeros(3, dtype=bool), 0, 2) is None
