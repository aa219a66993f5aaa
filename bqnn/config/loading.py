"""Reading a configuration: TOML job files, `--set section.key=value` overrides, conversion and validation.

Used by every entry point:

    python -m bqnn.search --config jobs/demo.toml --out DIR --set trainer.epochs=2 --set data.root=/data

A job file has one table per section ([search], [space], [network], [limits], [pnas], [pruning], [reward],
[data], [trainer]); every key is a field of bqnn/config/schema.py with its default. An unknown
section or key, a value of the wrong type, a number that is not finite or outside its range, or a job
file that is not a small regular file, is a `ConfigError` naming the key, the value and what is allowed.
A `--set` value is read as a TOML value (`3`, `0.5`, `true`, `[8,16,32]`,
`"text"`); anything that is not valid TOML is taken as a bare string, so
`--set data.root=/scratch/cifar` works. The resolved config (every field) is
stored as JSON in search.h5. A leaf: imports nothing else of bqnn.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import reprlib
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .schema import DEVICE, MAX_ITERATIONS, MAX_RUNGS, RANGES, STRATEGY_NAMES, Config, ConfigError

MAX_JOB_FILE = 1 << 20  # bytes: a job file is a few kilobytes; anything larger is not one
# Levels of nesting a job file may have: file, section, key, and lists in lists (search.schedule: 2). Deeper data is
# refused before anything walks it (a list nested 500 deep was a 3,000-line RecursionError).
MAX_DEPTH = 6
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 3, 80, 80, 40
_SHOW.maxlist = _SHOW.maxtuple = _SHOW.maxdict = 8


def _show(value: Any) -> str:
    """A value as an error message shows it: its repr, shortened (a message is one line, whatever the input)."""
    return _SHOW.repr(value)


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests lists and tables (a scalar: 0), counted without recursion, stopping above `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list | tuple):
            deepest = max(deepest, d)
            if d > limit:
                return d
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


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
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key}: must be a finite number, got {_show(value)}")
    origin = typing.get_origin(tp)
    bad = ConfigError(f"config key {key}: expected {_describe(tp)}, got {_show(value)}")
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
        if not math.isfinite(float(value)):
            raise ConfigError(f"config key {key}: must be a finite number, got {_show(value)}")
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


# Keys of earlier releases, read as today's: (section, old key) -> (new key, {old value: new value}). The stored
# config of a search made before the change then resumes with the same meaning.
LEGACY_KEYS: dict[tuple[str, str], tuple[str, dict[Any, Any]]] = {
    ("search", "shaped_reward"): ("intermediate_reward", {True: "shaped", False: "zero"}),
}


def _legacy(section: str, key: str, value: Any, where: str) -> tuple[str, Any]:
    """(key, value) with an earlier release's key read as today's."""
    if (section, key) not in LEGACY_KEYS:
        return key, value
    new, values = LEGACY_KEYS[(section, key)]
    if isinstance(value, bool) and value in values:
        return new, values[value]
    raise ConfigError(f"config key {section}.{key}{where}: expected {' or '.join(map(repr, values))}, "
                      f"got {_show(value)} "
                      f"(it is now {section}.{new})")


def from_dict(data: dict[str, Any], where: str = "", root: type = Config) -> Any:
    """Build a `root` config (Config or TrainJobConfig) from nested dicts ({section: {key: value}});
    unknown sections and keys raise ConfigError."""
    if depth(data) > MAX_DEPTH - 1:
        raise ConfigError(f"config{where}: values nested more than {MAX_DEPTH - 3} levels deep (no key takes more "
                          f"than a list of lists)")
    sections = {}
    known = typing.get_type_hints(root)
    for name, values in data.items():
        if name not in known:
            raise _unknown(name, list(known), where)
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{name}]{where} must be a table of keys")
        if any((name, k) in LEGACY_KEYS for k in values):
            renamed = [_legacy(name, k, v, where) for k, v in values.items()]
            if len({k for k, _ in renamed}) < len(renamed):
                raise ConfigError(f"config section [{name}]{where} sets a key twice, once by its earlier name")
            values = dict(renamed)
        cls = known[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise _unknown(f"{name}.{key}", list(hints), where)
            kwargs[key] = _convert(value, hints[key], f"{name}.{key}")
            _check_value(f"{name}.{key}", kwargs[key])
        sections[name] = cls(**kwargs)
    return root(**sections)


def _check_value(key: str, value: Any) -> None:
    """The value against the key's range (each element of a tuple), and device names."""
    rng = RANGES.get(key)
    if rng is not None and value is not None:
        for i, v in enumerate(value if isinstance(value, tuple) else (value,)):
            why = rng.violation(v)
            if why:
                where = f"{key}[{i}]" if isinstance(value, tuple) else key
                raise ConfigError(f"config key {where}: {why} (allowed: {rng}), got {_show(v)}")
    if key.endswith(".device") and not DEVICE.fullmatch(value):
        raise ConfigError(f"config key {key}: expected auto, cpu, cuda or cuda:N, got {_show(value)}")


