"""Summaries of a search: python -m bqnn.report DIR [--json] [--top K] [--compare DIR2 ...]

    python -m bqnn.report runs/demo                       # a readable summary, and the files below
    python -m bqnn.report runs/demo --json                # one JSON object (below), nothing written
    python -m bqnn.report runs/qlearning --compare runs/random   # also the Appendix A figure

Files written into DIR/report/ (or --report-dir): candidates.csv (one row per candidate),
summary.md (progress, mean reward per epsilon, the top-K blocks with their params, FLOPs, density
and verified accuracy, and the rank correlation of early-stop reward and verified accuracy),
search.png (Fig. 8(a)), verify.png (when DIR/verify/ holds results of `python -m bqnn.train
--from DIR`), blocks/rank-KKK.png (each top block's DAG), rungs.png (with pruning on: each
candidate's accuracy at the rungs and the cut-offs), compare.png (with --compare).

Reads DIR/search.h5 (read-only; falls back to search.h5.bak like a resume). The numbers are
bqnn/results/summary.py, the files bqnn/results/files.py, the figures bqnn/results/plots.py.
The JSON object has: iterations_done, iterations_total, candidates (all
records, repeats included), unique_trained (blocks actually trained), repeats,
failed (trained blocks whose status is not ok), rejected (BlockQNN-L: over the
limits, never trained), pruned (stopped at a pruning rung), epochs_trained (candidate-epochs
spent: every epoch of every trained candidate, restarts included), predictor_spearman (PNAS: per round,
null where undefined),
best {nsc (list of 5-lists), reward, accuracy, flops, params, density,
blocks_per_stage, id, iteration}, top (the K best
unique blocks trained to the end, status ok: top[K-1] is
`bqnn.train --from DIR --rank K`), per_iteration [{iteration, epsilon, mean_reward, best_reward}],
per_epsilon {epsilon: mean reward}, utilization {per_rank: [{rank, busy, idle,
utilization}], mean}, candidates_per_worker_hour, elapsed_seconds,
master_cpu_seconds, strategy, verified [{rank, hash, reward, early_stop_accuracy,
verified_accuracy (best validation accuracy of the verification run), test_accuracy}] and
spearman {reward_vs_verified, early_stop_vs_verified} (null without two verified blocks).
Exit 2 with one line if DIR holds no readable search.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .blocks.code import format_nsc, validate
from .cli import Parser, emit
from .results.files import write_report
from .results.summary import summarize
from .run import checkpoint


def _text(s: dict) -> str:
    lines = [f"{s['strategy']}: {s['iterations_done']}/{s['iterations_total']} iterations, "
             f"{s['candidates']} candidates "
             f"({s['unique_trained']} trained, {s['repeats']} repeats, {s['failed']} failed"
             + (f", {s['rejected']} rejected over the limits" if s["rejected"] else "")
             + (f", {s['pruned']} pruned" if s["pruned"] else "") + f"; {s['epochs_trained']:,} candidate-epochs"
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


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m bqnn.report", description="Summarize a bqnn search directory.")
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
    if others:
        from .results.files import incomparable

        note = incomparable([state] + [st for _, st in others])
        if note:
            print(f"warning: the compared searches are not comparable: {note} (compare.png says so)", file=sys.stderr)
    s = summarize(state, args.top, args.dir)
    if args.json:
        emit(json.dumps(s))
        return 0
    emit(_text(s))
    out = Path(args.report_dir) if args.report_dir else Path(args.dir) / "report"
    try:
        written = write_report(args.dir, state, s, out, others, args.compare)
    except OSError as e:
        print(f"bqnn.report: error: cannot write the report into {out}: {e}", file=sys.stderr)
        return 2
    emit(f"report: {len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
