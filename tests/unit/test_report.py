"""python -m bqnn.report DIR: the JSON contract, candidates.csv, summary.md, the PNGs, --compare, verification."""
import csv
import json
import shutil

import h5py
import pytest

from bqnn.stats import spearman
from tests.conftest import run_module

PNG = b"\x89PNG\r\n\x1a\n"
SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=8",
       "--set", "space.max_index=7", "--set", "search.replay_samples=8",
       "--set", "search.schedule=[[1.0, 3], [0.3, 2], [0.1, 2]]"]


def valid_png(path) -> bool:
    from PIL import Image

    data = path.read_bytes()
    with Image.open(path) as im:
        im.verify()
    return data.startswith(PNG) and len(data) > 1000


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties share their mean rank
    assert spearman([1], [2]) is None and spearman([1, 1], [1, 2]) is None


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    for strategy in ("qlearning", "random"):
        r = run_module("bqnn.search", "--out", str(d / strategy), *SIM, "--set", f"search.strategy={strategy}")
        assert r.returncode == 0, r.stderr
    return d


def test_report_files(two_runs, tmp_path):
    run = tmp_path / "q"
    shutil.copytree(two_runs / "qlearning", run)
    r = run_module("bqnn.report", str(run), "--top", "3", "--compare", str(two_runs / "random"))
    assert r.returncode == 0, r.stderr
    rep = run / "report"
    with h5py.File(run / "search.h5") as f:
        n = len(f["candidates"])
    rows = list(csv.DictReader(open(rep / "candidates.csv")))
    assert len(rows) == n == 56  # one row per candidate
    assert sorted(int(r["id"]) for r in rows) == list(range(56))
    assert rows[0]["nsc"].startswith("[(1,4,0,0,0)") and rows[0]["status"] == "ok"
    summary = (rep / "summary.md").read_text()
    assert "## Top 3 blocks" in summary and summary.count("| `[(1,4,0,0,0)") == 3
    for png in ["search.png", "compare.png", "blocks/rank-001.png", "blocks/rank-002.png", "blocks/rank-003.png"]:
        assert valid_png(rep / png), png
    assert not (rep / "verify.png").exists()  # nothing verified yet


def test_json_report_writes_nothing(two_runs, tmp_path):
    run = tmp_path / "q"
    shutil.copytree(two_runs / "qlearning", run)
    s = json.loads(run_module("bqnn.report", str(run), "--json").stdout)
    assert not (run / "report").exists()
    assert s["verified"] == [] and s["spearman"] == {"reward_vs_verified": None, "early_stop_vs_verified": None}


def test_verification_results_appear_in_the_report(two_runs, tmp_path):
    run = tmp_path / "q"
    shutil.copytree(two_runs / "qlearning", run)
    top = json.loads(run_module("bqnn.report", str(run), "--json", "--top", "4").stdout)["top"]
    # results as bqnn.train writes them
    for k, (b, acc) in enumerate(zip(top, (91.0, 93.0, 90.0, 92.5), strict=False), 1):
        d = run / "verify" / f"rank-{k:03d}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({
            "hash": b["hash"], "protocol": "verify", "epochs": 30, "best_val_accuracy": acc, "test_accuracy": acc - 1,
            "source": {"rank": k, "reward": b["reward"], "early_stop_accuracy": b["accuracy"]}}))
    s = json.loads(run_module("bqnn.report", str(run), "--json", "--top", "4").stdout)
    assert [v["rank"] for v in s["verified"]] == [1, 2, 3, 4]
    assert s["spearman"]["reward_vs_verified"] == pytest.approx(
        spearman([b["reward"] for b in top], [91.0, 93.0, 90.0, 92.5]))
    assert run_module("bqnn.report", str(run), "--top", "4").returncode == 0
    assert valid_png(run / "report" / "verify.png")
    summary = (run / "report" / "summary.md").read_text()
    assert "| 93.00 | 92.00 |" in summary and "4 blocks verified" in summary


@pytest.mark.parametrize("args", [["--json"], [], ["--top", "2"]])
def test_a_reader_that_closes_the_pipe_is_not_an_error(two_runs, tmp_path, args):
    """`bqnn.report DIR | head`: the reader goes away before (or while) the report is written. Unbuffered, as
    in a batch job's log, so that every line meets the closed pipe when it is printed."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = dict(os.environ, PYTHONUNBUFFERED="1")

    cmd = (f"{sys.executable} -m bqnn.report {two_runs / 'qlearning'} {' '.join(args)} "
           f"--report-dir {tmp_path / 'r'} | head -c 1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stderr == "", r.stderr
    d = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m bqnn.describe residual-like | head -c 0"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert d.returncode == 0 and d.stderr == "", d.stderr


def test_the_top_blocks_are_the_ranks_of_bqnn_train(tmp_path):
    """A block rejected by BlockQNN-L's limits was never trained: the report listed such blocks in its top, so its
    rank K was not `bqnn.train --from DIR --rank K`. Now both count the blocks trained to the end, in one order."""
    from bqnn.results.ranking import top_block

    d = tmp_path / "limited"
    r = run_module("bqnn.search", "--out", str(d), *SIM[:-2], "--set", "search.schedule=[[1.0, 2], [0.1, 2]]",
                   "--set", "limits.params=120000", "--set", "limits.adaptive_blocks=true")
    assert r.returncode == 0, r.stderr
    rep = json.loads(run_module("bqnn.report", str(d), "--json", "--top", "100").stdout)
    assert rep["rejected"] > 0 and len(rep["top"]) == rep["unique_trained"] - rep["failed"] - rep["pruned"]
    assert all(b["blocks_per_stage"] > 0 for b in rep["top"])
    for k, b in enumerate(rep["top"], 1):
        _, record, _ = top_block(d, k)
        assert record["id"] == b["id"] and record["reward"] == pytest.approx(b["reward"])
