"""Summaries of a search: python -m bqnn.report DIR [--json] [--top K] [--compare DIR2 ...]

    python -m bqnn.report runs/demo                       # a readable summary, and the files below
    python -m bqnn.report runs/demo --json                # one JSON object (below), nothing written
    python -m bqnn.report runs/qlearning --compare runs/random   # also the Appendix A figure

Files written into DIR/report/ (or --report-dir): candidates.csv (one row per candidate),
summary.md (progress, mean reward per epsilon, the top-K blocks with their params, FLOPs, density
and verified accuracy, and the rank correlation of early-stop reward and verified accuracy),
search.png (Fig. 8(a)), verify.png (when DIR/verify/ holds results of `python -m bqnn.train
--from DIR`), blocks/rank-KKK.png (each top block's DAG), compare.png (with --compare).

Reads DIR/search.h5 (read-only; falls back to search.h5.bak like a resume).
The JSON object has: iterations_done, iterations_total, candidates (all
records, repeats included), unique_trained (blocks actually trained), repeats,
failed (trained blocks whose status is not ok), rejected (BlockQNN-L: over the
limits, never trained), predictor_spearman (PNAS: per round, null where undefined),
best {nsc (list of 5-lists), reward, accuracy, flops, params, density,
blocks_per_stage, id, iteration}, top (the K best
unique blocks), per_iteration [{iteration, epsilon, mean_reward, best_reward}],
per_epsilon {epsilon: mean reward}, utilization {per_rank: [{rank, busy, idle,
utilization}], mean}, candidates_per_worker_hour, elapsed_seconds,
master_cpu_seconds, strategy, verified [{rank, hash, reward, early_stop_accuracy,
verified_accuracy (best validation accuracy of the verification run), test_accuracy}] and
spearman {reward_vs_verified, early_stop_vs_verified} (null without two verified blocks).
Exit 2 with one line if DIR holds no readable search.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import checkpoint
from .protocol import Status
from .stats import spearman


def verified_results(directory: str | Path) -> list[dict]:
    """Results of `python -m bqnn.train --from DIR` found in DIR/verify/*/result.json, by rank."""
    out = []
    for p in sorted(Path(directory).glob("verify/*/result.json")):
        try:
            r = json.loads(p.read_text())
            src = r["source"]
            out.append({"rank": int(src["rank"]), "hash": r["hash"], "reward": float(src["reward"]),
                        "early_stop_accuracy": float(src["early_stop_accuracy"]),
                        "verified_accuracy": float(r["best_val_accuracy"]), "test_accuracy": float(r["test_accuracy"]),
                        "protocol": r["protocol"], "epochs": int(r["epochs"])})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a result being written or from another tool: not counted
    return sorted(out, key=lambda r: r["rank"])


def summarize(state: checkpoint.SearchState, top: int = 5, directory: str | Path | None = None) -> dict:
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
            "blocks_per_stage": int(row["blocks"]),
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
    rejected = int((trained["status"] == Status.REJECTED).sum())  # over the limits, never trained
    return {
        "strategy": state.strategy,
        "iterations_done": int(state.iteration),
        "iterations_total": int(state.iterations_total),
        "candidates": int(len(c)),
        "unique_trained": int(len(trained) - rejected),
        "repeats": int(len(c) - len(trained)),
        "failed": int(len(trained) - len(ok) - rejected),
        "rejected": rejected,
        "predictor_spearman": [None if np.isnan(x) else float(x)
                               for x in state.strategy_arrays.get("round_spearman", np.zeros(0)).tolist()],
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
        **_verification(directory),
    }


def _verification(directory: str | Path | None) -> dict:
    v = verified_results(directory) if directory is not None else []
    return {
        "verified": v,
        "spearman": {
            "reward_vs_verified": spearman([r["reward"] for r in v], [r["verified_accuracy"] for r in v]),
            "early_stop_vs_verified": spearman([r["early_stop_accuracy"] for r in v], [r["verified_accuracy"] for r in v]),
        },
    }


