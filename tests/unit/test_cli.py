"""The entry points as users run them: python -m bqnn.{search,report,describe} in fresh interpreters."""
import json

import h5py
import numpy as np
import pytest

from tests.conftest import needs_fashion, run_module

SIM = ["--set", "trainer.kind=simulated", "--set", "search.blocks_per_iteration=8", "--set", "space.max_index=8",
       "--set", "search.schedule=[[1.0, 3], [0.5, 2], [0.1, 2]]", "--set", "search.replay_samples=8"]


def _write_job(tmp_path, text="[search]\nseed = 1\n"):
    job = tmp_path / "job.toml"
    job.write_text(text)
    return str(job)


def test_simulated_search_and_report(tmp_path):
    out = tmp_path / "run"
    r = run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(out), *SIM)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("iter ")]
    assert len(lines) == 7
    assert "eps 1.00" in lines[0] and "eps 0.10" in lines[-1] and "ETA" in lines[0] and "elapsed" in lines[0]
    assert "candidates 56/56" in lines[-1]
    rep = run_module("bqnn.report", str(out), "--json")
    assert rep.returncode == 0, rep.stderr
    s = json.loads(rep.stdout)
    assert (s["iterations_done"], s["iterations_total"], s["candidates"]) == (7, 7, 56)
    assert s["unique_trained"] + s["repeats"] == 56 and s["failed"] == 0
    best = s["best"]
    assert best["nsc"][0] == [1, 4, 0, 0, 0] and best["nsc"][-1][1] == 7
    assert set(best) >= {"nsc", "reward", "accuracy"}
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
    assert sorted(c["id"].tolist()) == list(range(56))
    assert best["reward"] == pytest.approx(float(c["reward"].max()))
    text = run_module("bqnn.report", str(out))
    assert "top 5" in text.stdout and text.returncode == 0


def test_repeats_are_answered_from_the_cache_and_still_update(tmp_path):
    out = tmp_path / "run"
    args = [*SIM, "--set", "space.max_index=3", "--set", "search.schedule=[[1.0, 2]]"]  # a tiny space: many repeats
    assert run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(out), *args).returncode == 0
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
        updates = int(f["strategy"].attrs["updates"])
    rep = c[c["repeat"] == 1]
    assert len(rep) > 0 and (rep["seconds"] == 0).all() and (rep["rank"] == -1).all()
    for row in rep:  # same hash, same result as the trained one
        src = c[(c["hash"] == row["hash"]) & (c["repeat"] == 0)]
        assert len(src) == 1 and src["accuracy"][0] == row["accuracy"] and src["reward"][0] == row["reward"]
    assert len(set(c[c["repeat"] == 0]["hash"].tolist())) == int((c["repeat"] == 0).sum())  # nothing trained twice
    assert updates == 16 + 2 * 8  # one Q-update per candidate, repeats included, plus replay


def test_unknown_set_key_is_one_line_and_exit_2(tmp_path):
    r = run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(tmp_path / "o"),
                   "--set", "trainer.epoch=3")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "bqnn.search: error: unknown config key 'trainer.epoch' in --set (did you mean 'trainer.epochs'?)"]
    assert not (tmp_path / "o" / "search.h5").exists()


