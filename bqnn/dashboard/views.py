"""What the dashboard and the report page show of a search, as JSON-able data read from its directory (read-only).

Used by the dashboard's server (bqnn/dashboard/server.py: one request, one view) and by the report, which embeds
the finished views in report/index.html (bqnn/dashboard/page.py):

    run = Run("runs/demo")              # re-reads search.h5 and status.json only when they changed
    run.overview()                      # status, counts, per-iteration rewards (epsilon, spread, best so far), config
    run.candidates(since=0)             # the candidate table from row `since` on (completion order): columns, rows
    run.candidate(cid)                  # one candidate: code, curve with the pruning cut-offs, its block's drawing

Nothing is written into the directory. A search that is running is read as its last checkpoint (at most
`search.checkpoint_interval` old) and its live status. No torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks.code import format_nsc, from_array
from ..blocks.drawing import drawing
from ..config import from_json
from ..run import checkpoint, status
from ..run.pruning import Pruner
from ..training.result import Status

COLUMNS = ("id", "iteration", "status", "repeat", "reward", "accuracy", "flops", "params", "density", "rank", "host",
           "seconds", "epochs", "started", "ended", "epsilon", "hash")
STATUS_NAMES = {int(s): s.name.lower() for s in Status}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


class Run:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self._key: tuple | None = None
        self._state: checkpoint.SearchState | None = None
        self._order: np.ndarray = np.zeros(0, np.int64)

    @property
    def name(self) -> str:
        return self.dir.name or str(self.dir)

    def state(self) -> checkpoint.SearchState:
        """The last checkpoint (re-read when search.h5 changed); CheckpointError when there is none to read."""
        main = self.dir / checkpoint.FILENAME
        try:
            st = main.stat()
            key: tuple = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = ()
        if self._state is None or key != self._key:
            self._state = checkpoint.load(self.dir)[0]
            self._key = key
        return self._state

    def overview(self) -> dict[str, Any]:
        s = self.state()
        cfg = from_json(s.config_json)
        c = s.candidates[np.argsort(s.candidates["id"], kind="stable")]
        running, why = status.alive(self.dir)
        return {"name": self.name, "dir": str(self.dir), "strategy": s.strategy, "running": running, "why": why,
                "live": status.read(self.dir), "iteration": s.iteration, "iterations_total": s.iterations_total,
                "candidates": int(len(c)), "elapsed": s.elapsed, "runs": s.runs, "world_size": s.world_size,
                "config": {"dataset": cfg.data.dataset, "resize": cfg.data.resize,
                           "train_subset": cfg.data.train_subset, "val_size": cfg.data.val_size,
                           "epochs": cfg.trainer.epochs, "trainer": cfg.trainer.kind,
                           "max_index": cfg.space.max_index, "filters": list(cfg.network.filters),
                           "blocks_per_stage": cfg.network.blocks_per_stage, "reward": cfg.reward.preset,
                           "pruning": cfg.pruning.rule},
                "iterations": _iterations(c, s.iteration), "best": _best(c),
                "pruning": _pruning(cfg, c), "version": list(self._key or ())}

    def candidates(self, since: int = 0) -> dict[str, Any]:
        """The rows from `since` on, in the order they were recorded (so a page that has `since` rows fetches only
        what is new), as columns of values."""
        c = self.state().candidates[since:]
        cols: list[list[Any]] = []
        for name in COLUMNS:
            col = c[name]
            if col.dtype.kind == "S":
                cols.append([v.decode("utf-8", "replace") for v in col.tolist()])
            elif col.dtype.kind == "f":
                cols.append([_finite(v) for v in col.tolist()])
            else:
                cols.append(col.tolist())
        rows = [list(r) for r in zip(*cols, strict=True)] if len(c) else []
        return {"columns": list(COLUMNS), "rows": rows, "since": since, "total": since + len(c),
                "statuses": STATUS_NAMES}

    def candidate(self, cid: int) -> dict[str, Any] | None:
        s = self.state()
        hit = np.nonzero(s.candidates["id"] == cid)[0]
        if not len(hit):
            return None
        row = s.candidates[hit[0]]
        cfg = from_json(s.config_json)
        return block_view(row, s.max_index, cfg.pruning.rungs, cfg.trainer.epochs,
                          _pruning(cfg, s.candidates)["cutoffs"] if cfg.pruning.rule != "none" else None)


def block_view(row: np.void, max_index: int, rungs: tuple[int, ...], epochs: int,
               cutoffs: list[float | None] | None) -> dict[str, Any]:
    """One candidate as the page shows it: its code, its curve (the rung accuracies and, trained to the end, its
    final accuracy, at their epochs) with the cut-offs, and its block's drawing."""
    nsc = from_array(row["nsc"], max_index)
    reached = [(e, float(a)) for e, a in zip(rungs, row["rungs"], strict=False) if a >= 0]
    if int(row["status"]) == Status.OK:
        reached.append((int(row["epochs"]), float(row["accuracy"])))
    d = drawing(nsc)
    return {"id": int(row["id"]), "hash": row["hash"].decode(), "nsc": format_nsc(nsc),
            "status": STATUS_NAMES.get(int(row["status"]), "?"), "accuracy": float(row["accuracy"]),
            "reward": float(row["reward"]), "epochs_total": epochs, "curve": reached,
            "rungs": list(rungs) if cutoffs is not None else [], "cutoffs": cutoffs or [],
            "message": row["message"].decode("utf-8", "replace"),
            "drawing": {"rows": d.rows, "width": d.width, "nodes": [list(n) for n in d.nodes],
                        "edges": [list(e) for e in d.edges]}}


def _iterations(c: np.ndarray, done: int) -> list[dict[str, Any]]:
    """Each complete iteration: epsilon, the rewards' spread (min, quartiles, max, mean) and the best so far."""
    out, best = [], -math.inf
    for it in range(done):
        r = c[c["iteration"] == it]["reward"]
        if not len(r):
            continue
        best = max(best, float(r.max()))
        q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
        out.append({"iteration": it, "epsilon": float(c[c["iteration"] == it]["epsilon"][0]),
                    "mean": float(r.mean()), "min": float(q[0]), "q25": float(q[1]), "median": float(q[2]),
                    "q75": float(q[3]), "max": float(q[4]), "best": best, "n": int(len(r))})
    return out


def _best(c: np.ndarray) -> dict[str, Any] | None:
    trained = c[(c["repeat"] == 0) & (c["status"] == Status.OK)]
    if not len(trained):
        return None
    row = trained[int(np.argmax(trained["reward"]))]
    return {"id": int(row["id"]), "reward": float(row["reward"]), "accuracy": float(row["accuracy"]),
            "nsc": format_nsc(from_array(row["nsc"], row["nsc"].shape[0]))}


def _pruning(cfg: Any, c: np.ndarray) -> dict[str, Any]:
    if cfg.pruning.rule == "none":
        return {"rule": "none", "rungs": [], "cutoffs": []}
    trained = c[c["repeat"] == 0]
    return {"rule": cfg.pruning.rule, "rungs": list(cfg.pruning.rungs),
            "cutoffs": Pruner(cfg.pruning).cutoffs_for(trained["rungs"])}