def _text(s: dict) -> str:
    from .nsc import format_nsc, validate

    lines = [f"{s['strategy']}: {s['iterations_done']}/{s['iterations_total']} iterations, {s['candidates']} candidates "
             f"({s['unique_trained']} trained, {s['repeats']} repeats, {s['failed']} failed"
             + (f", {s['rejected']} rejected over the limits" if s["rejected"] else "")
             + f"), {s['elapsed_seconds'] / 60:.1f} min, {s['runs']} run(s)"]
    if s["predictor_spearman"]:
        lines.append("predictor Spearman per round: " + ", ".join("n/a" if x is None else f"{x:+.2f}"
                                                                  for x in s["predictor_spearman"]))
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


CSV_FIELDS = ["id", "iteration", "epsilon", "rank", "status", "repeat", "accuracy", "reward", "flops", "params",
              "density", "seconds", "epochs", "restarts", "hash", "nsc", "message"]


def write_csv(path: Path, state: checkpoint.SearchState) -> Path:
    from .nsc import format_nsc, validate

    c = state.candidates[np.argsort(state.candidates["id"], kind="stable")]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for row in c:
            n = int(np.count_nonzero(row["nsc"].any(axis=1)))
            nsc = format_nsc(validate(row["nsc"][:n].tolist(), state.max_index))
            w.writerow([int(row["id"]), int(row["iteration"]), float(row["epsilon"]), int(row["rank"]),
                        Status(int(row["status"])).name.lower(), int(row["repeat"]), float(row["accuracy"]),
                        float(row["reward"]), int(row["flops"]), int(row["params"]), float(row["density"]),
                        float(row["seconds"]), int(row["epochs"]), int(row["restarts"]), row["hash"].decode(), nsc,
                        row["message"].decode("utf-8", "replace")])
    return path


def _curves(state: checkpoint.SearchState) -> dict[str, np.ndarray]:
    from .plots import running_top

    c = state.candidates
    its = sorted(i for i in set(c["iteration"].tolist()) if i < state.iteration)
    per_it = [c[c["iteration"] == i] for i in its]
    trained = [rows[rows["repeat"] == 0]["reward"] for rows in per_it]  # a block counts once in the top-k
    return {"iteration": np.array(its), "epsilon": np.array([float(r["epsilon"][0]) for r in per_it]),
            "mean": np.array([float(r["reward"].mean()) for r in per_it]),
            "top1": running_top(trained, 1), "top5": running_top(trained, 5)}


def training_curves(state: checkpoint.SearchState) -> tuple[np.ndarray, np.ndarray]:
    """Best reward and mean of the 5 best after each network trained (id order; repeats and blocks
    rejected over the limits cost no training and are left out)."""
    from .plots import running_top

    c = state.candidates[np.argsort(state.candidates["id"], kind="stable")]
    each = [[x] for x in c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]["reward"].tolist()]
    return running_top(each, 1), running_top(each, 5)