def test_missing_dataset_directory_is_one_line_and_exit_2(tmp_path):
    r = run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(tmp_path / "o"),
                   "--set", f"data.root={tmp_path}/no-such-dir")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"bqnn.search: error: dataset directory {tmp_path}/no-such-dir does not exist"]
    r = run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(tmp_path / "o"),
                   "--set", "data.dataset=cifar100")
    assert r.returncode == 2 and "data.root must name the directory of CIFAR-100" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_config_and_bad_toml(tmp_path):
    r = run_module("bqnn.search", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--config is required" in r.stderr
    r = run_module("bqnn.search", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip() == f"bqnn.search: error: config file {tmp_path}/nope.toml not found"


def test_describe_contract():
    r = run_module("bqnn.describe", "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]",
                   "--channels", "32", "--hw", "32", "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["valid"] is True
    assert (d["nodes"], d["edges"], d["density"], d["params"], d["flops"], d["leaves"]) == \
        (6, 6, 1.0, 18560, 37978112, [4])
    r = run_module("bqnn.describe", "inception-like", "--channels", "32", "--hw", "32", "--network", "cifar", "--json")
    d = json.loads(r.stdout)
    assert d["params"] == 41344 and d["network"]["params"] == 3434500


@pytest.mark.parametrize("code,reason", [
    ("[(1,4,0,0,0),(2,1,4,1,0),(3,7,0,0,0)]", "row 2 (2,1,4,1,0): kernel 4 is not allowed for convolution"),
    ("[(1,4,0,0,0),(2,1,3,1,0)]", "the last row must be the terminal"),
    ("hello", "not an NSC list"),
])
def test_describe_invalid_code_is_one_line_and_exit_2(code, reason):
    r = run_module("bqnn.describe", code)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid NSC: ") and reason in lines[0]


def test_report_on_a_directory_without_search(tmp_path):
    r = run_module("bqnn.report", str(tmp_path), "--json")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr


@needs_fashion
def test_real_search_on_a_fashion_mnist_subset(tmp_path):
    out = tmp_path / "real"
    r = run_module("bqnn.search", "--config", _write_job(tmp_path), "--out", str(out),
                   "--set", "search.blocks_per_iteration=3", "--set", "search.schedule=[[1.0, 1], [0.1, 1]]",
                   "--set", "space.max_index=5", "--set", "network.blocks_per_stage=1",
                   "--set", "network.filters=[8,16,32]",
                   "--set", "data.train_subset=1000", "--set", "data.val_size=300", "--set", "data.resize=14",
                   "--set", "trainer.epochs=2", "--set", "trainer.batch_size=64", "--set", "trainer.lr_step=1")
    assert r.returncode == 0, r.stderr
    s = json.loads(run_module("bqnn.report", str(out), "--json").stdout)
    assert s["candidates"] == 6 and s["best"]["accuracy"] > 20.0
    with h5py.File(out / "search.h5") as f:
        c = f["candidates"][()]
        assert json.loads(f.attrs["config"])["data"]["train_subset"] == 1000
    assert (c["flops"] > 0).all() and (c["params"] > 0).all() and np.isfinite(c["reward"]).all()


BAD_VALUES = ["search.gamma=nan", "search.q_init=nan", "reward.mu=nan", "reward.flops_unit=nan", "reward.flops_unit=0",
              "network.filters=[100000000,64,128]", "network.blocks_per_stage=100000", "trainer.threads=-4",
              "trainer.device=tpu", "trainer.device=cuda:99", "search.blocks_per_iteration=100000000000",
              "search.gamma=inf", "search.gamma=-5", "search.replay_samples=-1", "search.checkpoint_interval=nan",
              "search.checkpoint_interval=-1", "data.resize=-5", "trainer.sim_seconds=-1", "trainer.inject_every=-1"]


@pytest.mark.parametrize("item", BAD_VALUES)
def test_a_bad_value_is_one_line_and_exit_2_before_anything_is_created(tmp_path, item):
    """At once: in a Python where importing torch raises, the config's line comes first (so no dataset was read and
    no network built); counted in imports, not in seconds on a shared machine. A device name is checked against the
    devices torch sees, so that one loads torch, and still creates nothing."""
    import os

    from tests.golden.digest import NO_TORCH

    out = tmp_path / "out"
    blocked = [str(NO_TORCH)] if not item.startswith("trainer.device") else []
    env = {"PYTHONPATH": os.pathsep.join([*blocked, *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = run_module("bqnn.search", "--config", "/dev/null", "--out", str(out), "--set", item, timeout=60, env=env)
    assert r.returncode == 2 and "torch is blocked" not in r.stderr, r.stderr
    key = item.split("=")[0]
    assert len(r.stderr.strip().splitlines()) == 1 and f"config key {key}" in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--config", "/dev/zero"], "config file /dev/zero is not a regular file"),
    (["--config", "/dev/urandom"], "config file /dev/urandom is not a regular file"),
    (["--config", "/dev/null", "--out", ""], "--out must name a directory"),
])
def test_bad_job_files_and_outputs_are_one_line(tmp_path, args, message):
    argv = args if "--out" in args else [*args, "--out", str(tmp_path / "o")]
    r = run_module("bqnn.search", *argv, timeout=30)
    assert r.returncode == 2 and r.stderr.strip() == f"bqnn.search: error: {message}"
    assert not (tmp_path / "o").exists()
