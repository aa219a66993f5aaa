"""Write failures are one line and lose nothing (run/checkpoint.py, run/lock.py): a full disk (a small tmpfs)
and a read-only directory; the previous search.h5 and .bak stay readable, no .part is left, and the search
resumes to the uninterrupted result once there is room. Needs root to mount a tmpfs (CI runs as root)."""
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from bqnn.run import checkpoint
from tests.conftest import run_module

SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.schedule=[[1.0, 12]]",
       "--set", "search.blocks_per_iteration=64", "--set", "search.checkpoint_interval=0.05"]


@pytest.fixture
def tiny(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def ids_and_rewards(out):
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
    c = c[np.argsort(c["id"])]
    return c["id"], c["reward"]


def test_a_full_disk_is_one_line_and_the_search_resumes_when_there_is_room(tiny, tmp_path):
    out = tiny / "run"
    r = run_module("bqnn.search", "--out", str(out), *SIM, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"bqnn.search: error: cannot write {out / 'search.h5'}: No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["search.h5", "search.h5.bak"]  # no .part, no lock
    stopped = checkpoint.read(out / "search.h5")
    assert 0 < stopped.iteration < 12 and checkpoint.read(out / "search.h5.bak").iteration <= stopped.iteration
    moved = tmp_path / "moved"  # space freed: the same directory on a disk with room
    shutil.copytree(out, moved)
    r = run_module("bqnn.search", "--out", str(moved), timeout=300)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert run_module("bqnn.search", "--out", str(ref), *SIM, timeout=300).returncode == 0
    a, b = ids_and_rewards(moved), ids_and_rewards(ref)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_read_only_directory_is_one_line_before_any_training(tiny):
    out = tiny / "run"
    sim = [*SIM[:-4], "--set", "search.schedule=[[1.0, 1]]", "--set", "search.blocks_per_iteration=4"]
    assert run_module("bqnn.search", "--out", str(out), *sim).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert subprocess.run(["mount", "-o", "remount,ro", str(tiny)]).returncode == 0
    r = run_module("bqnn.search", "--out", str(out), "--set", "search.checkpoint_interval=5")
    assert r.returncode == 2 and r.stderr.strip() == \
        f"bqnn.search: error: cannot create {out / 'search.lock'}: Read-only file system"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
