from pathlib import Path

import pytest

from bqnn.config import Config, ConfigError, diff, from_json, load, to_json
from bqnn.strategies.qtable import PAPER_SCHEDULE
from tests.conftest import run_module

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


def _numeric_keys():
    """(section.key, type) of every number, list of numbers or optional number of both config roots."""
    import dataclasses
    import types
    import typing

    from bqnn.config import Config, TrainJobConfig

    out = {}
    for root in (Config, TrainJobConfig):
        for section, cls in typing.get_type_hints(root).items():
            for f in dataclasses.fields(cls):
                tp = typing.get_type_hints(cls)[f.name]
                args = set(typing.get_args(tp)) - {type(None), Ellipsis}
                if typing.get_origin(tp) in (typing.Union, types.UnionType, tuple):
                    if args and args <= {int, float}:
                        out[f"{section}.{f.name}"] = (cls, f.name)
                elif tp in (int, float):
                    out[f"{section}.{f.name}"] = (cls, f.name)
    return out


def test_every_number_has_a_range_that_holds_its_default():
    from bqnn.config import RANGES

    keys = _numeric_keys()
    missing = sorted(k for k in keys if k not in RANGES and k != "space.max_index" and k != "search.schedule")
    assert not missing, f"numbers without a range: {missing}"
    assert not set(RANGES) - set(keys), "ranges of keys that do not exist"
    for key, (cls, name) in keys.items():
        default = getattr(cls(), name)
        if key in RANGES and default is not None:
            for v in default if isinstance(default, tuple) else (default,):
                assert RANGES[key].violation(v) is None, (key, v)


@pytest.mark.parametrize("item,message", [
    ("search.gamma=nan", "config key search.gamma: must be a finite number, got nan"),
    ("search.q_init=inf", "config key search.q_init: must be a finite number, got inf"),
    ("reward.flops_unit=0", "config key reward.flops_unit: must be above 0.0 (allowed: (0.0, 1e+30]), got 0.0"),
    ("network.blocks_per_stage=100000", "config key network.blocks_per_stage: must be at most 64 (allowed: [1, 64])"),
    ("trainer.betas=[0.9, 1.0]", "config key trainer.betas[1]: must be below 1.0"),
    ("trainer.device=tpu", "config key trainer.device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("search.schedule=[[1.0, 999999], [0.1, 999999]]", "more than 1,000,000 iterations in all"),
    ("data.scale=[480, 256]", "config key data.scale: must be [low, high]"),
])
def test_out_of_range_values_name_the_key_the_value_and_the_range(item, message):
    with pytest.raises(ConfigError) as e:
        load(None, [item])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_job_files_are_small_regular_files(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    for path, message in ((big, "is larger than 1 MiB"), ("/dev/zero", "is not a regular file"),
                          (tmp_path, "is a directory"), (tmp_path / "none.toml", "not found")):
        with pytest.raises(ConfigError, match=message):
            load(path)
    assert load("/dev/null") == load(None)


def test_fuzzed_overrides_are_a_config_or_one_config_error():
    """Any `--set` a user may type: a valid config or one ConfigError line, nothing else, quickly."""
    import dataclasses
    import typing

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from bqnn.config import Config

    keys = [f"{s}.{f.name}" for s, cls in typing.get_type_hints(Config).items() for f in dataclasses.fields(cls)]
    values = st.one_of(
        st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "true", "[]", "[[]]", "[1,2", '"x"', "cuda:7", "[0.5, 3]", "1e400"]),
        st.lists(st.integers(-5, 10**6), max_size=4).map(str), st.text(max_size=12))

    @settings(max_examples=1500, deadline=500, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    @given(st.sampled_from(keys + ["search.nope", "nosection.x", "trainer"]), values)
    def one(key, value):
        try:
            cfg = load(None, [f"{key}={value}"])
        except ConfigError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert isinstance(cfg, Config)

    one()


def _nested(kinds: list[str], leaf: str = "1") -> str:
    """A TOML value nested as `kinds` says, outermost first: [ for an array, { for an inline table."""
    text = leaf
    for k in reversed(kinds):
        text = f"[{text}]" if k == "[" else f"{{a = {text}}}"
    return text


def test_deeply_nested_values_are_one_line_wherever_they_are_written(tmp_path):
    """Issue 25: an array nested 500 deep in a job file, or 1,000 deep in --set, was a 3,000-line RecursionError
    (exit 1). Depth fuzz over both places, arrays and inline tables mixed, 1 to 2,000 levels: a config or one
    ConfigError line; as a program, exit 2 and nothing written."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from bqnn.config import Config

    kinds = st.integers(1, 2000).flatmap(lambda n: st.lists(st.sampled_from("[{"), min_size=n, max_size=n))
    keys = st.sampled_from(["search.schedule", "search.seed", "network.filters", "pruning.rungs", "search.nope"])

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
    @given(kinds, keys, st.booleans())
    def one(kind, key, in_file):
        value = _nested(kind)
        section, name = key.split(".")
        try:
            if in_file:
                job = tmp_path / "deep.toml"
                job.write_text(f"[{section}]\n{name} = {value}\n")
                cfg = load(job)
            else:
                cfg = load(None, [f"{key}={value}"])
        except ConfigError as e:
            assert str(e) and "\n" not in str(e) and len(str(e)) < 400
        else:
            assert isinstance(cfg, Config) and len(kind) <= 2

    one()
    for args in (["--config", str(tmp_path / "deep.toml")],
                 ["--config", "/dev/null", "--set", f"search.schedule={_nested(['['] * 1000)}"]):
        (tmp_path / "deep.toml").write_text(f"[search]\nschedule = {_nested(['['] * 500)}\n")
        r = run_module("bqnn.search", "--out", str(tmp_path / "out"), *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nested" in r.stderr, r.stderr
        assert not (tmp_path / "out").exists()
