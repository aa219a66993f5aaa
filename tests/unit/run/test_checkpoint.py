"""search.h5: atomic writes with a backup, fallback on corruption, never overwritten, readable by h5dump."""
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from bqnn.run import checkpoint
from tests.conftest import ROOT, run_module, wait_for

SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=6",
       "--set", "space.max_index=7", "--set", "search.replay_samples=6",
       "--set", "search.schedule=[[1.0, 3], [0.1, 2]]"]


def _ids(path):
    with h5py.File(path) as f:
        return sorted(f["candidates"]["id"].tolist())


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    r = run_module("bqnn.search", "--out", str(out), *SIM, "--set", "search.checkpoint_interval=0")  # every iteration
    assert r.returncode == 0, r.stderr
    assert (out / "search.h5.bak").exists() and not (out / "search.h5.part").exists()
    return out


def test_layout_is_plain_data(finished):
    with h5py.File(finished / "search.h5") as f:
        assert f.attrs["format"] == "bqnn-search" and int(f.attrs["schema_version"]) == checkpoint.SCHEMA_VERSION
        assert int(f.attrs["iteration"]) == int(f.attrs["iterations_total"]) == 5
        for name in ("candidates", "cache/hash", "cache/id", "inflight/id", "inflight/nsc", "strategy/q_state",
                     "strategy/q_value", "strategy/replay_nsc", "utilization/busy"):
            assert isinstance(f[name], h5py.Dataset) and f[name].dtype.kind != "O", name
        c = f["candidates"][()]
        assert c["nsc"].shape == (30, 7, 5) and c.dtype == checkpoint.candidate_dtype(7)
        t = f["candidates"].id.get_type()  # the message's bytes are UTF-8, and HDF5's type says so
        assert t.get_member_type(t.get_member_index(b"message")).get_cset() == h5py.h5t.CSET_UTF8
        assert set(f["strategy"].attrs) >= {"rng_sample", "rng_replay", "q_init", "updates"}
        import json

        json.loads(f.attrs["config"]), json.loads(f.attrs["versions"]), json.loads(f["strategy"].attrs["rng_sample"])
    if shutil.which("h5dump"):
        r = subprocess.run(["h5dump", "-H", str(finished / "search.h5")], capture_output=True, text=True)
        assert r.returncode == 0 and "DATASET \"candidates\"" in r.stdout and "H5T_COMPOUND" in r.stdout


def test_a_schema_1_file_is_upgraded_and_resumes(finished, tmp_path):
    """A search written before schema 2 (no candidates.blocks, no /iteration_sizes, no candidates.rungs) resumes."""
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(finished / "search.h5", old / "search.h5")
    with h5py.File(old / "search.h5", "a") as f:
        c = f["candidates"][()]
        names = [n for n in c.dtype.names if n not in ("blocks", "rungs")]
        v1 = np.zeros(len(c), [(n, c.dtype.fields[n][0]) for n in names])
        for n in names:
            v1[n] = c[n]
        del f["candidates"], f["iteration_sizes"]
        f.create_dataset("candidates", data=v1, maxshape=(None,), chunks=True)
        f.attrs["schema_version"] = 1
        f.attrs["iteration"], f.attrs["next_id"] = 3, 18  # as if stopped after 3 of 5 iterations
        del f["cache/hash"], f["cache/id"]
        keep = np.sort(c["id"])[:18]
        f.create_dataset("cache/hash", data=np.zeros(0, "S16"))
        f.create_dataset("cache/id", data=np.zeros(0, np.int64))
    checkpoint.seal(old / "search.h5")
    state = checkpoint.load(old)[0]
    assert state.candidates.dtype == checkpoint.candidate_dtype(7) and (state.candidates["blocks"] == 4).all()
    assert (state.candidates["rungs"] == -1).all()  # nothing was pruned before schema 4: no rung reached
    assert len(state.iteration_sizes) == 0 and len(keep) == 18
    from bqnn.config import from_json
    from bqnn.run.executor import InlineExecutor
    from bqnn.run.master import Master
    from bqnn.signals import StopFlag
    from bqnn.training.simulated import SimulatedTrainer

    cfg = from_json(state.config_json)
    m = Master(cfg, old, InlineExecutor(SimulatedTrainer(cfg), StopFlag()), StopFlag(), log=lambda s: None, state=state)
    assert m.iterations.sizes == [6] * 3 and m.iterations.starts == [0, 6, 12]  # derived from blocks_per_iteration


