"""Configuration: frozen dataclasses, TOML job files, `--set section.key=value` overrides.

Used by every entry point:

    python -m bqnn.search --config jobs/demo.toml --out DIR --set trainer.epochs=2 --set data.root=/data

A job file has one table per section ([search], [space], [network], [limits], [pnas], [reward],
[data], [trainer]); every key is a field below with its default. An unknown
section or key, or a value of the wrong type, is a `ConfigError` naming it.
A `--set` value is read as a TOML value (`3`, `0.5`, `true`, `[8,16,32]`,
`"text"`); anything that is not valid TOML is taken as a bare string, so
`--set data.root=/scratch/cifar` works. The resolved config (every field) is
stored as JSON in search.h5. A leaf: imports nothing else of bqnn (the paper's constants that are
defaults here, `MAX_INDEX` and `PAPER_SCHEDULE`, are defined here and used by the block code and the
strategies).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MAX_INDEX = 23  # the paper's largest layer index of a block code (terminal included)

# Table 2 of the CVPR paper: (epsilon, iterations); 178 iterations in all.
PAPER_SCHEDULE: tuple[tuple[float, int], ...] = (
    (1.0, 95), (0.9, 7), (0.8, 7), (0.7, 7), (0.6, 10), (0.5, 10), (0.4, 10), (0.3, 10), (0.2, 10), (0.1, 12),
)

# The strategies `search.strategy` may name; bqnn.strategies registers one class under each
# (tests/unit/strategies hold the two lists equal).
STRATEGY_NAMES = ("qlearning", "random", "pnas")


class ConfigError(ValueError):
    """A bad job file or override; the message names the key."""


@dataclass(frozen=True)
class SearchConfig:
    strategy: str = "qlearning"  # qlearning | random | pnas
    seed: int = 0
    blocks_per_iteration: int = 64  # the paper's mini-batch of blocks
    schedule: tuple[tuple[float, int], ...] = PAPER_SCHEDULE  # [[epsilon, iterations], ...] (Table 2)
    alpha: float = 0.01  # Q-learning rate
    gamma: float = 1.0  # discount
    q_init: float | None = None  # Q of unvisited pairs; unset: mean reward of the first iteration
    shaped_reward: bool = True  # r_t = r_T / T (eq. 6); false: r_t = 0 (MetaQNN)
    replay_samples: int = 64  # blocks replayed after each iteration (AAAI: 128)
    dispatch: Literal["batch", "async"] = "batch"  # MPI: Q-update per iteration, or as results arrive
    checkpoint_interval: float = 60.0  # seconds between checkpoints while results arrive


@dataclass(frozen=True)
class LimitsConfig:
    """BlockQNN-L: budgets for the whole network as configured in [network]."""

    params: int = 0  # parameter budget (0: none); the paper's BlockQNN-L: 10,000,000
    flops: int = 0  # FLOPs-per-image budget (0: none)
    adaptive_blocks: bool = True  # N adapts: the largest N <= network.blocks_per_stage that fits


@dataclass(frozen=True)
class PNASConfig:
    """search.strategy = "pnas": progressive growth with a learned predictor (Liu et al., ECCV 2018)."""

    beam: int = 64  # K: blocks trained per round after the first
    max_size: int = 10  # layers (start identity included, terminal not) of the largest blocks
    ensemble: int = 5  # MLPs in the predictor's ensemble
    hidden: int = 64  # units of each MLP's two hidden layers
    fit_steps: int = 300  # full-batch Adam steps per MLP per refit
    fit_lr: float = 0.005


@dataclass(frozen=True)
class SpaceConfig:
    max_index: int = MAX_INDEX  # largest layer index, terminal included
    start_identity: bool = True  # layer 1 is (1,4,0,0,0)


@dataclass(frozen=True)
class NetworkConfig:
    framework: Literal["cifar", "imagenet"] = "cifar"
    blocks_per_stage: int = 4  # N
    filters: tuple[int, ...] = (32, 64, 128)  # one width per stage; "more filters": [80,160,320]


@dataclass(frozen=True)
class RewardConfig:
    preset: Literal["cvpr", "aaai", "accuracy"] = "cvpr"  # (mu, rho) = (1, 8), (1/2, 1/2), (0, 0)
    mu: float | None = None  # FLOPs weight; unset: the preset's
    rho: float | None = None  # density weight; unset: the preset's
    flops_unit: float = 1e9  # FLOPs are divided by this before the log (GFLOPs)
    failure_accuracy: float = 0.0  # accuracy (percent) credited to a failed candidate


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["fashion-mnist", "cifar10", "cifar100", "imagefolder"] = "fashion-mnist"
    root: str = ""  # directory; empty: /usr/share/datasets/fashion-mnist for fashion-mnist
    val_size: int = 5000  # held out from the training set; the test set is never used by the search
    train_subset: int = 0  # use this many training images (0: all that remain after validation)
    resize: int = 0  # resize images to this side once, at load (0: keep; imagefolder: 0 streams from disk)
    split_seed: int = 0  # seed of the validation split and subset
    normalize: bool = True  # per-channel mean/std of the training split
    workers: int = 4  # imagefolder: processes decoding images
    crop: int = 224  # imagefolder streamed: side of the training and test crops
    scale: tuple[int, int] = (256, 480)  # imagefolder streamed: training images' shorter side, drawn uniformly
    test_resize: int = 256  # imagefolder streamed: test images' shorter side before the center crop


@dataclass(frozen=True)
class TrainerConfig:
    kind: Literal["real", "simulated"] = "real"
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3  # Adam
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_decay: float = 0.2  # lr x lr_decay every lr_step epochs
    lr_step: int = 5
    restart_lr_factor: float = 0.4  # epoch-1 accuracy <= chance: lr x this, restart
    max_restarts: int = 3
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads (0: torch's default)
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto: bf16 autocast on GPUs with bf16 and CPUs with native bf16
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto: on for CUDA, and on CPUs when bf16 is on
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest convolution algorithms (CUDA only)
    fused_adam: bool = True  # Adam's update as one fused kernel over all parameters (CPU and CUDA)
    avg_pool_conv: Literal["auto", "on", "off"] = "auto"  # average pooling as a depthwise convolution; auto: on CPUs
    # channels-last batch norm of < 16 channels on a contiguous copy; auto: on CPUs
    narrow_bn_contiguous: Literal["auto", "on", "off"] = "auto"
    inject_fault: Literal["none", "exception", "nan", "oom"] = "none"  # testing: make candidates fail
    inject_every: int = 0  # ... every candidate whose id is a multiple of this (0: never)
    sim_seconds: float = 0.0  # simulated trainer: median training time per candidate
    sim_sigma: float = 0.0  # simulated trainer: lognormal spread of that time


@dataclass(frozen=True)
class Config:
    search: SearchConfig = field(default_factory=SearchConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pnas: PNASConfig = field(default_factory=PNASConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass(frozen=True)
class FinalTrainConfig:
    """One network trained to convergence (python -m bqnn.train); presets in train.PROTOCOLS."""

    protocol: Literal["verify", "cifar-final", "imagenet-final"] = "verify"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1  # SGD
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (15, 23)  # epochs after which lr is divided by 1/gamma
    gamma: float = 0.1
    crop_padding: int = 4  # random crop of the original size from the zero-padded image (0: none)
    flip: bool = True  # random horizontal flip
    eval_batch_size: int = 1024
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    sync_bn: bool = True  # data-parallel on GPUs: batch norm over the global batch (SyncBatchNorm; GPU only)


@dataclass(frozen=True)
class TrainJobConfig:
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: FinalTrainConfig = field(default_factory=FinalTrainConfig)


SECTIONS: dict[str, type] = typing.get_type_hints(Config)


# ------------------------------------------------------------- conversion

def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _describe(args[0]) if len(args) == 2 and args[1] is Ellipsis else ", ".join(map(_describe, args))
        return f"a list of {inner}" if len(args) == 2 and args[1] is Ellipsis else f"a list [{inner}]"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"config key {key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError:
                pass
        raise bad
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _unknown(key: str, known: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key.split(".")[-1], known, n=1)
    hint = f" (did you mean '{key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{where}{hint}")


def from_dict(data: dict[str, Any], where: str = "", root: type = Config) -> Any:
    """Build a `root` config (Config or TrainJobConfig) from nested dicts ({section: {key: value}});
    unknown sections and keys raise ConfigError."""
    sections = {}
    known = typing.get_type_hints(root)
    for name, values in data.items():
        if name not in known:
            raise _unknown(name, list(known), where)
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{name}]{where} must be a table of keys")
        cls = known[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise _unknown(f"{name}.{key}", list(hints), where)
            kwargs[key] = _convert(value, hints[key], f"{name}.{key}")
        sections[name] = cls(**kwargs)
    return root(**sections)


def parse_override(item: str) -> tuple[str, str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"--set {item!r}: the key must be section.key, e.g. trainer.epochs")
    section, name = key.split(".")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as a path
    return section, name, value


def _wants_text(section: str, name: str, root: type = Config) -> bool:
    """True if the key takes text only (str or a Literal of strings)."""
    cls = typing.get_type_hints(root).get(section)
    tp = typing.get_type_hints(cls).get(name) if cls else None
    if tp is str:
        return True
    return typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in typing.get_args(tp))


def load(path: str | Path | None, overrides: Sequence[str] = (), base: Any = None, root: type = Config) -> Any:
    """Read a TOML job file (or start from `base`, or the defaults) and apply `--set` overrides.
    `root` is Config (searches) or TrainJobConfig (python -m bqnn.train)."""
    data: dict[str, dict[str, Any]] = to_dict(base) if base is not None else {}
    where = ""
    if path is not None:
        p = Path(path)
        where = f" in {p}"
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} not found") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {p} is a directory") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    from_dict(data, where, root)  # errors in the file name the file
    for item in overrides:
        section, name, value = parse_override(item)
        if not isinstance(value, str) and _wants_text(section, name, root):
            value = item.split("=", 1)[1].strip()  # e.g. inject_fault=nan is the word, not the float
        from_dict({section: {name: value}}, " in --set", root)  # errors in an override name --set
        data.setdefault(section, {})[name] = value
    cfg = from_dict(data, where, root)
    if root is Config:
        check(cfg)
    return cfg


# Keys that may change when a search is resumed: they change how, where or how fast
# candidates are trained, not which blocks are proposed or what they score.
RUNTIME_KEYS = frozenset({
    "search.checkpoint_interval", "trainer.device", "trainer.threads", "trainer.amp", "trainer.channels_last",
    "trainer.cudnn_benchmark", "trainer.fused_adam", "trainer.avg_pool_conv",
    "trainer.narrow_bn_contiguous",
    "trainer.eval_batch_size", "trainer.sim_seconds", "trainer.sim_sigma",
})


def check_schedule(stages: Sequence[Sequence[float]]) -> None:
    """Raise ValueError unless `stages` is a non-empty [[epsilon in [0, 1], iterations >= 1], ...]."""
    if not stages:
        raise ValueError("search.schedule is empty: give [[epsilon, iterations], ...]")
    for eps, count in stages:
        if not 0.0 <= eps <= 1.0 or count < 1:
            raise ValueError(f"search.schedule entry [{eps}, {count}]: epsilon must be in [0, 1], iterations >= 1")


def diff(a: Config, b: Config) -> list[str]:
    """Keys (section.key) whose values differ."""
    da, db = to_dict(a), to_dict(b)
    return [f"{sec}.{key}" for sec in da for key in da[sec] if da[sec][key] != db[sec][key]]


def check(cfg: Config) -> None:
    """Cross-field checks that a wrong value would otherwise hit deep inside a run."""
    s = cfg.search
    try:
        check_schedule(s.schedule)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    positive = {
        "search.blocks_per_iteration": s.blocks_per_iteration,
        "trainer.epochs": cfg.trainer.epochs,
        "trainer.batch_size": cfg.trainer.batch_size,
        "trainer.lr_step": cfg.trainer.lr_step,
        "trainer.eval_batch_size": cfg.trainer.eval_batch_size,
        "network.blocks_per_stage": cfg.network.blocks_per_stage,
        "data.val_size": cfg.data.val_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key {key}: must be at least 1, got {value}")
    if not 0 < s.alpha <= 1:
        raise ConfigError(f"config key search.alpha: must be in (0, 1], got {s.alpha}")
    if not 2 <= cfg.space.max_index <= 31:
        raise ConfigError(f"config key space.max_index: must be in 2..31, got {cfg.space.max_index}")
    if not cfg.network.filters or min(cfg.network.filters) < 1:
        raise ConfigError(f"config key network.filters: must be positive widths, got {list(cfg.network.filters)}")
    if cfg.limits.params < 0 or cfg.limits.flops < 0:
        raise ConfigError("config keys limits.params and limits.flops: must be 0 (no limit) or positive")
    p = cfg.pnas
    for key, value in {"pnas.beam": p.beam, "pnas.ensemble": p.ensemble, "pnas.hidden": p.hidden,
                       "pnas.fit_steps": p.fit_steps}.items():
        if value < 1:
            raise ConfigError(f"config key {key}: must be at least 1, got {value}")
    first = 2 if cfg.space.start_identity else 1
    if s.strategy == "pnas":
        if not first <= p.max_size < cfg.space.max_index:
            raise ConfigError(f"config key pnas.max_size: must be in {first}..{cfg.space.max_index - 1} "
                              f"(space.max_index {cfg.space.max_index}), got {p.max_size}")
        if s.dispatch == "async":
            raise ConfigError("config key search.dispatch: pnas trains whole rounds (its predictor is refit between "
                              "them); use dispatch = \"batch\"")
    if s.strategy not in STRATEGY_NAMES:
        raise ConfigError(f"config key search.strategy: unknown strategy {s.strategy!r} "
                          f"(known: {', '.join(STRATEGY_NAMES)})")


def to_dict(cfg: Any) -> dict[str, dict[str, Any]]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def from_json(text: str, root: type = Config) -> Any:
    return from_dict(json.loads(text), " in the stored config", root)
