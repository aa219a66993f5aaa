"""The landscape table (landscape/table.py, results/landscape.py, landscape/check.py) and the table trainer
(training/table.py): built from exhaustive searches, written, read back and answered from, with equal numbers."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from bqnn.blocks.space import Space
from bqnn.config import load
from bqnn.landscape.check import check
from bqnn.landscape.table import NOT_TRAINED, Table
from bqnn.results.landscape import build
from bqnn.strategies.exhaustive import distinct_blocks
from bqnn.training.result import Status
from bqnn.training.table import TableTrainer
from tests.conftest import ROOT, needs_fashion, run_module, search_in_process

# The recipe of a tiny table: the simulated trainer's curves (training/simulated.py), every epoch recorded
RECIPE = ["search.strategy=exhaustive", "trainer.kind=simulated", "space.max_index=4", "search.blocks_per_iteration=32",
          "trainer.epochs=4", "pruning.record=true", "pruning.rungs=[1,2,3]", "network.blocks_per_stage=1",
          "network.filters=[8,16,32]", "data.resize=14"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    base = tmp_path_factory.mktemp("landscape")
    dirs = []
    for seed in (0, 1, 2):
        search_in_process(base, f"seed-{seed}", [*RECIPE, f"search.seed={seed}", "trainer.sim_seconds=0.0"])
        dirs.append(base / f"seed-{seed}")
    return dirs


@pytest.fixture(scope="module")
def table_file(seeds, tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "landscape.h5"
    build(seeds, command="test").write(path)
    return path


@pytest.fixture(scope="module")
def noisy_file(seeds, tmp_path_factory):
    """The table with seed s's accuracies moved by s/2 points: the simulated trainer gives every seed the same
    numbers, a real table does not, and which seed answered must be visible."""
    path = tmp_path_factory.mktemp("noisy") / "landscape.h5"
    t = build(seeds, command="test")
    for s in range(3):
        t.accuracy[:, s] += s / 2
        t.curve[:, s] += s / 2
    t.write(path)
    return path


def test_a_table_round_trips_from_the_searches_to_the_file(seeds, table_file):
    from bqnn.run import checkpoint

    t = Table.read(table_file)
    blocks = distinct_blocks(Space(4))
    assert [h.decode() for h in t.hash] == [h for h, _ in blocks] and t.seeds == [0, 1, 2] and t.epochs == 4
    for s, d in enumerate(seeds):
        c = checkpoint.load(d)[0].candidates
        for rec in c:
            i = t.row(rec["hash"].decode())
            assert t.status[i, s] == rec["status"] == Status.OK
            assert t.accuracy[i, s] == np.float32(rec["accuracy"]) and t.seconds[i, s] == np.float32(rec["seconds"])
            assert np.array_equal(t.curve[i, s], np.float32([*rec["rungs"][:3], rec["accuracy"]]))
            assert t.params[i] == rec["params"] and t.flops[i] == rec["flops"]
    assert check(t) == ["it does not say which machine trained each seed"]  # no machines.jsonl beside these
    assert json.loads(t.attrs["versions"])[0]["numpy"] == np.__version__


def test_the_table_trainer_answers_one_recorded_seed_chosen_by_the_candidate_seed(noisy_file):
    cfg = load(None, [*RECIPE, "trainer.kind=table", f"trainer.table={noisy_file}", "search.strategy=qlearning"])
    trainer = TableTrainer(cfg)
    t = trainer.table
    for h, nsc in distinct_blocks(Space(4))[:20]:
        i = t.row(h)
        for seed in range(7):
            r = trainer.train(nsc, seed)
            s = seed % 3
            assert (r.status, r.accuracy, r.seconds, r.epochs) == (Status.OK, float(t.accuracy[i, s]),
                                                                  float(t.seconds[i, s]), 4)
            assert r == trainer.train(nsc, seed)  # deterministic
    accs = {trainer.train(nsc, seed).accuracy for seed in range(3) for nsc in [distinct_blocks(Space(4))[5][1]]}
    assert len(accs) == 3  # the three seeds differ: repeated draws see the seed-to-seed noise


def test_rungs_come_from_the_curve_and_pruning_charges_the_epochs_trained(noisy_file):
    cfg = load(None, [*RECIPE, "trainer.kind=table", f"trainer.table={noisy_file}", "search.strategy=qlearning",
                      "pruning.rule=median", "pruning.rungs=[1,3]", "pruning.record=false"])
    trainer = TableTrainer(cfg)
    h, nsc = distinct_blocks(Space(4))[7]
    i, s = trainer.table.row(h), 4 % 3
    seen = []
    r = trainer.train(nsc, 4, on_epoch=lambda e, a: seen.append((e, a)) is not None)
    curve = trainer.table.curve[i, s]
    assert seen == [(1, float(curve[0])), (2, None), (3, float(curve[2])), (4, None)]  # every epoch, rungs' accuracy
    assert r.rungs == [float(curve[0]), float(curve[2])]

    def stop_at_3(epoch, accuracy):
        return epoch == 3

    p = trainer.train(nsc, 4, on_epoch=stop_at_3)
    assert (p.status, p.epochs, p.accuracy) == (Status.PRUNED, 3, float(curve[2]))
    assert p.seconds == pytest.approx(float(trainer.table.seconds[i, s]) * 3 / 4)


def test_a_search_on_the_table_equals_the_tables_numbers(noisy_file, tmp_path):
    """Q-learning on the table, one process: every trained candidate's accuracy and seconds are one of its
    block's recorded trainings."""
    state, c, _ = search_in_process(tmp_path, "q", [*RECIPE, "trainer.kind=table", f"trainer.table={noisy_file}",
                                                    "search.strategy=qlearning", "search.schedule=[[1.0, 2], [0.2, 2]]",
                                                    "search.blocks_per_iteration=8", "search.replay_samples=8"])
    t = Table.read(noisy_file)
    for rec in c[c["repeat"] == 0]:
        i = t.row(rec["hash"].decode())
        assert rec["accuracy"] in set(t.accuracy[i].astype(float).tolist())
        assert np.float32(rec["seconds"]) in set(t.seconds[i].tolist())


