"""One writer per output directory (run/lock.py): a live holder is named and refused, a provably dead one is
broken; two real searches on one --out, started together or one after the other: exactly one runs."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from bqnn.run.lock import LOCKNAME, LockError, OutputLock, stale_reason
from tests.conftest import ROOT, race

SLOW = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "trainer.sim_seconds=0.4",
        "--set", "search.schedule=[[1.0, 2]]", "--set", "search.blocks_per_iteration=6"]


def write_lock(d, **over):
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "start": "", "slurm_job": "", "taken": time.time(),
              "renewed": time.time()}
    holder.update(over)
    d.mkdir(parents=True, exist_ok=True)
    (d / LOCKNAME).write_text(json.dumps(holder))
    return holder


def test_taken_renewed_and_released(tmp_path):
    with OutputLock(tmp_path / "out", renew_every=0.05) as lock:
        first = json.loads((tmp_path / "out" / LOCKNAME).read_text())
        assert first["pid"] == os.getpid() and lock.broke is None
        time.sleep(0.3)
        assert json.loads((tmp_path / "out" / LOCKNAME).read_text())["renewed"] > first["renewed"]
        with pytest.raises(LockError, match=rf"is in use by another search \(host {socket.gethostname()} pid "
                                            rf"{os.getpid()}, renewed \d+ s ago\)"):
            OutputLock(tmp_path / "out").acquire()  # a second lock, even in the same process
    assert not (tmp_path / "out" / LOCKNAME).exists()


def test_a_live_holder_on_another_host_is_refused_until_it_stops_renewing(tmp_path):
    holder = write_lock(tmp_path, host="node-17", pid=1, slurm_job="4242")
    assert stale_reason(holder) is None
    with pytest.raises(LockError, match="host node-17 pid 1, SLURM job 4242"):
        OutputLock(tmp_path).acquire()
    write_lock(tmp_path, host="node-17", pid=1, renewed=time.time() - 700)
    lock = OutputLock(tmp_path)
    lock.acquire()
    assert "was not renewed for 600 s" in lock.broke
    lock.release()


def test_a_dead_or_reused_pid_on_this_host_is_stale(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert stale_reason(write_lock(tmp_path, pid=p.pid)) == "its process is gone"
    assert stale_reason(write_lock(tmp_path, pid=os.getpid(), start="1")) == "its process is gone"  # pid reused
    assert stale_reason(write_lock(tmp_path, pid=os.getpid())) is None


def test_the_same_slurm_job_is_a_requeued_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    assert "requeued" in stale_reason(write_lock(tmp_path, host="node-3", pid=1, slurm_job="777"))
    assert stale_reason(write_lock(tmp_path, host="node-3", pid=1, slurm_job="778")) is None


def test_a_lock_being_written_is_waited_for_and_an_old_empty_one_broken(tmp_path):
    (tmp_path / LOCKNAME).write_text("")
    os.utime(tmp_path / LOCKNAME, (time.time() - 60, time.time() - 60))
    lock = OutputLock(tmp_path)
    lock.acquire()
    assert "unreadable" in lock.broke
    lock.release()


def start(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "bqnn.search", "--out", str(out), *SLOW, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.parametrize("stagger", [0.0, 1.5])
def test_two_searches_on_one_directory_exactly_one_runs(tmp_path, stagger):
    out = tmp_path / "run"
    results = race(lambda: start(out), stagger, timeout=120)
    assert sorted(r[0] for r in results) == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert loser[2].strip().splitlines() == [loser[2].strip()]  # one line
    assert f"{out} is in use by another search (host {socket.gethostname()} pid " in loser[2]
    assert loser[3] < 5  # at once, while the other one runs (about 2 s of simulated training)
    assert not (out / LOCKNAME).exists()


def test_a_killed_holder_not_yet_reaped_is_gone(tmp_path):
    """A SIGKILLed rank 0 stays a zombie until its parent (an MPI proxy) reaps it; kill(pid, 0) still works."""
    import signal

    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = write_lock(tmp_path, pid=p.pid, start="")
        assert stale_reason(holder) is None
        os.kill(p.pid, signal.SIGKILL)
        time.sleep(0.5)  # not waited for: a zombie
        assert stale_reason(holder) == "its process is gone"
    finally:
        p.wait()
