"""A search file written by a newer bqnn is not damage (issue 25): every reader names it in one line and exits 2,
and neither search.h5 nor its .bak changes; an older .bak beside a current search.h5 is simply not read."""
import hashlib
import json
import shutil
import signal
import subprocess
import sys

import h5py
import pytest

from bqnn.run import checkpoint
from tests.conftest import ROOT, run_module, wait_for

SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.schedule=[[1.0, 3]]",
       "--set", "search.blocks_per_iteration=4"]
NEWER = checkpoint.SCHEMA_VERSION + 1


def set_schema(path, version, wrote="9.9.9"):
    """Edit the file as another bqnn would have written it, and seal it again (a file whose checksum fails is
    damage, which is not what is tested here)."""
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = version
        f.attrs["versions"] = json.dumps({"bqnn": wrote})
    checkpoint.seal(path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished search (search.h5 and .bak), and one stopped part-way (iteration 2 of 3) to resume."""
    base = tmp_path_factory.mktemp("newer")
    done = base / "done"
    assert run_module("bqnn.search", "--out", str(done), *SIM).returncode == 0
    part = base / "part"  # stopped by SIGTERM once an iteration is in search.h5
    p = subprocess.Popen([sys.executable, "-m", "bqnn.search", "--out", str(part), *SIM, "--set",
                          "trainer.sim_seconds=0.5"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: iteration(part) >= 1, timeout=60)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 143 and 1 <= iteration(part) < 3
    return done, part


def iteration(d) -> int:
    try:
        return checkpoint.read(d / "search.h5").iteration
    except checkpoint.CheckpointError:
        return 0


def md5s(d):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


READERS = {
    "search": lambda d: ("bqnn.search", "--out", str(d)),
    "report": lambda d: ("bqnn.report", str(d), "--json"),
    "report-files": lambda d: ("bqnn.report", str(d), "--report-dir", str(d.parent / "report-out")),
    "describe": lambda d: ("bqnn.describe", "--from", str(d), "--rank", "1"),
    "describe-code": lambda d: ("bqnn.describe", "residual-like", "--from", str(d), "--json"),
    "train": lambda d: ("bqnn.train", "--from", str(d), "--rank", "1", "--out", str(d.parent / "train-out")),
}


@pytest.mark.parametrize("where", ["main", "bak", "both"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_newer_file_is_one_line_and_exit_2_and_nothing_changes(tmp_path, finished, where, reader):
    d = tmp_path / "run"
    shutil.copytree(finished[1], d)
    if where in ("main", "both"):
        set_schema(d / "search.h5", NEWER)
    if where in ("bak", "both"):
        set_schema(d / "search.h5.bak", NEWER)
    before = md5s(d)
    r = run_module(*READERS[reader](d), timeout=120)
    newer = d / ("search.h5" if where != "bak" else "search.h5.bak")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].endswith(f"{newer} has schema {NEWER}, written by bqnn 9.9.9; this bqnn (0.1.0) reads schemas "
                             f"up to {checkpoint.SCHEMA_VERSION}: use the newer bqnn (both files are left as they are)")
    assert md5s(d) == before
    assert not (d.parent / "train-out").exists() and not (d.parent / "report-out").exists()


def test_an_older_bak_beside_a_current_file_is_not_read(tmp_path, finished):
    """The usual state after an upgrade: search.h5 rewritten by this bqnn, .bak still of the schema before. The
    search resumes from search.h5, and the report reads it."""
    d = tmp_path / "run"
    shutil.copytree(finished[1], d)
    set_schema(d / "search.h5.bak", checkpoint.SCHEMA_VERSION - 1, wrote="0.0.9")
    r = run_module("bqnn.report", str(d), "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run_module("bqnn.search", "--out", str(d))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert checkpoint.read(d / "search.h5").iteration == 3