def test_a_schema_2_pnas_file_is_upgraded(tmp_path):
    """Schema 2 typed candidates.message ASCII and kept PNAS's observed positions as a JSON attribute: such a
    file reads as the schema 3 one, positions and messages included, and is rewritten as schema 3."""
    out = tmp_path / "pnas"
    r = run_module("bqnn.search", "--out", str(out), *SIM, "--set", "search.strategy=pnas", "--set", "pnas.beam=4",
                   "--set", "pnas.max_size=3", "--set", "pnas.fit_steps=20")
    assert r.returncode == 0, r.stderr
    new = checkpoint.read(out / "search.h5")
    assert new.strategy_arrays["observed"].dtype == np.int64 and "observed" not in new.strategy_attrs
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(out / "search.h5", old / "search.h5")
    with h5py.File(old / "search.h5", "a") as f:
        c = f["candidates"][()]
        c["message"][0] = "bad config: 1 ≠ 2".encode()
        del f["candidates"], f["strategy/observed"]
        f.create_dataset("candidates", data=c, maxshape=(None,), chunks=True, fletcher32=True)  # ASCII-typed bytes
        f["strategy"].attrs["observed"] = "[2, 0]"
        f.attrs["schema_version"] = 2
        f.attrs["attrs_sha256"] = checkpoint._attrs_digest(f)
    checkpoint.seal(old / "search.h5")
    state = checkpoint.load(old)[0]
    assert state.strategy_arrays["observed"].tolist() == [2, 0] and "observed" not in state.strategy_attrs
    assert state.candidates["message"][0].decode() == "bad config: 1 ≠ 2"
    assert state.candidates.dtype == new.candidates.dtype
    checkpoint.save(old, state)
    with h5py.File(old / "search.h5") as f:
        assert int(f.attrs["schema_version"]) == checkpoint.SCHEMA_VERSION
        assert f["strategy/observed"][()].tolist() == [2, 0]


