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
       "--set", "search.blocks_per_iteration=64", "--set", "search.checkpoint_interval=0"]  # a save per result


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
    warning, error = r.stderr.strip().splitlines()  # the warning before any training, then the error
    assert r.returncode == 2 and warning.startswith(f"warning: {out} has ") and \
        "this search's checkpoints will need about" in warning, r.stderr
    assert error.startswith(f"bqnn.search: error: cannot write {out / 'search.h5'}: No space left on device")
    assert error.endswith("the last checkpoint is kept")
    assert sorted(p.name for p in out.iterdir()) == ["search.h5", "search.h5.bak", "status.json"]  # no .part, lock
    stopped = checkpoint.read(out / "search.h5")
    assert 0 < stopped.iteration < 12 and checkpoint.read(out / "search.h5.bak").iteration <= stopped.iteration
    moved = tmp_path / "moved"  # space freed: the same directory on a disk with room
    shutil.copytree(out, moved)
    fewer_saves = ["--set", "search.checkpoint_interval=1"]  # a runtime key: the results do not depend on it
    r = run_module("bqnn.search", "--out", str(moved), *fewer_saves, timeout=300)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert run_module("bqnn.search", "--out", str(ref), *SIM, *fewer_saves, timeout=300).returncode == 0
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


@pytest.fixture
def ext4(tmp_path):
    """A small ext4 filesystem (a loop mount): it keeps inode flags, so `chattr +i` works (tmpfs has none)."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    steps = [["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mnt)]]
    for cmd in steps:
        try:
            if subprocess.run(cmd, capture_output=True).returncode:
                pytest.skip(f"cannot {cmd[0]} here (needs root, e2fsprogs and loop devices)")
        except FileNotFoundError:
            pytest.skip(f"{cmd[0]} is not installed")
    yield mnt
    subprocess.run(["chattr", "-R", "-i", "-a", str(mnt)], capture_output=True)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def chattr(flag, *paths):
    assert subprocess.run(["chattr", flag, *map(str, paths)]).returncode == 0


SHORT = [*SIM[:-6], "--set", "search.schedule=[[1.0, 4]]", "--set", "search.blocks_per_iteration=8"]


def _stopped_in_iteration_3(out):
    """SHORT's search stopped by SIGTERM while training its third iteration: a checkpoint and its .bak."""
    import signal

    from bqnn.config import load
    from bqnn.run.executor import InlineExecutor
    from bqnn.run.master import Master
    from bqnn.signals import StopFlag
    from bqnn.training.simulated import SimulatedTrainer

    cfg = load(None, [v for k, v in zip(SHORT, SHORT[1:], strict=False) if k == "--set"])
    stop, inner = StopFlag(), SimulatedTrainer(cfg)

    class StopAt19:
        def train(self, nsc, seed, candidate_id=-1, poll=None, blocks_per_stage=0, on_epoch=None):
            if candidate_id >= 19:
                stop.handler(signal.SIGTERM, None)
            return inner.train(nsc, seed, candidate_id, poll, blocks_per_stage, on_epoch)

    assert Master(cfg, out, InlineExecutor(StopAt19(), stop), stop, log=lambda line: None).run() == 143
    shutil.copy(out / "search.h5", out / "search.h5.bak")
    assert checkpoint.read(out / "search.h5").iteration == 2


@pytest.mark.parametrize("pinned_file,flag", [("search.h5", "+i"), ("search.h5.bak", "+i"), ("search.h5", "+a")])
def test_an_immutable_checkpoint_is_one_line_before_any_training_and_nothing_changes(ext4, tmp_path, pinned_file,
                                                                                     flag):
    out = ext4 / "run"
    _stopped_in_iteration_3(out)
    chattr(flag, out / pinned_file)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = run_module("bqnn.search", "--out", str(out))
    kind = "immutable" if flag == "+i" else "append-only"
    assert r.returncode == 2 and r.stderr == (f"bqnn.search: error: cannot write {out / pinned_file}: the file is "
                                              f"{kind} (chattr -{flag[1]} {out / pinned_file} lets bqnn replace it)\n")
    assert r.stdout == "" and {p.name: p.read_bytes() for p in out.iterdir()} == before  # no lock, no .part left
    chattr(f"-{flag[1]}", out / pinned_file)
    assert run_module("bqnn.search", "--out", str(out)).returncode == 0
    ref = tmp_path / "ref"
    assert run_module("bqnn.search", "--out", str(ref), *SHORT).returncode == 0
    a, b = ids_and_rewards(out), ids_and_rewards(ref)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("pinned_file", ["search.h5", "search.h5.bak"])
