"""The trained blocks of a search in the order of their reward: rank K of the report's top blocks is rank K of
`bqnn.train --from DIR --rank K` and of `bqnn.describe --from DIR --rank K`.

    rows = ranked(state.candidates)                           # the blocks trained to the end, best first
    nsc, record, config_json = top_block("runs/demo", 1)     # the best one, with its record and the run's config

Ranked are the unique blocks trained to the end (status OK): a block rejected by BlockQNN-L's limits was never
trained, a failed or pruned one has no early-stop accuracy of the full budget; their rewards are in the candidate
table, not in the ranking. Ties keep the order of candidate ids.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks.code import NSC, from_array
from ..config import ConfigError
from ..run import checkpoint
from ..training.result import Status


def ranked(candidates: np.ndarray) -> np.ndarray:
    """The rows of unique blocks trained to the end, best reward first (ties: lower id first)."""
    c = candidates[np.argsort(candidates["id"], kind="stable")]
    ok = c[(c["repeat"] == 0) & (c["status"] == Status.OK)]
    return ok[np.argsort(-ok["reward"], kind="stable")]


def top_block(search_dir: str | Path, rank: int) -> tuple[NSC, dict[str, Any], str]:
    """The rank-th best (1-based) unique trained block of a search, with its record and the search's config JSON.
    CheckpointError (NewerFileError included) when the search cannot be read; ConfigError when it has no such
    rank."""
    state, _, warning = checkpoint.load(search_dir)
    if warning:
        print(warning, file=sys.stderr)
    order = ranked(state.candidates)
    if not 1 <= rank <= len(order):
        raise ConfigError(f"--rank {rank}: the search in {search_dir} has {len(order)} trained blocks")
    row = order[rank - 1]
    record = {"search": str(search_dir), "rank": rank, "id": int(row["id"]), "reward": float(row["reward"]),
              "early_stop_accuracy": float(row["accuracy"]), "iteration": int(row["iteration"]),
              "blocks_per_stage": int(row["blocks"])}
    return from_array(row["nsc"], state.max_index), record, state.config_json
