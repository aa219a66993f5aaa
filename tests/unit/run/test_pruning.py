"""Pruning (issue 17): the rule on rank 0 (run/pruning.py), the trainers' rungs, and the loop in one process."""
import json

import numpy as np
import pytest
import torch

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import RESIDUAL_LIKE
from bqnn.config import PruningConfig, load
from bqnn.run.pruning import NOT_REACHED, Pruner, rung_row
from bqnn.training.result import Halt, Status, candidate_seed
from tests.conftest import ROOT, SIM_SMALL_NET, needs_fashion, run_module, search_in_process


def ref(*columns):
    """Reference rows from per-rung lists (shorter lists: the rung not reached)."""
    n = max(len(c) for c in columns)
    rows = np.full((n, 8), NOT_REACHED)
    for k, col in enumerate(columns):
        rows[: len(col), k] = col
    return rows


class At:
    """A task's stand-in for the rule: only its id and iteration matter."""

    def __init__(self, iteration, cid=0):
        self.iteration, self.id = iteration, cid


def fed(cfg, rows, iteration=0):
    """A pruner whose reference is `rows`, recorded as candidates of `iteration`."""
    p = Pruner(cfg)
    for r in rows:
        p.record(iteration, r)
    return p


def test_median_rule_stops_below_the_rungs_median_and_not_before_the_minimum():
    four = ref([10, 20, 30, 40], [50, 60, 70])  # rung 3 reached by three only
    p = fed(PruningConfig(rule="median", rungs=(1, 3), min_candidates=4), four)
    assert p.decide(At(1), 1, 24.9)  # median of 10..40 is 25
    assert not p.decide(At(1), 1, 25.0) and not p.decide(At(1), 1, 90)
    assert not p.decide(At(1), 3, 0.0)  # three candidates reached rung 3: fewer than 4
    assert not p.decide(At(1), 2, 0.0)  # not a rung
    assert p.cutoffs(1) == [25.0, None]
    assert not fed(PruningConfig(rule="median", min_candidates=5), four).decide(At(1), 1, 0.0)


def test_the_reference_is_computed_once_per_reference():
    class Counting(Pruner):
        computed = 0

        def cutoffs_for(self, rows):
            Counting.computed += 1
            return super().cutoffs_for(rows)

    p = Counting(PruningConfig(rule="median", rungs=(1,), min_candidates=1))
    for r in ref([10, 20, 30]):
        p.record(0, r)
    for _ in range(5):
        p.decide(At(3), 1, 15)
    p.decide(At(4), 1, 15)
    assert Counting.computed == 2


def test_successive_halving_keeps_the_best_third():
    rows = ref(list(range(0, 100)))
    p = fed(PruningConfig(rule="halving", rungs=(1,), reduction=3, min_candidates=3), rows)
    cut = p.cutoffs(1)[0]
    assert cut == pytest.approx(np.quantile(np.arange(100), 2 / 3))
    assert p.decide(At(1), 1, cut - 0.01) and not p.decide(At(1), 1, cut)
    assert rung_row([1.5, 2.5]).tolist() == [1.5, 2.5] + [NOT_REACHED] * 6


def test_a_stop_that_arrives_after_the_candidate_finished_still_stands():
    """Under MPI a candidate may finish before rank 0's PRUNE reaches it: its record is pruned at that rung all
    the same (the record never depends on message timing), with the seconds it really took."""
    from bqnn.training.result import TrainResult

    p = fed(PruningConfig(rule="median", rungs=(1, 3), min_candidates=4), ref([10, 20, 30, 40], [50, 60, 70, 80]))
    assert p.decide(At(1, cid=7), 1, 12.0)
    finished = TrainResult(Status.OK, accuracy=55.0, seconds=9.0, epochs=12, rungs=[12.0, 40.0])
    settled = p.settle(At(1, cid=7), finished)
    assert (settled.status, settled.epochs, settled.accuracy, settled.rungs, settled.seconds) == \
        (Status.PRUNED, 1, 12.0, [12.0], 9.0)
    assert p.settle(At(1, cid=8), finished) is finished  # never stopped: as it came


