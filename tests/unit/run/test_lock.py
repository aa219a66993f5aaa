"""One writer per output directory (run/lock.py): a live holder is named and refused, a provably dead one is
broken; two real searches on one --out, started together or one after the other: exactly one runs."""
import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bqnn.run.lock import LOCKNAME, LockError, OutputLock, parse, stale_reason
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


def holder_of(d):
    return parse((d / LOCKNAME).read_text())


def test_an_earlier_run_of_the_same_slurm_job_is_a_requeued_run(tmp_path, monkeypatch):
    """Issue 25: the job id alone proved nothing (a second srun in one allocation has it too). A holder on another
    host is an earlier run of this job only if its SLURM_RESTART_COUNT is lower; one on this host counts as gone
    only if its process is."""
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    requeued = stale_reason(holder_of_written(tmp_path, host="node-3", pid=1, slurm_job="777", slurm_restart="0"))
    assert requeued == "it belongs to an earlier run of this SLURM job (restart 0; this is restart 1: requeued)"
    assert stale_reason(holder_of_written(tmp_path, host="node-3", pid=1, slurm_job="777")) is not None  # no count: 0
    for same in ("1", "2"):  # the same run of the job (another step), or a later one: alive while it renews
        assert stale_reason(holder_of_written(tmp_path, host="node-3", pid=1, slurm_job="777", slurm_restart=same)) \
            is None
    assert stale_reason(holder_of_written(tmp_path, host="node-3", pid=1, slurm_job="778")) is None
    # on this host the process decides: alive is never broken, even by a later restart of its own job
    assert stale_reason(holder_of_written(tmp_path, pid=os.getpid(), slurm_job="777", slurm_restart="0")) is None
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    assert stale_reason(holder_of_written(tmp_path, host="node-3", pid=1, slurm_job="777", slurm_restart="0")) is None


def holder_of_written(d, **over):
    write_lock(d, **over)
    return holder_of(d)


def test_a_lock_being_written_is_waited_for_and_an_old_empty_one_broken(tmp_path):
    (tmp_path / LOCKNAME).write_text("")
    os.utime(tmp_path / LOCKNAME, (time.time() - 60, time.time() - 60))
    lock = OutputLock(tmp_path)
    lock.acquire()
    assert "it is empty and 60 s old" in lock.broke
    lock.release()


NONSENSE = {"pid 1e20": {"pid": 1e20}, "pid text": {"pid": "12x"}, "pid 0": {"pid": 0}, "pid true": {"pid": True},
            "pid huge int": {"pid": 10**30}, "renewed NaN": {"renewed": float("nan")},
            "renewed inf": {"renewed": float("inf")}, "renewed text": {"renewed": "soon"},
            "renewed far ahead": {"renewed": time.time() + 10**9}, "taken negative": {"taken": -5},
            "host empty": {"host": ""}, "host number": {"host": 7}, "start letters": {"start": "abc"},
            "slurm_job list": {"slurm_job": [1]}, "restart text": {"slurm_restart": "x"}}


@pytest.mark.parametrize("case", sorted(NONSENSE))
def test_a_lock_with_nonsense_in_it_is_named_in_one_line(tmp_path, case):
    """Issue 25: a pid of 1e20 was an OverflowError traceback, a text pid an error naming no file, a NaN renewal a
    lock that never went stale. Every field is checked: one line naming the file and what to do, nothing broken."""
    write_lock(tmp_path, **{"host": "node-9", **NONSENSE[case]})
    os.utime(tmp_path / LOCKNAME, (time.time() - 3600, time.time() - 3600))  # old: not one being written
    before = (tmp_path / LOCKNAME).read_bytes()
    with pytest.raises(LockError) as e:
        OutputLock(tmp_path).acquire()
    assert str(e.value).startswith(f"{tmp_path / LOCKNAME} is not a bqnn lock (")
    assert str(e.value).endswith(f"if no search runs in {tmp_path}, remove that file and run again")
    assert "\n" not in str(e.value)
    assert (tmp_path / LOCKNAME).read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [LOCKNAME]


lock_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                             max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.binary(min_size=1, max_size=200),
    st.dictionaries(st.sampled_from(["host", "pid", "start", "slurm_job", "slurm_restart", "taken", "renewed"]),
                    lock_values, max_size=7).map(json.dumps),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=20).map(json.dumps)))
def test_fuzzed_lock_contents_are_a_lock_or_one_line(tmp_path, content):
    """Arbitrary bytes and JSON in search.lock: either a valid lock (judged by its holder: here, a holder on
    another host that renewed just now is alive) or one LockError line naming the file; never another exception,
    and the file is never changed."""
    d = tmp_path / "fuzz"
    d.mkdir(exist_ok=True)
    data = content if isinstance(content, bytes) else content.encode()
    (d / LOCKNAME).write_bytes(data)
    os.utime(d / LOCKNAME, (time.time() - 3600, time.time() - 3600))
    try:
        holder = parse(data.decode("utf-8", "replace"))
    except ValueError:
        holder = None
    lock = OutputLock(d)
    try:
        lock.acquire()
    except LockError as e:
        assert "\n" not in str(e)
        assert str(e).startswith(f"{d / LOCKNAME} is not a bqnn lock (") or holder is not None
    else:  # a valid lock whose holder is provably gone: broken and taken, as any stale lock
        assert holder is not None and lock.broke
        lock.release()
        return
    assert (d / LOCKNAME).read_bytes() == data