def test_truncated_checkpoint_resumes_from_backup(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bqnn.search", "--out", str(out), *SIM, "--set", "trainer.sim_seconds=0.25",
           "--set", "search.checkpoint_interval=0"]  # a checkpoint at every iteration, however short
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert wait_for(lambda: (out / "search.h5.bak").exists(), 60)  # at least two checkpoints written
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 143
    main = out / "search.h5"
    stopped_at = checkpoint.read(main).iteration
    backup_at = checkpoint.read(out / "search.h5.bak").iteration
    assert backup_at <= stopped_at < 5
    data = main.read_bytes()
    main.write_bytes(data[: len(data) // 2])
    r = run_module("bqnn.search", "--out", str(out), "--set", "trainer.sim_seconds=0")
    assert r.returncode == 0, r.stderr
    assert "search.h5: its contents do not match their checksum (the file is damaged or truncated)" in r.stderr and \
        f"resuming from search.h5.bak ({backup_at} of 5 iterations complete)" in r.stderr
    assert f"resuming at iteration {backup_at + 1}/5" in r.stdout
    assert _ids(main) == list(range(30))  # every candidate exactly once
    s = checkpoint.read(main)
    assert s.iteration == 5 and s.runs == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_both_files_corrupt_is_one_line_and_nothing_is_touched(finished, damage):
    for name in ("search.h5", "search.h5.bak"):
        p = finished / name
        if damage == "truncate":
            p.write_bytes(p.read_bytes()[:1000])
        elif damage == "garbage":
            p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
        else:
            p.unlink()
            with h5py.File(p, "w") as f:
                f["x"] = np.arange(3)
    before = _snapshot(finished)
    for args in (["--out", str(finished)], ["--out", str(finished), *SIM]):  # resume, and an attempted fresh start
        r = run_module("bqnn.search", *args)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bqnn.search: error: ") and "search.h5" in lines[0], lines
        assert _snapshot(finished) == before  # never overwritten, nothing added
    r = run_module("bqnn.report", str(finished), "--json")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_missing_main_file_falls_back_to_backup(finished):
    (finished / "search.h5").unlink()
    state, used, warning = checkpoint.load(finished)
    assert used.name == "search.h5.bak" and "resuming from search.h5.bak" in warning


def test_save_keeps_the_previous_file_as_backup(tmp_path, finished):
    state = checkpoint.read(finished / "search.h5")
    old = (finished / "search.h5").read_bytes()
    state.iteration = 2
    checkpoint.save(finished, state)
    assert (finished / "search.h5.bak").read_bytes() == old
    assert checkpoint.read(finished / "search.h5").iteration == 2
    assert not list(finished.glob("*.part")) and not list(finished.glob("*.tmp"))


def test_subsecond_iterations_are_not_each_checkpointed(tmp_path):
    """With iterations far shorter than a second, results are written together (the final write is not skipped)."""
    out = tmp_path / "fast"
    r = run_module("bqnn.search", "--out", str(out), *SIM, "--set", "search.schedule=[[1.0, 10]]")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("iter ") == 10
    assert checkpoint.read(out / "search.h5").iteration == 10
    # two writes in all, the first before any training and the last: the search took well under a second
    assert checkpoint.read(out / "search.h5.bak").iteration == 0


def test_precision_is_part_of_the_search_and_speed_options_are_not(finished):
    """trainer.amp changes rewards (bench/precision.py): a resume that changes it is refused, one line, nothing
    written; channels-last and the other speed options may change."""
    before = _snapshot(finished)
    r = run_module("bqnn.search", "--out", str(finished), *SIM, "--set", "trainer.amp=bf16")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"bqnn.search: error: refusing to resume {finished}: the config differs from the stored one in trainer.amp "
        f"(use another --out for a new search)"], r.stderr
    assert _snapshot(finished) == before
    r = run_module("bqnn.search", "--out", str(finished), *SIM, "--set", "trainer.channels_last=on",
                   "--set", "trainer.fused_adam=false")
    assert r.returncode == 0, r.stderr


def test_the_whole_file_is_sealed_and_a_file_without_the_seal_is_read_as_before(finished, tmp_path):
    """The user block holds a SHA-256 of the HDF5 data, checked before HDF5 parses it; a file written before
    schema 4 (no user block) is read by HDF5 as before; an edit is damage until sealed again."""
    import hashlib

    data = (finished / "search.h5").read_bytes()
    assert data.startswith(checkpoint.SEAL) and data[512:520] == checkpoint.HDF5_SIGNATURE
    assert data[len(checkpoint.SEAL):len(checkpoint.SEAL) + 64].decode() == hashlib.sha256(data[512:]).hexdigest()
    plain = tmp_path / "plain.h5"  # the same objects in a file without a user block, as bqnn wrote them before
    with h5py.File(finished / "search.h5") as src, h5py.File(plain, "w") as dst:
        for name in src:
            src.copy(src[name], dst, name=name)
        for k, v in src.attrs.items():
            dst.attrs[k] = v
    a, b = checkpoint.read(finished / "search.h5"), checkpoint.read(plain)
    assert np.array_equal(a.candidates, b.candidates) and a.config_json == b.config_json
    edited = tmp_path / "edited.h5"
    shutil.copy(finished / "search.h5", edited)
    with h5py.File(edited, "a") as f:
        f.attrs["runs"] = 7
        f.attrs["attrs_sha256"] = checkpoint._attrs_digest(f)
    with pytest.raises(checkpoint.CheckpointError, match="do not match their checksum"):
        checkpoint.read(edited)
    checkpoint.seal(edited)
    assert checkpoint.read(edited).runs == 7
    head = bytearray(edited.read_bytes())
    head[3] ^= 1
    edited.write_bytes(head)
    with pytest.raises(checkpoint.CheckpointError, match="not a bqnn search file"):
        checkpoint.read(edited)