SMALL = ["data.train_subset=1500", "data.val_size=500", "data.resize=14", "network.blocks_per_stage=1",
         "network.filters=[8,16,32]", "trainer.epochs=3", "trainer.batch_size=100", "trainer.lr_step=1",
         "pruning.rule=median", "pruning.rungs=[1,2]",
         "trainer.threads=2"]  # fixed: the pruned and the full training are compared bit for bit


@needs_fashion
def test_the_real_trainer_stops_within_one_batch_of_the_answer_and_trains_on_without_one():
    from bqnn.training.early_stop import EarlyStopTrainer

    trainer = EarlyStopTrainer(load(None, SMALL), torch.device("cpu"))
    seed = candidate_seed(0, canonical_hash(RESIDUAL_LIKE))
    per_epoch = 1500 // 100  # batches per epoch: 1,500 training images (the 500 validation ones are apart)
    polls, reported = [], []

    def on_epoch(epoch, accuracy):
        if accuracy is not None:  # a rung (the other epochs are told too: progress)
            reported.append((epoch, accuracy, len(polls)))
        return False

    def poll():  # the worker's poll: rank 0's PRUNE for rung 1 is there at the 3rd poll after the rung
        polls.append(1)
        if reported and len(polls) == reported[0][2] + 3:
            return Halt(1)
        return None

    r = trainer.train(RESIDUAL_LIKE, seed, 1, poll=poll, on_epoch=on_epoch)
    assert r.status == Status.PRUNED and r.epochs == 1 and r.accuracy == reported[0][1] and r.rungs == [r.accuracy]
    assert len(polls) == per_epoch + 3  # stopped at the poll that saw the answer: no batch after it
    full = trainer.train(RESIDUAL_LIKE, seed, 1, on_epoch=lambda e, a: False)  # nobody stops it
    assert full.status == Status.OK and full.epochs == 3 and len(full.rungs) == 2
    assert full.rungs[0] == r.accuracy  # the same training up to the rung
    early = trainer.train(RESIDUAL_LIKE, seed, 1, on_epoch=lambda e, a: True)
    assert early.status == Status.PRUNED and early.epochs == 1  # stopped in on_epoch itself (one process)


def _rule_holds(c, cfg):
    """Every decision in `c` (a batch search, by id) is the rule applied to the earlier iterations."""
    trained = c[c["repeat"] == 0]
    p = Pruner(cfg)
    for row in trained:
        p.record(int(row["iteration"]), row["rungs"])
    checked = 0
    for row in trained:
        cuts = p.cutoffs(int(row["iteration"]))  # from the candidates of the earlier iterations
        for k, epoch in enumerate(cfg.rungs):
            acc = row["rungs"][k]
            if acc == NOT_REACHED:
                break
            stopped_here = row["status"] == Status.PRUNED and row["epochs"] == epoch
            assert stopped_here == (cuts[k] is not None and acc < cuts[k]), (row["id"], k, acc, cuts[k])
            checked += stopped_here
    return checked


PRUNE_SIM = SIM_SMALL_NET + ["space.max_index=8", "search.blocks_per_iteration=12",
                             "search.schedule=[[1.0, 3], [0.5, 2], [0.1, 2]]", "search.replay_samples=8",
                             "pruning.rule=median", "pruning.rungs=[1,3,6]", "pruning.min_candidates=10"]


