"""A landscape table built from exhaustive searches, one per seed (landscape/table.py holds the format).

Used by `python bench/landscape.py build` and the tests:

    table = build([Path("runs/landscape/seed-0"), Path("runs/landscape/seed-1")], command="...")
    table.write("bench/data/landscape.h5")

Every search must be an exhaustive search of the same recipe (its config with `search.seed` aside, runtime keys
aside) that records the validation accuracy after every epoch (`pruning.record` with rungs 1 .. epochs - 1). A
search still running or stopped part-way gives the blocks it has trained; the others are NOT_TRAINED. What trained
each seed (versions, machine) comes from its search.h5 and the `machines.jsonl` that `bench/landscape.py train`
writes beside it; the data files' SHA-256 are taken at build time. numpy and h5py only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..blocks import budget
from ..blocks.code import empty_codes, to_array
from ..blocks.graph import graph
from ..blocks.space import Space
from ..config import RUNTIME_KEYS, Config, diff, from_json, to_json
from ..data.readers import FASHION_MNIST_DIR
from ..data.shapes import dataset_shape
from ..landscape.table import NOT_TRAINED, Table, TableError
from ..run import checkpoint
from ..strategies.exhaustive import distinct_blocks

MACHINES = "machines.jsonl"  # beside search.h5: one JSON line per run of the search (bench/landscape.py train)


def recipe_of(cfg: Config) -> Config:
    """The recipe a search's config stands for: its seed set to 0."""
    return dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, seed=0))


def build(dirs: list[Path], command: str = "") -> Table:
    """The table of the exhaustive searches in `dirs`; TableError naming the directory that does not fit."""
    if not dirs:
        raise TableError("no searches to build a table from")
    states, cfgs = [], []
    for d in dirs:
        try:
            state = checkpoint.load(d)[0]
        except checkpoint.CheckpointError as e:
            raise TableError(str(e)) from None
        cfg = from_json(state.config_json)
        if cfg.search.strategy != "exhaustive":
            raise TableError(f"{d} is a {cfg.search.strategy} search, not an exhaustive one")
        states.append(state)
        cfgs.append(cfg)
    recipe = recipe_of(cfgs[0])
    for d, cfg in zip(dirs, cfgs, strict=True):
        changed = [k for k in diff(recipe, recipe_of(cfg)) if k not in RUNTIME_KEYS]
        if changed:
            raise TableError(f"{d} was trained with another recipe ({', '.join(changed)} differ from {dirs[0]})")
    seeds = [cfg.search.seed for cfg in cfgs]
    if len(set(seeds)) != len(seeds):
        raise TableError(f"two searches have the same search.seed ({seeds})")
    epochs = recipe.trainer.epochs
    if list(recipe.pruning.rungs) != list(range(1, epochs)) or not (recipe.pruning.record
                                                                     or recipe.pruning.rule != "none"):
        raise TableError(f"the searches did not record the accuracy after every epoch (pruning.record = true and "
                         f"pruning.rungs = {list(range(1, epochs))} are needed)")
    blocks = distinct_blocks(Space.of(recipe.space))
    table = _empty(recipe, blocks, seeds)
    rows = {h: i for i, (h, _) in enumerate(blocks)}
    for s, state in enumerate(states):
        c = state.candidates[state.candidates["repeat"] == 0]
        for rec in c:
            i = rows.get(rec["hash"].decode())
            if i is None:
                raise TableError(f"{dirs[s]} holds a block outside its space ({rec['hash'].decode()})")
            table.status[i, s] = rec["status"]
            table.seconds[i, s] = rec["seconds"]
            table.restarts[i, s] = rec["restarts"]
            reached = rec["rungs"][: epochs - 1]
            table.curve[i, s, : epochs - 1] = np.where(reached >= 0, reached, np.nan)
            if rec["status"] == 0:
                table.accuracy[i, s] = rec["accuracy"]
                table.curve[i, s, epochs - 1] = rec["accuracy"]
    table.attrs = {"versions": json.dumps([_versions(d) for d in dirs]),
                   "machine": json.dumps([_machines(d) for d in dirs]),
                   "data": json.dumps(_data_files(recipe)), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "command": command}
    problem = table.shape_problem()
    if problem:
        raise TableError(f"the table built from {dirs[0]} .. is inconsistent: {problem}")
    return table


def _empty(recipe: Config, blocks: list, seeds: list[int]) -> Table:
    b, s, e = len(blocks), len(seeds), recipe.trainer.epochs
    shape = dataset_shape(recipe.data)
    costs = [budget.fit(nsc, recipe.network, recipe.limits, *shape).cost for _, nsc in blocks]
    return Table(
        recipe=to_json(recipe), seeds=seeds,
        hash=np.array([h.encode() for h, _ in blocks], dtype="S16"),
        nsc=(np.stack([to_array(nsc, recipe.space.max_index) for _, nsc in blocks]).astype(np.int8) if b
             else empty_codes(recipe.space.max_index).astype(np.int8)),
        params=np.array([c.params for c in costs], np.int64), flops=np.array([c.flops for c in costs], np.int64),
        density=np.array([graph(nsc).density for _, nsc in blocks], np.float64),
        status=np.full((b, s), NOT_TRAINED, np.int8), accuracy=np.full((b, s), np.nan, np.float32),
        curve=np.full((b, s, e), np.nan, np.float32), seconds=np.zeros((b, s), np.float32),
        restarts=np.zeros((b, s), np.int8))


def _versions(d: Path) -> dict[str, Any]:
    try:
        with h5py.File(Path(d) / checkpoint.FILENAME, "r") as f:
            v = f.attrs["versions"]
            return dict(json.loads(v.decode() if isinstance(v, bytes) else v))
    except (OSError, KeyError, ValueError):
        return {}


def _machines(d: Path) -> list[dict[str, Any]]:
    p = Path(d) / MACHINES
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _data_files(recipe: Config) -> dict[str, str]:
    """SHA-256 of each file of the recipe's dataset directory (what anyone rebuilding the table must have)."""
    root = Path(recipe.data.root or (FASHION_MNIST_DIR if recipe.data.dataset == "fashion-mnist" else ""))
    out: dict[str, str] = {}
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_file():
                out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
