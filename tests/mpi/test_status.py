"""The live status (run/status.py, python -m bqnn.status) of a real `mpiexec -n 3` search: each worker seen training,
then idle, then the run finished; a SIGKILLed search reported as not running; progress lines within a long
iteration; an ETA from this run's pace."""
import json
import re
import signal
import time

from bqnn.run.status import read
from tests.conftest import (
    mpi_search,
    needs_mpiexec,
    run_module,
    sigkill_search,
    start_mpi_search,
    wait_for,
)

pytestmark = needs_mpiexec

SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "trainer.sim_seconds=0.6",
       "--set", "search.blocks_per_iteration=4", "--set", "search.schedule=[[1.0, 3]]", "--set", "space.max_index=8",
       "--set", "trainer.epochs=3", "--set", "search.status_interval=0.2", "--set", "trainer.sim_sigma=0.8"]


def status(out):
    r = run_module("bqnn.status", str(out), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_status_shows_each_worker_training_then_idle_then_finished(tmp_path):
    out = tmp_path / "run"
    p = start_mpi_search(3, out, *SIM, "--set", "search.schedule=[[1.0, 5]]")
    seen: dict[int, set] = {1: set(), 2: set()}
    epochs_seen = set()
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        doc = read(out)  # in this process: sampled every 50 ms (the status is replaced every 0.2 s here)
        if doc is not None and doc["state"] == "running":
            for r in doc["ranks"]:
                seen[r["rank"]].add(r["state"])
                if r["state"] == "training":
                    assert r["candidate"] >= 0 and len(r["hash"]) == 16 and 0 <= r["epoch"] <= 3
                    epochs_seen.add(r["epoch"])
        time.sleep(0.05)
    assert p.wait(timeout=60) == 0
    assert all("training" in s and "idle" in s for s in seen.values()), seen
    assert epochs_seen >= {0, 1, 2}, epochs_seen  # epoch k of 3, as the workers report each epoch's end
    d = status(out)
    assert d["running"] is False and d["status"]["state"] == "finished"
    assert d["status"]["candidates"] == d["status"]["planned"] == 20 and d["status"]["trained"] >= 15
    assert [r["state"] for r in d["status"]["ranks"]] == ["idle", "idle"]
    text = run_module("bqnn.status", str(out)).stdout
    assert f"{out}: not running (no search holds its lock); it finished; it last lived" in text


def test_a_killed_search_is_reported_as_not_running(tmp_path):
    out = tmp_path / "run"
    p = start_mpi_search(3, out, *SIM, "--set", "search.schedule=[[1.0, 30]]")
    assert wait_for(lambda: (out / "status.json").exists() and status(out)["status"]["candidates"] > 2, 60)
    running = status(out)
    assert running["running"] is True and "holds its lock" in running["why"]
    sigkill_search(p, out)
    d = status(out)
    assert d["running"] is False and d["status"]["state"] == "running"  # the last it wrote, before it died
    assert "the lock's holder is gone (its process is gone)" in d["why"]
    text = run_module("bqnn.status", str(out)).stdout
    assert "it ended without a word: killed, or its node lost; run the same command to resume" in text


def test_progress_lines_within_a_long_iteration_and_an_eta_from_this_runs_pace(tmp_path):
    """A line at least every `search.progress_interval` while an iteration runs; on resume at another pace
    (trainer.sim_seconds is a runtime key) the ETA follows this run, not the first one's."""
    out = tmp_path / "run"
    slow = [*SIM, "--set", "search.schedule=[[1.0, 2], [0.5, 6]]", "--set", "search.blocks_per_iteration=8",
            "--set", "trainer.sim_seconds=1.0", "--set", "search.progress_interval=1"]
    p = start_mpi_search(3, out, *slow)
    assert wait_for(lambda: (out / "status.json").exists() and status(out)["status"]["iteration"] >= 1, 60)
    p.send_signal(signal.SIGTERM)
    stdout, _ = p.communicate(timeout=60)
    assert p.returncode == 143
    running = [line for line in stdout.splitlines() if line.startswith("  .. iter")]
    assert running and re.search(r"  \.\. iter 1/8: \d+ of 8 candidates in \(\d+ trained, \d+ from the cache\), "
                                 r"\d training now; (best so far -?\d+\.\d\d|nothing recorded yet)  \| elapsed "
                                 r"0:00:\d\d  ETA ", running[0]), running
    fast = [a if a != "trainer.sim_seconds=1.0" else "trainer.sim_seconds=0.05" for a in slow]
    r = mpi_search(3, out, *fast)
    assert r.returncode == 0, r.stderr
    assert "the " in r.stdout and "candidates recorded are kept" in r.stdout
    etas = [line.rsplit("ETA ", 1)[1].split()[0] for line in r.stdout.splitlines() if line.startswith("iter ")]
    known = [e for e in etas if e != "-"]
    assert known and all(e in ("0:00:00", "0:00:01", "0:00:02", "0:00:03") for e in known), etas