def write_summary(path: Path, s: dict) -> Path:
    verified = {v["hash"]: v for v in s["verified"]}
    lines = [f"# bqnn search: {s['strategy']}", "",
             f"{s['iterations_done']}/{s['iterations_total']} iterations, {s['candidates']} candidates "
             f"({s['unique_trained']} trained, {s['repeats']} answered from the cache, {s['failed']} failed), "
             f"{s['elapsed_seconds'] / 3600:.2f} h over {s['runs']} run(s), utilization "
             f"{100 * s['utilization']['mean']:.1f} %, {s['candidates_per_worker_hour']:.1f} candidates per worker-hour.", "",
             "Mean reward by epsilon: " + ", ".join(f"ε={e}: {r:.2f}" for e, r in s["per_epsilon"].items()), "",
             f"## Top {len(s['top'])} blocks", "",
             "| rank | reward | early-stop acc. (%) | verified acc. (%) | test acc. (%) | params | GFLOPs | density | NSC |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    from .nsc import format_nsc, validate

    for i, b in enumerate(s["top"], 1):
        v = verified.get(b["hash"])
        nsc = format_nsc(validate(b["nsc"], max(len(b["nsc"]), 2)))
        lines.append(f"| {i} | {b['reward']:.2f} | {b['accuracy']:.2f} | {v['verified_accuracy']:.2f} | "
                     f"{v['test_accuracy']:.2f} | " if v else f"| {i} | {b['reward']:.2f} | {b['accuracy']:.2f} | – | – | ")
        lines[-1] += f"{b['params']:,} | {b['flops'] / 1e9:.4f} | {b['density']:.3f} | `{nsc}` |"
    lines.append("")
    if s["verified"]:
        sp = s["spearman"]
        fmt = lambda x: "n/a" if x is None else f"{x:+.3f}"
        lines += ["## Verification", "",
                  f"{len(s['verified'])} blocks verified ({s['verified'][0]['protocol']}, {s['verified'][0]['epochs']} epochs). "
                  f"Spearman rank correlation with the verified accuracy: redefined reward {fmt(sp['reward_vs_verified'])}, "
                  f"early-stop accuracy {fmt(sp['early_stop_vs_verified'])}.", ""]
    path.write_text("\n".join(lines))
    return path


def write_report(directory: str | Path, state: checkpoint.SearchState, s: dict, out: Path,
                 compare: list[tuple[str, checkpoint.SearchState]]) -> list[Path]:
    from . import plots
    from .nsc import validate

    out.mkdir(parents=True, exist_ok=True)
    written = [write_csv(out / "candidates.csv", state), write_summary(out / "summary.md", s)]
    if state.iteration > 0:
        cv = _curves(state)
        written.append(plots.search_figure(out / "search.png", cv["iteration"], cv["epsilon"], cv["mean"], cv["top1"],
                                           cv["top5"], f"{s['strategy']}: reward per iteration"))
    v = s["verified"]
    if v:
        sp = s["spearman"]
        written.append(plots.verify_figure(out / "verify.png", np.array([r["reward"] for r in v]),
                                           np.array([r["verified_accuracy"] for r in v]),
                                           np.array([r["early_stop_accuracy"] for r in v]),
                                           sp["reward_vs_verified"] or 0.0, sp["early_stop_vs_verified"] or 0.0))
    (out / "blocks").mkdir(exist_ok=True)
    for i, b in enumerate(s["top"], 1):
        nsc = validate(b["nsc"], max(len(b["nsc"]), 2))
        written.append(plots.block_figure(out / "blocks" / f"rank-{i:03d}.png", nsc,
                                          f"rank {i}: reward {b['reward']:.2f}"))
    if compare:
        runs = []
        for label, st in [(f"{state.strategy} ({Path(directory).name})", state)] + compare:
            runs.append((label, *training_curves(st)))
        written.append(plots.compare_figure(out / "compare.png", runs))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bqnn.report", description="Summarize a bqnn search directory.")
    p.add_argument("dir", help="search output directory (holds search.h5)")
    p.add_argument("--json", action="store_true", help="print one JSON object and write no files")
    p.add_argument("--top", type=int, default=5, help="how many of the best unique blocks to list and draw")
    p.add_argument("--compare", action="append", default=[], metavar="DIR2", help="another search to compare with")
    p.add_argument("--report-dir", help="where to write the files (default DIR/report)")
    args = p.parse_args(argv)
    try:
        state, _, warning = checkpoint.load(args.dir)
        others = []
        for d in args.compare:
            st, _, _ = checkpoint.load(d)
            others.append((f"{st.strategy} ({Path(d).name})", st))
    except checkpoint.CheckpointError as e:
        print(f"bqnn.report: error: {e}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr)
    s = summarize(state, args.top, args.dir)
    if args.json:
        print(json.dumps(s))
        return 0
    print(_text(s))
    out = Path(args.report_dir) if args.report_dir else Path(args.dir) / "report"
    try:
        written = write_report(args.dir, state, s, out, others)
    except OSError as e:
        print(f"bqnn.report: error: cannot write the report into {out}: {e}", file=sys.stderr)
        return 2
    print(f"report: {len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
