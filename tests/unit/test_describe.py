"""python -m bqnn.describe: the readable form, --json, and --from DIR (a run's own network, issue 28 item 6)."""
import json

import pytest

from tests.conftest import run_module

# BlockQNN-L: a params budget that gives the larger blocks a smaller N, on the demo's data (1x28x28, 10 classes)
SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=8",
       "--set", "space.max_index=7", "--set", "search.schedule=[[1.0, 2], [0.1, 2]]",
       "--set", "limits.params=120000", "--set", "limits.adaptive_blocks=true"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("describe") / "run"
    r = run_module("bqnn.search", "--out", str(d), *SIM)
    assert r.returncode == 0, r.stderr
    return d


def test_text_form_draws_the_rows_with_layer_indices_and_inputs():
    r = run_module("bqnn.describe", "residual-like")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]"
    table = lines[lines.index("  row  layer        reads"):][:7]
    assert [" ".join(x.split()) for x in table] == [
        "row layer reads", "0 Input", "1 1: Identity Input", "2 2: Conv 3x3 1", "3 3: Conv 3x3 2",
        "4 4: Add 1, 3", "5 Output 4"]
    assert "graph: 6 nodes, 6 edges, density 1.000, leaves 4" in lines
    assert "block alone (32 -> 32 channels, 32x32): 18,560 params, 37.98 MFLOPs" in lines


def test_json_rows_are_the_drawing():
    d = json.loads(run_module("bqnn.describe", "inception-like", "--json").stdout)
    rows = [[(v["id"], v["reads"]) for v in row] for row in d["rows"]]
    assert rows[0] == [(0, [])] and rows[-1] == [(10, [9])]
    assert sorted(v for row in rows for v, _ in row) == list(range(11))
    depth = {v: k for k, row in enumerate(rows) for v, _ in row}
    assert all(depth[p] < depth[v] for row in rows for v, reads in row for p in reads)  # every edge points down


def test_from_a_run_costs_the_block_as_the_report_does(run):
    top = json.loads(run_module("bqnn.report", str(run), "--json", "--top", "3").stdout)["top"]
    assert len(top) == 3
    seen_n = set()
    for k, block in enumerate(top, 1):
        d = json.loads(run_module("bqnn.describe", "--from", str(run), "--rank", str(k), "--json").stdout)
        net = d["network"]
        assert (net["params"], net["flops"]) == (block["params"], block["flops"]), k
        assert d["found"]["rank"] == k and d["found"]["reward"] == pytest.approx(block["reward"])
        assert (net["dataset"], net["in_channels"], net["image_size"], net["classes"]) == ("fashion-mnist", 1, 28, 10)
        seen_n.add(net["blocks_per_stage"])
        code = d["nsc"]  # the same block given as a code
        again = json.loads(run_module("bqnn.describe", code, "--from", str(run), "--json").stdout)["network"]
        assert (again["params"], again["flops"], again["blocks_per_stage"]) == \
               (net["params"], net["flops"], net["blocks_per_stage"])
        paper = json.loads(run_module("bqnn.describe", code, "--network", "cifar", "--json").stdout)["network"]
        assert paper["params"] != net["params"]  # the paper's network is not this run's
    text = run_module("bqnn.describe", "--from", str(run), "--rank", "1").stdout
    assert f"the run in {run} (fashion-mnist, cifar, N = " in text and "1x28x28 input, 10 classes" in text
    assert f"{top[0]['params']:,} params" in text and "rank 1 of the run: candidate " in text


def test_describe_ranks_the_blocks_as_the_report_does(run):
    """The last of the report's top blocks is describe's last rank; one past it is refused in one line."""
    rep = json.loads(run_module("bqnn.report", str(run), "--json", "--top", "100").stdout)
    last = len(rep["top"])
    d = json.loads(run_module("bqnn.describe", "--from", str(run), "--rank", str(last), "--json").stdout)
    assert d["hash"] == rep["top"][-1]["hash"]
    r = run_module("bqnn.describe", "--from", str(run), "--rank", str(last + 1))
    assert r.returncode == 2 and f"has {last} trained blocks" in r.stderr


def test_from_a_run_names_a_block_over_its_limits(run):
    big = "[(1,4,0,0,0),(2,1,5,1,0),(3,1,5,2,0),(4,1,5,3,0),(5,1,5,4,0),(6,1,5,5,0),(7,7,0,0,0)]"
    d = json.loads(run_module("bqnn.describe", big, "--from", str(run), "--json").stdout)
    assert d["network"]["blocks_per_stage"] == 0 and d["network"]["rejected"].startswith("over the limits")


@pytest.mark.parametrize("argv,message", [
    (["--rank", "1"], "--rank needs --from DIR"),
    ([], "CODE is required (or --from DIR --rank K)"),
    (["residual-like", "--from", "{run}", "--rank", "1"], "with --from give either CODE or --rank K"),
    (["--from", "{run}"], "with --from give either CODE or --rank K"),
    (["residual-like", "--from", "{run}", "--network", "cifar"], "--network cannot be given with --from"),
    (["--from", "{run}", "--rank", "999"], "--rank 999: the search in {run} has"),
    (["--from", "{empty}", "--rank", "1"], "--from {empty}: "),
])
def test_bad_use_is_one_line_and_exit_2(run, tmp_path, argv, message):
    fill = {"run": str(run), "empty": str(tmp_path)}
    r = run_module("bqnn.describe", *[a.format(**fill) for a in argv])
    assert r.returncode == 2 and r.stdout == "", r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bqnn.describe: error: ") and message.format(**fill) in lines[0]
