"""What a complete landscape table holds, checked: `python bench/landscape.py check FILE` and the test suite (on the
committed table).

    problems = check(Table.read(path), min_seeds=3)    # [] when complete

A complete table has every distinct block of its recipe's space (exactly those, in canonical-hash order), at least
`min_seeds` seeds, every block trained with every seed, a curve of `epochs` accuracies for every successful
training ending at its accuracy, a recipe that parses as a valid config of an exhaustive search, and what trained it
(versions, machine). numpy only.
"""
from __future__ import annotations

import json

import numpy as np

from ..blocks.space import Space
from ..config import ConfigError, from_json
from ..strategies.exhaustive import distinct_blocks
from .table import NOT_TRAINED, Table


def check(table: Table, min_seeds: int = 3) -> list[str]:
    """Every way `table` falls short of a complete table, one line each."""
    problems: list[str] = []
    try:
        cfg = from_json(table.recipe)
    except (ConfigError, ValueError, TypeError) as e:
        return [f"its recipe is not a valid config ({e})"]
    if cfg.search.strategy != "exhaustive":
        problems.append(f"its recipe's strategy is {cfg.search.strategy!r}, not an exhaustive search")
    if cfg.trainer.epochs != table.epochs:
        problems.append(f"its curves have {table.epochs} epochs, its recipe trains {cfg.trainer.epochs}")
    want = [h for h, _ in distinct_blocks(Space.of(cfg.space))]
    got = [h.decode() for h in table.hash.tolist()]
    if got != want:
        missing, extra = len(set(want) - set(got)), len(set(got) - set(want))
        problems.append(f"it holds {len(got):,} blocks, its space has {len(want):,} ({missing:,} missing, "
                        f"{extra:,} not of the space)")
    if len(table.seeds) < min_seeds:
        problems.append(f"it has {len(table.seeds)} seeds, fewer than {min_seeds}")
    untrained = int((table.status == NOT_TRAINED).sum())
    if untrained:
        problems.append(f"{untrained:,} of {table.status.size:,} trainings are not in it")
    ok = table.status == 0
    if ok.any() and not np.isfinite(table.curve[ok]).all():
        problems.append("a successful training's curve has missing epochs")
    for key in ("versions", "machine"):  # one entry per seed, each saying something
        try:
            per_seed = json.loads(table.attrs.get(key, ""))
            if not isinstance(per_seed, list) or len(per_seed) != len(table.seeds) or not all(per_seed):
                raise ValueError
        except ValueError:
            problems.append(f"it does not say which {key} trained each seed")
    return problems
