"""training/core_share.py: the thread count a CPU candidate gets is the cores other processes leave free."""
import os
import subprocess
import sys
import time

import pytest
import torch

from bqnn.config import load
from bqnn.training.core_share import CoreShare, busy_seconds, threads_for
from tests.conftest import needs_fashion

STAT = """cpu  900 0 900 9000 0 0 0 0 0 0
cpu0 {u0} 0 {s0} 5000 7 1 2 3 0 0
cpu1 {u1} 0 {s1} 4000 0 0 0 0 0 0
intr 12345
"""


def write_stat(path, u0=100, s0=50, u1=200, s1=0):
    path.write_text(STAT.format(u0=u0, s0=s0, u1=u1, s1=s1))


@pytest.mark.parametrize("cores,others,upper,threads", [
    (2, 0.0, 2, 2), (2, 0.4, 2, 2), (2, 0.6, 2, 1), (2, 1.0, 2, 1), (2, 3.0, 2, 1),  # a busy neighbour: one core
    (8, 0.0, 4, 4), (8, 5.2, 4, 3), (1, 0.0, 1, 1), (16, 0.9, 16, 15),
])
def test_threads_for_is_the_free_cores_within_the_share(cores, others, upper, threads):
    assert threads_for(cores, others, upper) == threads


def test_busy_seconds_counts_the_listed_cpus_without_idle_and_iowait(tmp_path):
    stat = tmp_path / "stat"
    write_stat(stat)
    tick = os.sysconf("SC_CLK_TCK")
    assert busy_seconds({0}, stat) == pytest.approx((100 + 50 + 1 + 2 + 3) / tick)  # user, system, irq, softirq, steal
    assert busy_seconds({0, 1}, stat) == pytest.approx((156 + 200) / tick)
    assert busy_seconds({5}, stat) is None  # none of its CPUs listed: the static share
    assert busy_seconds({0}, tmp_path / "missing") is None
    stat.write_text("cpu0 1 2\n")
    assert busy_seconds({0}, stat) is None


def test_a_neighbour_takes_a_thread_and_gives_it_back(tmp_path):
    stat = tmp_path / "stat"
    write_stat(stat)
    share = CoreShare(upper=2, cpus={0, 1}, stat=stat)
    time.sleep(0.2)
    assert share.next() == 2  # nobody else used the CPUs (the counters did not move)
    time.sleep(0.2)
    write_stat(stat, u0=100 + 10_000)  # 100 s of another process's work on cpu0 within 0.2 s: fully busy
    assert share.next() == 1 and share.others > 1
    time.sleep(0.2)
    assert share.next() == 2 and share.others == 0.0  # it left
    assert CoreShare(upper=3, cpus={0, 1}, stat=tmp_path / "missing").next() == 3  # unreadable: the static share


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs to leave one free")
def test_beside_processes_that_fill_the_cpus_a_candidate_gets_one_thread():
    """Real /proc/stat: one spinning process on each of the machine's CPUs (the test's own affinity may be one
    core: pytest-xdist workers are pinned), for a second and a half."""
    cpus = set(range(os.cpu_count() or 1))
    share = CoreShare(upper=len(cpus), cpus=cpus)
    spin = [subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{c}}})\nwhile True: pass"])
            for c in sorted(cpus)]
    try:
        time.sleep(1.5)
        assert share.next() == 1 and share.others > len(cpus) - 0.5, share.others
    finally:
        for p in spin:
            p.kill()
            p.wait()


@needs_fashion
def test_the_trainer_adapts_only_when_threads_are_not_fixed(tmp_path):
    from bqnn.training.early_stop import EarlyStopTrainer

    n = torch.get_num_threads()
    cfg = ["data.train_subset=200", "data.val_size=100", "data.resize=14"]
    try:
        assert EarlyStopTrainer(load(None, cfg), torch.device("cpu")).core_share is not None
        assert EarlyStopTrainer(load(None, cfg + ["trainer.threads=1"]), torch.device("cpu")).core_share is None
        assert EarlyStopTrainer(load(None, cfg + ["trainer.deterministic=true"]),
                                torch.device("cpu")).core_share is None
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(n)

    # each candidate asks: a neighbour filling a CPU (the stat file's counters leap) leaves one thread
    from bqnn.blocks.code import RESIDUAL_LIKE

    stat = tmp_path / "stat"
    write_stat(stat)
    trainer = EarlyStopTrainer(load(None, cfg + ["trainer.epochs=1"]), torch.device("cpu"))
    trainer.core_share = CoreShare(upper=2, cpus={0, 1}, stat=stat)
    try:
        time.sleep(0.1)
        write_stat(stat, u1=200 + 10_000)
        trainer.train(RESIDUAL_LIKE, 1, 1)
        assert torch.get_num_threads() == 1
        time.sleep(0.1)
        trainer.train(RESIDUAL_LIKE, 1, 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)
