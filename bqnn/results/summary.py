"""A search's results as numbers: what `python -m bqnn.report DIR --json` prints (the keys are in bqnn/report.py).

Used as a library by the report (`summarize(state, top, directory)`) and its figures (`curves`,
`training_curves`). Reads the state that run/checkpoint.py loads, and DIR/verify/*/result.json.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..run.checkpoint import SearchState
from ..stats import spearman
from ..training.result import Status
from .plots import running_top
from .ranking import ranked


def verified_results(directory: str | Path) -> list[dict]:
    """Results of `python -m bqnn.train --from DIR` found in DIR/verify/*/result.json, by rank."""
    out = []
    for p in sorted(Path(directory).glob("verify/*/result.json")):
        try:
            r = json.loads(p.read_text())
            src = r["source"]
            # trained with data.val_size = 0 (all training images): no validation accuracy, the test one stands in
            val = r["best_val_accuracy"] if r["best_val_accuracy"] is not None else r["test_accuracy"]
            out.append({"rank": int(src["rank"]), "hash": r["hash"], "reward": float(src["reward"]),
                        "early_stop_accuracy": float(src["early_stop_accuracy"]),
                        "verified_accuracy": float(val), "test_accuracy": float(r["test_accuracy"]),
                        "protocol": r["protocol"], "epochs": int(r["epochs"])})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a result being written or from another tool: not counted
    return sorted(out, key=lambda r: r["rank"])


def block(row: np.void) -> dict:
    """One candidate's block as the report shows it."""
    n = int(np.count_nonzero(row["nsc"].any(axis=1)))
    return {"nsc": row["nsc"][:n].tolist(), "reward": float(row["reward"]), "accuracy": float(row["accuracy"]),
            "flops": int(row["flops"]), "params": int(row["params"]), "density": float(row["density"]),
            "blocks_per_stage": int(row["blocks"]), "id": int(row["id"]), "iteration": int(row["iteration"]),
            "hash": row["hash"].decode()}


def _per_iteration(c: np.ndarray, done: int) -> list[dict]:
    """Each complete iteration's epsilon, mean and best reward, mean accuracy."""
    out = []
    for it in sorted(set(c["iteration"].tolist())):
        rows = c[c["iteration"] == it]
        if it >= done:  # the iteration in progress is not complete
            continue
        out.append({"iteration": int(it), "epsilon": float(rows["epsilon"][0]),
                    "mean_reward": float(rows["reward"].mean()), "best_reward": float(rows["reward"].max()),
                    "mean_accuracy": float(rows["accuracy"].mean())})
    return out


def _utilization(state: SearchState, trained: int) -> dict:
    busy, idle = state.util_busy, state.util_idle
    per_rank = [{"rank": int(r), "busy": float(b), "idle": float(i),
                 "utilization": float(b / (b + i)) if b + i > 0 else 0.0}
                for r, b, i in zip(state.util_rank, busy, idle, strict=True)]
    worker_hours = float((busy + idle).sum()) / 3600.0
    return {"utilization": {"per_rank": per_rank,
                            "mean": float(busy.sum() / (busy + idle).sum()) if (busy + idle).sum() > 0 else 0.0},
            "candidates_per_worker_hour": float(trained / worker_hours) if worker_hours > 0 else 0.0}


def summarize(state: SearchState, top: int = 5, directory: str | Path | None = None) -> dict:
    c = state.candidates[np.argsort(state.candidates["id"], kind="stable")]
    trained = c[c["repeat"] == 0]
    ok = trained[trained["status"] == Status.OK]
    best = ranked(c)  # the blocks trained to the end, as bqnn.train --rank K counts them
    per_iter = _per_iteration(c, state.iteration)
    per_eps: OrderedDict[str, list[float]] = OrderedDict()
    for row in per_iter:
        per_eps.setdefault(f"{row['epsilon']:.2f}", []).append(row["mean_reward"])
    rejected = int((trained["status"] == Status.REJECTED).sum())  # over the limits, never trained
    pruned = int((trained["status"] == Status.PRUNED).sum())  # stopped at a rung (run/pruning.py)
    return {
        "strategy": state.strategy,
        "iterations_done": int(state.iteration),
        "iterations_total": int(state.iterations_total),
        "candidates": int(len(c)),
        "unique_trained": int(len(trained) - rejected),
        "repeats": int(len(c) - len(trained)),
        "failed": int(len(trained) - len(ok) - rejected - pruned),
        "rejected": rejected,
        "pruned": pruned,
        # candidate-epochs spent, the search's bill: each restart (CVPR sec. 4.2) cost one epoch more
        "epochs_trained": int(trained["epochs"].sum() + trained["restarts"].sum()),
        "predictor_spearman": [None if np.isnan(x) else float(x)
                               for x in state.strategy_arrays.get("round_spearman", np.zeros(0)).tolist()],
        "failed_by_status": {Status(s).name.lower(): int((trained["status"] == s).sum())
                             for s in sorted(set(trained["status"].tolist())) if s not in (Status.OK, Status.PRUNED)},
        "best": block(best[0]) if len(best) else None,
        "top": [block(r) for r in best[:top]],
        "per_iteration": per_iter,
        "per_epsilon": {eps: float(np.mean(v)) for eps, v in per_eps.items()},
        **_utilization(state, len(trained)),
        "elapsed_seconds": float(state.elapsed),
        "master_cpu_seconds": float(state.master_cpu),
        "world_size": int(state.world_size),
        "runs": int(state.runs),
        **_verification(directory),
    }


def _verification(directory: str | Path | None) -> dict:
    v = verified_results(directory) if directory is not None else []
    return {
        "verified": v,
        "spearman": {
            "reward_vs_verified": spearman([r["reward"] for r in v], [r["verified_accuracy"] for r in v]),
            "early_stop_vs_verified": spearman([r["early_stop_accuracy"] for r in v],
                                               [r["verified_accuracy"] for r in v]),
        },
    }


def curves(state: SearchState) -> dict[str, np.ndarray]:
    c = state.candidates
    its = sorted(i for i in set(c["iteration"].tolist()) if i < state.iteration)
    per_it = [c[c["iteration"] == i] for i in its]
    trained = [rows[rows["repeat"] == 0]["reward"] for rows in per_it]  # a block counts once in the top-k
    return {"iteration": np.array(its), "epsilon": np.array([float(r["epsilon"][0]) for r in per_it]),
            "mean": np.array([float(r["reward"].mean()) for r in per_it]),
            "top1": running_top(trained, 1), "top5": running_top(trained, 5)}


def training_curves(state: SearchState) -> tuple[np.ndarray, np.ndarray]:
    """Best reward and mean of the 5 best after each network trained (id order; repeats and blocks
    rejected over the limits cost no training and are left out)."""
    c = state.candidates[np.argsort(state.candidates["id"], kind="stable")]
    each = [[x] for x in c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]["reward"].tolist()]
    return running_top(each, 1), running_top(each, 5)
