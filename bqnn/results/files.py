"""A search's report as files: candidates.csv, summary.md and the figures, written into DIR/report/.

Used by `python -m bqnn.report DIR` (`write_report`).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..blocks.code import format_nsc, validate
from ..config import from_json
from ..dashboard.page import report_page
from ..dashboard.views import Run
from ..run.checkpoint import SearchState
from ..run.pruning import Pruner
from ..training.result import Status
from . import plots
from .summary import curves, training_curves

CSV_FIELDS = ["id", "iteration", "epsilon", "rank", "status", "repeat", "accuracy", "reward", "flops", "params",
              "density", "seconds", "epochs", "restarts", "hash", "nsc", "message", "rungs"]


def write_csv(path: Path, state: SearchState) -> Path:
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
                        row["message"].decode("utf-8", "replace"),
                        " ".join(f"{a:.2f}" for a in row["rungs"] if a >= 0)])
    return path


def write_summary(path: Path, s: dict) -> Path:
    verified = {v["hash"]: v for v in s["verified"]}
    lines = [f"# bqnn search: {s['strategy']}", "",
             f"{s['iterations_done']}/{s['iterations_total']} iterations, {s['candidates']} candidates "
             f"({s['unique_trained']} trained, {s['repeats']} answered from the cache, {s['failed']} failed), "
             f"{s['elapsed_seconds'] / 3600:.2f} h over {s['runs']} run(s), utilization "
             f"{100 * s['utilization']['mean']:.1f} %, {s['candidates_per_worker_hour']:.1f} candidates per "
             "worker-hour.", "",
             "Mean reward by epsilon: " + ", ".join(f"ε={e}: {r:.2f}" for e, r in s["per_epsilon"].items()), "",
             f"## Top {len(s['top'])} blocks", "",
             "| rank | reward | early-stop acc. (%) | verified acc. (%) | test acc. (%) | params | GFLOPs | density "
             "| NSC |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for i, b in enumerate(s["top"], 1):
        v = verified.get(b["hash"])
        nsc = format_nsc(validate(b["nsc"], max(len(b["nsc"]), 2)))
        lines.append(f"| {i} | {b['reward']:.2f} | {b['accuracy']:.2f} | {v['verified_accuracy']:.2f} | "
                     f"{v['test_accuracy']:.2f} | " if v
                     else f"| {i} | {b['reward']:.2f} | {b['accuracy']:.2f} | – | – | ")
        lines[-1] += f"{b['params']:,} | {b['flops'] / 1e9:.4f} | {b['density']:.3f} | `{nsc}` |"
    lines.append("")
    if s["verified"]:
        sp = s["spearman"]
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:+.3f}"

        lines += ["## Verification", "",
                  f"{len(s['verified'])} blocks verified ({s['verified'][0]['protocol']}, "
                  f"{s['verified'][0]['epochs']} epochs). Spearman rank correlation with the verified accuracy: "
                  f"redefined reward {fmt(sp['reward_vs_verified'])}, "
                  f"early-stop accuracy {fmt(sp['early_stop_vs_verified'])}.", ""]
    path.write_text("\n".join(lines))
    return path


def write_report(directory: str | Path, state: SearchState, s: dict, out: Path,
                 compare: list[tuple[str, SearchState]], compare_dirs: list[str] | None = None) -> list[Path]:
    """Every file of the report: candidates.csv, summary.md, the figures, and index.html (the dashboard's views of
    this search and the compared ones, in one self-contained file)."""
    compare_dirs = compare_dirs or []
    out.mkdir(parents=True, exist_ok=True)
    written = [write_csv(out / "candidates.csv", state), write_summary(out / "summary.md", s)]
    if state.iteration > 0:
        cv = curves(state)
        written.append(plots.save(plots.search_plot(cv["iteration"], cv["epsilon"], cv["mean"], cv["top1"],
                                                    cv["top5"], f"{s['strategy']}: reward per iteration"),
                                  out / "search.png"))
    v = s["verified"]
    if v:
        sp = s["spearman"]
        written.append(plots.save(plots.verify_plot(np.array([r["reward"] for r in v]),
                                                    np.array([r["verified_accuracy"] for r in v]),
                                                    np.array([r["early_stop_accuracy"] for r in v]),
                                                    sp["reward_vs_verified"], sp["early_stop_vs_verified"]),
                                  out / "verify.png"))
    (out / "blocks").mkdir(exist_ok=True)
    for i, b in enumerate(s["top"], 1):
        nsc = validate(b["nsc"], max(len(b["nsc"]), 2))
        written.append(plots.block_figure(out / "blocks" / f"rank-{i:03d}.png", nsc,
                                          f"rank {i}: reward {b['reward']:.2f}"))
    cfg = from_json(state.config_json)
    trained = state.candidates[state.candidates["repeat"] == 0]
    if cfg.pruning.rule != "none" and (trained["rungs"][:, 0] >= 0).any():
        trained = trained[np.argsort(trained["id"], kind="stable")]
        cuts = Pruner(cfg.pruning).cutoffs_for(trained["rungs"])
        written.append(plots.save(plots.rung_plot(tuple(cfg.pruning.rungs), cfg.trainer.epochs, trained, cuts),
                                  out / "rungs.png"))
    if compare:
        runs = []
        for label, st in [(f"{state.strategy} ({Path(directory).name})", state)] + compare:
            runs.append((label, *training_curves(st)))
        note = incomparable([state] + [st for _, st in compare])
        written.append(plots.save(plots.compare_plot(runs, note), out / "compare.png"))
    page = report_page([Run(directory), *(Run(d) for d in compare_dirs)])
    (out / "index.html").write_text(page)
    written.append(out / "index.html")
    return written


# What must be equal for two searches' rewards to be compared: the data, the network, how long a candidate trains,
# the reward's weights (the strategy, its budget and the space may differ: that is what a comparison is about).
COMPARABLE = ("data.dataset", "data.root", "data.resize", "data.train_subset", "data.val_size", "data.split_seed",
              "network.framework", "network.filters", "network.blocks_per_stage", "trainer.epochs",
              "trainer.batch_size", "trainer.lr", "trainer.lr_step", "trainer.amp", "trainer.kind", "reward.preset",
              "reward.mu", "reward.rho")


def incomparable(states: list[SearchState]) -> str:
    """What differs between the searches beyond the search itself, in a few words ("" when they compare)."""
    from ..config import to_dict

    cfgs = [to_dict(from_json(st.config_json)) for st in states]
    differ = [k for k in COMPARABLE if len({json.dumps(c[k.split(".")[0]][k.split(".")[1]]) for c in cfgs}) > 1]
    return ", ".join(differ[:4]) + (" ..." if len(differ) > 4 else "") + (" differ" if differ else "")
