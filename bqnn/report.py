"""Summaries of a search: python -m bqnn.report DIR [--json] [--top K]

    python -m bqnn.report runs/demo            # a readable summary
    python -m bqnn.report runs/demo --json     # one JSON object (below)

Reads DIR/search.h5 (read-only; falls back to search.h5.bak like a resume).
The JSON object has: iterations_done, iterations_total, candidates (all
records, repeats included), unique_trained (blocks actually trained), repeats,
failed (trained blocks whose status is not ok), best {nsc (list of 5-lists),
reward, accuracy, flops, params, density, id, iteration}, top (the K best
unique blocks), per_iteration [{iteration, epsilon, mean_reward, best_reward}],
per_epsilon {epsilon: mean reward}, utilization {per_rank: [{rank, busy, idle,
utilization}], mean}, candidates_per_worker_hour, elapsed_seconds,
master_cpu_seconds, strategy.
Exit 2 with one line if DIR holds no readable search.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict

import numpy as np

from . import checkpoint
from .protocol import Status


def summarize(state: checkpoint.SearchState, top: int = 5) -> dict:
    c = state.candidates
    order = np.argsort(c["id"], kind="stable")
    c = c[order]
    trained = c[c["repeat"] == 0]
    ok = trained[trained["status"] == Status.OK]

    def block(row) -> dict:
        n = int(np.count_nonzero(row["nsc"].any(axis=1)))
        return {
            "nsc": row["nsc"][:n].tolist(),
            "reward": float(row["reward"]),
            "accuracy": float(row["accuracy"]),
            "flops": int(row["flops"]),
            "params": int(row["params"]),
            "density": float(row["density"]),
            "id": int(row["id"]),
            "iteration": int(row["iteration"]),
            "hash": row["hash"].decode(),
        }

    ranked = trained[np.argsort(-trained["reward"], kind="stable")]
    per_iter = []
    for it in sorted(set(c["iteration"].tolist())):
        rows = c[c["iteration"] == it]
        if it >= state.iteration:  # the iteration in progress is not complete
            continue
        per_iter.append({"iteration": int(it), "epsilon": float(rows["epsilon"][0]),
                         "mean_reward": float(rows["reward"].mean()), "best_reward": float(rows["reward"].max()),
                         "mean_accuracy": float(rows["accuracy"].mean())})
    per_eps: "OrderedDict[str, list[float]]" = OrderedDict()
    for row in per_iter:
        per_eps.setdefault(f"{row['epsilon']:.2f}", []).append(row["mean_reward"])
    busy, idle = state.util_busy, state.util_idle
    per_rank = [{"rank": int(r), "busy": float(b), "idle": float(i),
                 "utilization": float(b / (b + i)) if b + i > 0 else 0.0}
                for r, b, i in zip(state.util_rank, busy, idle)]
    worker_hours = float((busy + idle).sum()) / 3600.0
    return {
        "strategy": state.strategy,
        "iterations_done": int(state.iteration),
        "iterations_total": int(state.iterations_total),
        "candidates": int(len(c)),
        "unique_trained": int(len(trained)),
        "repeats": int(len(c) - len(trained)),
        "failed": int(len(trained) - len(ok)),
        "failed_by_status": {Status(s).name.lower(): int((trained["status"] == s).sum())
                             for s in sorted(set(trained["status"].tolist())) if s != Status.OK},
        "best": block(ranked[0]) if len(ranked) else None,
        "top": [block(r) for r in ranked[:top]],
        "per_iteration": per_iter,
        "per_epsilon": {eps: float(np.mean(v)) for eps, v in per_eps.items()},
        "utilization": {"per_rank": per_rank,
                        "mean": float(busy.sum() / (busy + idle).sum()) if (busy + idle).sum() > 0 else 0.0},
        "candidates_per_worker_hour": float(len(trained) / worker_hours) if worker_hours > 0 else 0.0,
        "elapsed_seconds": float(state.elapsed),
        "master_cpu_seconds": float(state.master_cpu),
        "world_size": int(state.world_size),
        "runs": int(state.runs),
    }


def _text(s: dict) -> str:
    from .nsc import format_nsc, validate

    lines = [f"{s['strategy']}: {s['iterations_done']}/{s['iterations_total']} iterations, {s['candidates']} candidates "
             f"({s['unique_trained']} trained, {s['repeats']} repeats, {s['failed']} failed), "
             f"{s['elapsed_seconds'] / 60:.1f} min, {s['runs']} run(s)"]
    if s["per_epsilon"]:
        lines.append("mean reward by epsilon: " + ", ".join(f"{e}: {r:.2f}" for e, r in s["per_epsilon"].items()))
    lines.append(f"utilization {100 * s['utilization']['mean']:.1f} %, "
                 f"{s['candidates_per_worker_hour']:.1f} candidates per worker-hour")
    lines.append(f"top {len(s['top'])}:   reward  accuracy     GFLOPs   params  density  nsc")
    for i, b in enumerate(s["top"], 1):
        nsc = format_nsc(validate(b["nsc"], max(len(b["nsc"]), 2)))
        lines.append(f"  {i:>2}  {b['reward']:8.2f}  {b['accuracy']:7.2f} %  {b['flops'] / 1e9:8.4f}  "
                     f"{b['params']:7d}  {b['density']:6.3f}  {nsc}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bqnn.report", description="Summarize a bqnn search directory.")
    p.add_argument("dir", help="search output directory (holds search.h5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--top", type=int, default=5, help="how many of the best unique blocks to list")
    args = p.parse_args(argv)
    try:
        state, _, warning = checkpoint.load(args.dir)
    except checkpoint.CheckpointError as e:
        print(f"bqnn.report: error: {e}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr)
    s = summarize(state, args.top)
    print(json.dumps(s) if args.json else _text(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