def test_a_file_made_immutable_during_the_search_fails_the_save_and_keeps_both(ext4, pinned_file):
    """What the start-up check cannot see: `chattr +i` while the search runs. The save fails with one line; the
    older .bak is never replaced by a copy of the current file, and no .part or .bak.tmp is left."""
    out = ext4 / "run"
    _stopped_in_iteration_3(out)
    state = checkpoint.read(out / "search.h5")
    state.iteration = 3
    chattr("+i", out / pinned_file)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(checkpoint.CheckpointWriteError) as e:
        checkpoint.save(out, state)
    assert str(e.value).startswith(f"cannot write {out / pinned_file}: Operation not permitted") and \
        "\n" not in str(e.value)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == ["search.h5", "search.h5.bak", "status.json"]
    assert after["search.h5.bak"] == before["search.h5.bak"]
    if pinned_file == "search.h5":
        assert after == before
    else:  # the new file went in (read back and verified); the backup is the older one, as it was
        assert checkpoint.read(out / "search.h5").iteration == 3


def fill(mnt, leave: int) -> None:
    """Fill the tmpfs `mnt` but for about `leave` bytes."""
    free = shutil.disk_usage(mnt).free
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_at_the_lock_is_one_line_and_leaves_nothing(tiny):
    """Issue 25: the lock could not be written (a traceback, an empty search.lock left, and the rerun refused for
    ten seconds). Now one line naming the path, no directory or file left, and an immediate rerun runs."""
    out = tiny / "run"
    fill(tiny, 0)
    sim = [*SIM[:-6], "--set", "search.schedule=[[1.0, 1]]", "--set", "search.blocks_per_iteration=4"]
    r = run_module("bqnn.search", "--out", str(out), *sim)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"bqnn.search: error: cannot write {out / 'search.lock'}: No space left on device "
                                f"(0 bytes free there; the lock needs one block and each checkpoint its own size, "
                                f"see docs/state.md)")
    assert sorted(p.name for p in tiny.iterdir()) == ["filler"]
    (tiny / "filler").unlink()
    r = run_module("bqnn.search", "--out", str(out), *sim)
    assert r.returncode == 0, r.stderr
    assert checkpoint.read(out / "search.h5").iteration == 1


def test_a_new_search_without_room_for_one_checkpoint_trains_nothing(tiny):
    """Issue 25: a new search on a disk too small for a checkpoint trained candidates, then claimed 'the last
    checkpoint is kept' when none existed. It now writes its first checkpoint before any training."""
    out = tiny / "run"
    fill(tiny, 120 << 10)
    sim = [*SIM[:-6], "--set", "search.schedule=[[1.0, 2]]", "--set", "search.blocks_per_iteration=4"]
    r = run_module("bqnn.search", "--out", str(out), *sim)
    assert r.returncode == 2
    warning, error = r.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {out} has ")
    assert error.startswith(f"bqnn.search: error: cannot write {out / 'search.h5'}: No space left on device (")
    assert error.endswith("no checkpoint was written and nothing was trained: free some space and run the same "
                          "command")
    assert "candidates" not in r.stdout.split("\n", 1)[1]  # the banner only: no iteration ran
    assert sorted(p.name for p in tiny.iterdir()) == ["filler"]  # the directory it made is gone again
    (tiny / "filler").unlink()
    r = run_module("bqnn.search", "--out", str(out), *sim)
    assert r.returncode == 0 and "error" not in r.stderr, r.stderr  # the warning may stay: 600 KiB is tight
    assert checkpoint.read(out / "search.h5").iteration == 2
