from pathlib import Path

import pytest

from bqnn.config import Config, ConfigError, diff, from_json, load, to_json
from bqnn.strategies.qtable import PAPER_SCHEDULE

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_papers():
    c = Config()
    assert c.search.schedule == PAPER_SCHEDULE and c.search.blocks_per_iteration == 64
    assert (c.search.alpha, c.search.gamma, c.search.replay_samples) == (0.01, 1.0, 64)
    assert (c.trainer.epochs, c.trainer.batch_size, c.trainer.lr, c.trainer.lr_decay, c.trainer.lr_step) == \
        (12, 256, 1e-3, 0.2, 5)
    assert (c.trainer.restart_lr_factor, c.trainer.max_restarts) == (0.4, 3)
    assert (c.space.max_index, c.network.blocks_per_stage, c.network.filters) == (23, 4, (32, 64, 128))


@pytest.mark.parametrize("job", sorted((ROOT / "jobs").glob("*.toml")))
def test_shipped_job_files_load(job):
    cfg = load(job)
    assert from_json(to_json(cfg)) == cfg


def test_overrides_and_types(tmp_path):
    job = tmp_path / "j.toml"
    job.write_text('[trainer]\nepochs = 3\n[network]\nfilters = [8, 16]\n')
    cfg = load(job, ["trainer.epochs=5", "data.root=/scratch/my data", "search.q_init=40",
                     "search.schedule=[[1.0, 2], [0.1, 1]]"])
    assert cfg.trainer.epochs == 5 and cfg.network.filters == (8, 16) and cfg.data.root == "/scratch/my data"
    assert cfg.search.q_init == 40.0 and cfg.search.schedule == ((1.0, 2), (0.1, 1))
    assert diff(Config(), cfg) == ["search.schedule", "search.q_init", "network.filters", "data.root", "trainer.epochs"]


@pytest.mark.parametrize("override,message", [
    ("trainer.epoch=3", "unknown config key 'trainer.epoch' in --set (did you mean 'trainer.epochs'?)"),
    ("trainr.epochs=3", "unknown config key 'trainr' in --set (did you mean 'trainer'?)"),
    ("trainer.epochs=three", "config key trainer.epochs: expected an integer, got 'three'"),
    ("trainer.epochs=true", "expected an integer"),
    ("network.framework=resnet", "expected one of 'cifar', 'imagenet'"),
    ("search.schedule=[[1.5, 3]]", "epsilon must be in [0, 1]"),
    ("search.strategy=genetic", "unknown strategy 'genetic'"),
    ("trainer.epochs=0", "trainer.epochs: must be at least 1"),
    ("epochs=3", "the key must be section.key"),
    ("trainer.epochs", "expected section.key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load(None, [override])
    assert message in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\nseed = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    unknown = tmp_path / "u.toml"
    unknown.write_text("[search]\nsede = 1\n")
    with pytest.raises(ConfigError,
                       match=r"unknown config key 'search.sede' in .*u.toml \(did you mean 'search.seed'\?\)"):
        load(unknown)