def test_a_simulated_search_prunes_by_the_rule_records_and_reports_it(tmp_path):
    cfg = load(None, PRUNE_SIM).pruning
    state, c, log = search_in_process(tmp_path, "pruned", PRUNE_SIM)
    pruned = c[(c["status"] == Status.PRUNED) & (c["repeat"] == 0)]
    assert _rule_holds(c, cfg) == len(pruned) > 10
    assert not (c[c["iteration"] == 0]["status"] == Status.PRUNED).any()  # fewer than 10 before it: never blind
    for row in pruned:
        k = list(cfg.rungs).index(int(row["epochs"]))
        assert row["accuracy"] == row["rungs"][k] and (row["rungs"][k + 1:] == NOT_REACHED).all()
    ok = c[(c["status"] == Status.OK) & (c["repeat"] == 0)]
    assert (ok["epochs"] == 12).all() and (ok["rungs"][:, :3] >= 0).all()
    again = c[(c["repeat"] == 1) & np.isin(c["hash"], pruned["hash"])]
    assert len(again) and (again["status"] == Status.PRUNED).all()  # drawn again: a repeat, answered as pruned
    from bqnn.blocks.reward import reward

    row = pruned[0]
    assert row["reward"] == reward(row["accuracy"], row["flops"], row["density"], load(None, PRUNE_SIM).reward)
    assert f"pruned {len(pruned)}" in log.splitlines()[-3]  # the last iteration's progress line counts them
    s = json.loads(run_module("bqnn.report", str(tmp_path / "pruned"), "--json").stdout)
    trained = c[c["repeat"] == 0]
    assert s["pruned"] == len(pruned) and s["epochs_trained"] == int(trained["epochs"].sum())
    assert s["epochs_trained"] < 12 * len(trained)
    r = run_module("bqnn.report", str(tmp_path / "pruned"))  # the curves with the rung cut-offs are drawn
    assert r.returncode == 0 and (tmp_path / "pruned" / "report" / "rungs.png").stat().st_size > 10_000
    header, first = (tmp_path / "pruned" / "report" / "candidates.csv").read_text().splitlines()[:2]
    assert header.endswith(",rungs") and len(first.rsplit(",", 1)[1].split()) >= 1


def test_the_failure_reward_for_pruned_candidates(tmp_path):
    _, c, _ = search_in_process(tmp_path, "failure", PRUNE_SIM + ["pruning.reward=failure",
                                                                  "reward.failure_accuracy=5"])
    pruned = c[c["status"] == Status.PRUNED]
    assert len(pruned) and len(set(pruned["reward"][pruned["flops"] == pruned["flops"][0]].tolist())) == 1


def test_the_paper_jobs_do_not_prune_and_the_pruned_job_differs_only_in_pruning():
    from bqnn.config import diff

    paper, pruned = load(ROOT / "jobs" / "cifar100_paper.toml"), load(ROOT / "jobs" / "cifar100_pruned.toml")
    assert paper.pruning.rule == "none" and load(ROOT / "jobs" / "cifar100_paper_L.toml").pruning.rule == "none"
    assert pruned.pruning.rule == "median" and {k.split(".")[0] for k in diff(paper, pruned)} == {"pruning"}


@pytest.mark.parametrize("value,message", [
    ("pruning.rungs=[1,12]", "pruning.rungs: must be 1 to 8 increasing epoch counts below trainer.epochs (12)"),
    ("pruning.rungs=[3,1]", "pruning.rungs"),
    ("pruning.rungs=[0]", "pruning.rungs[0]"),
    ("pruning.quantile=0", "pruning.quantile: must be above 0.0"),
    ("pruning.quantile=1.5", "pruning.quantile: must be below 1.0"),
    ("pruning.reduction=1", "pruning.reduction"),
    ("pruning.min_candidates=0", "pruning.min_candidates"),
    ("pruning.rule=asha", "pruning.rule: expected one of 'none', 'median', 'halving'"),
])
def test_a_bad_pruning_config_is_one_line_and_exit_2(tmp_path, value, message):
    out = tmp_path / "never"
    r = run_module("bqnn.search", "--config", "/dev/null", "--out", str(out), "--set", "pruning.rule=median",
                   "--set", value, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not out.exists()