def test_a_nonsense_lock_stops_the_search_with_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    write_lock(out, pid=1e20)
    os.utime(out / LOCKNAME, (time.time() - 60, time.time() - 60))  # not one being written
    before = (out / LOCKNAME).read_bytes()
    r = start(out)
    _, err = r.communicate(timeout=60)
    assert r.returncode == 2
    assert err.strip() == (f"bqnn.search: error: {out / LOCKNAME} is not a bqnn lock (pid must be a process id (1 to "
                           f"2147483647), got 1e+20); if no search runs in {out}, remove that file and run again")
    assert sorted(p.name for p in out.iterdir()) == [LOCKNAME] and (out / LOCKNAME).read_bytes() == before


def test_a_failing_heartbeat_says_so_once_leaves_no_file_and_recovers(tmp_path, capfd):
    """Issue 25: a renewal on a full disk left search.lock.PID.tmp behind and ended the search. Now one warning
    naming the path, no file left, the lock still this search's, renewed again once there is room."""
    import shutil
    import subprocess as sp

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if sp.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with OutputLock(mnt / "run", renew_every=0.05) as lock:
            with open(mnt / "filler", "wb") as f:
                f.write(b"\0" * shutil.disk_usage(mnt).free)
            renewed = holder_of(mnt / "run")["renewed"]
            time.sleep(0.5)  # about ten renewals fail
            err = capfd.readouterr().err
            assert err.count("warning: cannot renew") == 1, err
            assert err.strip() == (f"warning: cannot renew {mnt / 'run' / LOCKNAME}: No space left on device (0 bytes "
                                   f"free there); the lock stays held, renewal is tried every 0.05 s")
            assert sorted(p.name for p in (mnt / "run").iterdir()) == [LOCKNAME]  # no .tmp left
            assert holder_of(mnt / "run")["renewed"] == renewed
            (mnt / "filler").unlink()
            time.sleep(0.3)
            assert holder_of(mnt / "run")["renewed"] > renewed and lock.holder is not None
        assert not (mnt / "run" / LOCKNAME).exists()
    finally:
        sp.run(["umount", "-l", str(mnt)], capture_output=True)


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
    winner = next(r for r in results if r[0] == 0)
    assert loser[4] < winner[4]  # at once: while the other one still runs (4.8 s of simulated training)
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


def start_in_job(out, job, step, restart=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_JOB_ID=job, SLURM_STEP_ID=step)
    if restart is not None:
        env["SLURM_RESTART_COUNT"] = restart
    return subprocess.Popen([sys.executable, "-m", "bqnn.search", "--out", str(out), *SLOW], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def candidates(out):
    from bqnn.run import checkpoint

    c = checkpoint.read(out / "search.h5").candidates
    c = c[np.argsort(c["id"])]
    return [(int(i), bytes(h), float(r)) for i, h, r in zip(c["id"], c["hash"], c["reward"], strict=True)]


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The candidates of the SLOW search run alone: what every search that runs must end with."""
    out = tmp_path_factory.mktemp("alone") / "run"
    p = start(out)
    assert p.wait(timeout=120) == 0, p.communicate()
    return candidates(out)


@pytest.mark.parametrize("step", ["0", "1"])
def test_a_second_search_in_the_same_slurm_job_is_refused(tmp_path, alone, step):
    """Issue 25: a second srun in the same allocation (same SLURM_JOB_ID, the same or another step) took over a
    live search, and both wrote search.h5. Now it exits 2 at once with one line, and the first one runs to the end
    with exactly the candidates of a search run alone."""
    out = tmp_path / "run"
    steps = iter(["0", step])
    first, second = race(lambda: start_in_job(out, "4242", next(steps)), 1.5, timeout=120)
    assert first[0] == 0, first
    assert second[0] == 2 and second[4] < first[4], second  # at once: while the first one still runs
    assert len(second[2].strip().splitlines()) == 1
    assert re.fullmatch(rf"bqnn.search: error: {re.escape(str(out))} is in use by another search \(host "
                        rf"{re.escape(socket.gethostname())} pid \d+, SLURM job 4242, renewed \d+ s ago\); wait for "
                        rf"it to end, or use another --out", second[2].strip()), second[2]
    assert "note:" not in first[2]  # nobody broke its lock
    assert candidates(out) == alone


def test_a_killed_search_is_taken_over_at_once_by_its_requeued_job(tmp_path, alone):
    """The requeue of a job whose search was SIGKILLed resumes at once (its pid is gone on this host), and ends
    with the candidates of a search run alone."""
    import signal

    out = tmp_path / "run"
    p = start_in_job(out, "4343", "0")
    deadline = time.monotonic() + 60
    while not (out / "search.h5").exists() or checkpoint_candidates(out) < 3:
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (out / LOCKNAME).exists()  # left by the killed search
    t0 = time.monotonic()
    q = start_in_job(out, "4343", "0", restart="1")
    _, err = q.communicate(timeout=120)
    assert q.returncode == 0, err
    assert "note: broke the stale lock of host" in err and "its process is gone" in err
    assert time.monotonic() - t0 < 30
    assert candidates(out) == alone


def checkpoint_candidates(out) -> int:
    from bqnn.run import checkpoint

    try:
        return len(checkpoint.read(out / "search.h5").candidates)
    except checkpoint.CheckpointError:
        return 0
