"""A bench's search, run once and read back: every bench script runs its searches through this.

    state = finished(out, "jobs/demo.toml", ["search.seed=3", "trainer.kind=simulated"])
    candidates = by_id(state.candidates)

A search is run (a real `bqnn.search` in this process, its printout kept quiet) unless its output directory holds
a finished one; a search stopped part-way resumes. A search that fails stops the bench with its printout.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np

from bqnn.run import checkpoint
from bqnn.run.state import SearchState
from bqnn.search import main as search_main


def finished(out: Path, config: str | Path, sets: list[str]) -> SearchState:
    """The checkpointed state of the search in `out` with `config` and `--set` overrides, once it has finished."""
    state = checkpoint.load(out)[0] if checkpoint.exists(out) else None
    if state is None or state.iteration < state.iterations_total:
        args = ["--config", str(config), "--out", str(out)] + [x for s in sets for x in ("--set", s)]
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            code = search_main(args)
        if code != 0:
            raise SystemExit(f"{Path(sys.argv[0]).as_posix()}: search in {out} failed ({code}):\n{buf.getvalue()}")
        state = checkpoint.load(out)[0]
    return state


def by_id(candidates: np.ndarray) -> np.ndarray:
    """The candidates in the order they were proposed."""
    return candidates[np.argsort(candidates["id"], kind="stable")]