@pytest.mark.parametrize("change,named", [("space.max_index=5", "space.max_index"),
                                          ("network.filters=[8,16,64]", "network.filters"),
                                          ("trainer.epochs=6", "trainer.epochs"),
                                          ("data.val_size=500", "data.val_size")])
def test_a_search_that_is_not_the_tables_recipe_is_refused_in_one_line(table_file, tmp_path, change, named):
    r = run_module("bqnn.search", "--config", "/dev/null", "--out", str(tmp_path / "x"),
                   *[x for s in [*RECIPE, "trainer.kind=table", f"trainer.table={table_file}",
                                 "search.strategy=random", change] for x in ("--set", s)])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"this search is not the table's recipe ({named} differ)" in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_missing_or_damaged_table_is_one_line_and_exit_2(table_file, tmp_path):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(table_file.read_bytes())
    with h5py.File(damaged, "r+") as f:  # an edited accuracy: the contents' checksum tells
        a = f["accuracy"][()]
        a[3, 1] += 1
        f["accuracy"][...] = a
    flipped = tmp_path / "flipped.h5"
    data = bytearray(table_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    for path, words in ((tmp_path / "none.h5", "does not exist"), (damaged, "do not match their checksum"),
                        (flipped, ""), (ROOT / "jobs" / "demo.toml", "unreadable")):
        r = run_module("bqnn.search", "--config", "/dev/null", "--out", str(tmp_path / "x"),
                       *[x for s in [*RECIPE, "trainer.kind=table", f"trainer.table={path}",
                                     "search.strategy=random"] for x in ("--set", s)])
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


def test_check_names_what_an_incomplete_table_lacks(seeds, table_file):
    t = Table.read(table_file)
    t.attrs["machine"] = json.dumps([[{"cpu": "test"}]] * 3)
    assert check(t) == []
    t.status[0, 2] = NOT_TRAINED
    t.seeds, t.status, t.accuracy, t.curve, t.seconds, t.restarts = (
        t.seeds[:2], t.status[:, :2], t.accuracy[:, :2], t.curve[:, :2], t.seconds[:, :2], t.restarts[:, :2])
    assert check(t) == ["it has 2 seeds, fewer than 3", "it does not say which versions trained each seed",
                        "it does not say which machine trained each seed"]
    partial = build(seeds[:1])
    partial.status[:10] = NOT_TRAINED
    assert "10 of 125 trainings are not in it" in check(partial)


@needs_fashion
def test_a_table_of_real_trainings_on_fashion_mnist(tmp_path):
    """The real trainer: two seeds of the 9 blocks of max_index 3 on a small Fashion-MNIST subset, every epoch's
    accuracy recorded, built into a table that the table trainer answers from with the recorded numbers."""
    real = [r for r in RECIPE if not r.startswith(("trainer.kind", "space.max_index"))] + [
        "space.max_index=3", "data.train_subset=300", "data.val_size=200", "trainer.batch_size=64",
        "trainer.threads=1", "trainer.amp=off"]
    dirs = []
    for seed in (0, 1):
        search_in_process(tmp_path, f"real-{seed}", [*real, f"search.seed={seed}"])
        dirs.append(tmp_path / f"real-{seed}")
    table = build(dirs)
    assert len(table.hash) == 9 and (table.status == Status.OK).all() and np.isfinite(table.curve).all()
    assert (table.seconds > 0).all() and not np.array_equal(table.accuracy[:, 0], table.accuracy[:, 1])
    table.write(tmp_path / "t.h5")
    trainer = TableTrainer(load(None, [*real, "trainer.kind=table", f"trainer.table={tmp_path / 't.h5'}"]))
    h, nsc = distinct_blocks(Space(3))[4]
    assert trainer.train(nsc, 1).accuracy == float(table.accuracy[table.row(h), 1])


def test_the_bench_builds_and_checks_from_the_command_line(seeds, tmp_path):
    runs = seeds[0].parent
    out = tmp_path / "t.h5"
    r = subprocess.run([sys.executable, "bench/landscape.py", "build", "--runs", str(runs), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}: 125 blocks x 3 seeds, 375 of 375 trainings" in r.stdout
    r = subprocess.run([sys.executable, "bench/landscape.py", "check", str(out)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1 and "does not say which machine trained each seed" in r.stdout


COMMITTED = ROOT / "bench" / "data" / "landscape.h5"


@pytest.mark.skipif(not COMMITTED.exists(), reason="the landscape table is not committed yet (bench/landscape.py)")
def test_the_committed_table_is_complete_and_answers_its_own_recipe():
    """bench/data/landscape.h5: its digest holds (Table.read), `bench/landscape.py check` finds nothing missing (every
    block of its space, 3 seeds, curves, recipe, machines), and the table trainer accepts jobs/landscape.toml's
    recipe and answers a block with one of its recorded seeds."""
    table = Table.read(COMMITTED)
    assert check(table, min_seeds=3) == []
    r = subprocess.run([sys.executable, "bench/landscape.py", "check", str(COMMITTED)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("complete"), r.stdout + r.stderr
    trainer = TableTrainer(load(ROOT / "jobs" / "landscape.toml", ["trainer.kind=table", f"trainer.table={COMMITTED}"]))
    h, nsc = distinct_blocks(Space.of(load(ROOT / "jobs" / "landscape.toml").space))[100]
    answer = trainer.train(nsc, 12345).accuracy
    assert answer in table.accuracy[table.row(h)].tolist()