def read_job_file(p: Path) -> str:
    """The text of a job file: a regular file (or the null device) of at most MAX_JOB_FILE bytes, UTF-8."""
    try:
        if p.is_dir():
            raise ConfigError(f"config file {p} is a directory")
        if not p.is_file() and not (p.exists() and os.path.samefile(p, os.devnull)):
            if not p.exists():
                raise ConfigError(f"config file {p} not found")
            raise ConfigError(f"config file {p} is not a regular file")
        with open(p, "rb") as f:
            data = f.read(MAX_JOB_FILE + 1)
    except OSError as e:
        raise ConfigError(f"config file {p}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_JOB_FILE:
        raise ConfigError(f"config file {p} is larger than {MAX_JOB_FILE >> 20} MiB: not a job file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None


def parse_override(item: str) -> tuple[str, str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {_show(item)}: expected section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"--set {_show(item)}: the key must be section.key, e.g. trainer.epochs")
    section, name = key.split(".")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as a path
    except RecursionError:
        value = None
    if value is None or depth(value) > MAX_DEPTH - 3:
        raise ConfigError(f"--set {key}: the value is nested more than {MAX_DEPTH - 3} levels deep (no key takes more "
                          f"than a list of lists)")
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
        text = read_job_file(p)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
        except RecursionError:
            raise ConfigError(f"config file {p}: values nested too deeply to read (no key takes more than a list of "
                              f"lists)") from None
    data = to_dict(from_dict(data, where, root))  # errors in the file name the file; earlier key names read as today's
    for item in overrides:
        section, name, value = parse_override(item)
        if not isinstance(value, str) and _wants_text(section, name, root):
            value = item.split("=", 1)[1].strip()  # e.g. inject_fault=nan is the word, not the float
        from_dict({section: {name: value}}, " in --set", root)  # errors in an override name --set
        name, value = _legacy(section, name, value, " in --set")
        data.setdefault(section, {})[name] = value
    cfg = from_dict(data, where, root)
    check(cfg)
    return cfg


def check_schedule(stages: Sequence[Sequence[float]]) -> None:
    """Raise ValueError unless `stages` is a non-empty [[epsilon in [0, 1], iterations >= 1], ...]."""
    if not stages:
        raise ValueError("search.schedule is empty: give [[epsilon, iterations], ...]")
    for eps, count in stages:
        if not 0.0 <= eps <= 1.0 or count < 1:
            raise ValueError(f"search.schedule entry [{eps}, {count}]: epsilon must be in [0, 1], iterations >= 1")
    if sum(int(count) for _, count in stages) > MAX_ITERATIONS:
        raise ValueError(f"search.schedule: more than {MAX_ITERATIONS:,} iterations in all")


def diff(a: Config, b: Config) -> list[str]:
    """Keys (section.key) whose values differ."""
    da, db = to_dict(a), to_dict(b)
    return [f"{sec}.{key}" for sec in da for key in da[sec] if da[sec][key] != db[sec][key]]


def check(cfg: Any) -> None:
    """Cross-field checks (single values are checked against their ranges as they are read)."""
    if cfg.data.scale[0] > cfg.data.scale[1]:
        raise ConfigError(f"config key data.scale: must be [low, high], got {list(cfg.data.scale)}")
    if not cfg.network.filters or len(cfg.network.filters) > 8:
        raise ConfigError(f"config key network.filters: must be 1 to 8 stage widths, got {list(cfg.network.filters)}")
    if not isinstance(cfg, Config):
        return
    if cfg.data.val_size == 0:
        raise ConfigError("config key data.val_size: a search needs a validation split (its reward is the "
                          "validation accuracy), got 0")
    s, p = cfg.search, cfg.pnas
    try:
        check_schedule(s.schedule)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    first = 2 if cfg.space.start_identity else 1
    if s.strategy == "pnas":
        if not first <= p.max_size < cfg.space.max_index:
            raise ConfigError(f"config key pnas.max_size: must be in {first}..{cfg.space.max_index - 1} "
                              f"(space.max_index {cfg.space.max_index}), got {p.max_size}")
        if s.dispatch == "async":
            raise ConfigError("config key search.dispatch: pnas trains whole rounds (its predictor is refit between "
                              "them); use dispatch = \"batch\"")
    if s.strategy == "evolution" and cfg.evolution.sample > cfg.evolution.population:
        raise ConfigError(f"config key evolution.sample: must be at most evolution.population "
                          f"({cfg.evolution.population}), got {cfg.evolution.sample}")
    if s.strategy == "exhaustive" and s.dispatch == "async":
        raise ConfigError("config key search.dispatch: an exhaustive search's last iteration holds the blocks left "
                          "over; use dispatch = \"batch\"")
    if s.strategy not in STRATEGY_NAMES:
        raise ConfigError(f"config key search.strategy: unknown strategy {s.strategy!r} "
                          f"(known: {', '.join(STRATEGY_NAMES)})")
    t = cfg.trainer
    if t.kind == "table" and not t.table:
        raise ConfigError("config key trainer.table: trainer.kind = \"table\" needs the landscape table's path")
    if t.kind == "table" and t.inject_fault != "none":
        raise ConfigError("config key trainer.inject_fault: the table trainer injects no faults (use the simulated "
                          "trainer)")
    pr = cfg.pruning
    if pr.rule != "none" or pr.record:
        rungs = list(pr.rungs)
        if not rungs or len(rungs) > MAX_RUNGS or rungs != sorted(set(rungs)) or rungs[-1] >= cfg.trainer.epochs:
            raise ConfigError(f"config key pruning.rungs: must be 1 to {MAX_RUNGS} increasing epoch counts below "
                              f"trainer.epochs ({cfg.trainer.epochs}), got {rungs}")
    if s.strategy == "qlearning" and s.updates == "replay" and s.replay_samples == 0:
        raise ConfigError("config key search.replay_samples: must be at least 1 with search.updates = \"replay\" "
                          "(replay is then the only way Q learns), got 0")


def to_dict(cfg: Any) -> dict[str, dict[str, Any]]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def from_json(text: str, root: type = Config) -> Any:
    return from_dict(json.loads(text), " in the stored config", root)
