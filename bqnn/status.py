"""What a search is doing now, like squeue: each rank's state, candidate, epoch, the counts, the pace and ETA.

    python -m bqnn.status runs/demo                 # once
    python -m bqnn.status runs/demo --watch         # refreshed every 2 s (--watch 10: every 10 s), Ctrl-C ends it
    python -m bqnn.status runs/demo --json          # one JSON object (docs/status.md)

Reads DIR/status.json, which rank 0 of a running search replaces every 2 seconds (bqnn/run/status.py), and
DIR/search.lock to tell whether the search that wrote it is still alive; writes nothing. A search that is not
running says so, with when it last lived and how it ended (finished, stopped by a signal, or gone without a word:
killed, or its node lost). A DIR without a status (a search of an earlier bqnn) is described from search.h5.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .cli import Parser, emit
from .signals import hold

PROG = "bqnn.status"


def _ago(t: float) -> str:
    from .run.progress import fmt_time

    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} ({fmt_time(time.time() - t)} ago)"


def describe(out: Path) -> dict[str, Any]:
    """Everything `bqnn.status` shows of `out`, as one JSON-able object."""
    from .run import checkpoint
    from .run.status import alive, read

    doc = read(out)
    running, why = alive(out)
    result: dict[str, Any] = {"dir": str(out), "running": running, "why": why, "status": doc, "checkpoint": None}
    if doc is None and checkpoint.exists(out):
        try:
            state = checkpoint.load(out)[0]
            result["checkpoint"] = {"iteration": state.iteration, "iterations_total": state.iterations_total,
                                    "candidates": len(state.candidates), "strategy": state.strategy,
                                    "saved": (out / checkpoint.FILENAME).stat().st_mtime}
        except (checkpoint.CheckpointError, OSError) as e:
            result["checkpoint"] = {"error": str(e)}
    return result


def text(d: dict[str, Any]) -> str:
    from .run.progress import fmt_time

    doc, out = d["status"], d["dir"]
    if doc is None:
        c = d["checkpoint"]
        if c is None:
            return f"{out}: no search has run here (no status.json, no search.h5)"
        if "error" in c:
            return f"{out}: no live status, and search.h5 is unreadable: {c['error']}"
        return (f"{out}: {'running' if d['running'] else 'not running'} ({d['why']}); no live status (a search of "
                f"an earlier bqnn): {c['strategy']}, iteration {c['iteration']}/{c['iterations_total']}, "
                f"{c['candidates']} candidates, search.h5 saved {_ago(c['saved'])}")
    if d["running"]:
        head = f"{out}: running ({d['why']}), status updated {fmt_time(time.time() - doc['updated'])} ago"
    else:
        how = {"finished": "it finished", "stopped": "it was stopped by a signal and can be resumed",
               "failed": "it ended with an error"}.get(doc["state"], "it ended without a word: killed, or its node "
                                                                  "lost; run the same command to resume")
        head = f"{out}: not running ({d['why']}); {how}; it last lived {_ago(doc['updated'])}"
    rate = doc.get("trainings_per_hour")
    lines = [head,
             f"  {doc['strategy']}, iteration {min(doc['iteration'] + 1, doc['iterations_total'])}/"
             f"{doc['iterations_total']}, {doc['candidates']} of {doc['planned']} candidates "
             f"({doc['trained']} trained, {doc['repeats']} from the cache, {doc['failed']} failed"
             + (f", {doc['pruned']} pruned" if doc.get("pruned") else "") + ")"
             + (f"; best reward {doc['best_reward']:.2f}" if doc.get("best_reward") is not None else ""),
             f"  elapsed {fmt_time(doc['elapsed'])} (run {doc['run']}), "
             + (f"{rate:.1f} trainings/h in this run, " if rate else "")
             + f"ETA {fmt_time(doc['eta_seconds']) if d['running'] else '-'}, {doc['queued']} queued, "
               f"{doc['in_flight']} in flight",
             f"  {'RANK':>4}  {'HOST':<16} {'STATE':<9} {'FOR':>8}  {'CANDIDATE':>9}  {'BLOCK':<16}  {'EPOCH':>7}  "
             f"{'RUNG ACC':>8}  WHY"]
    for r in doc["ranks"]:
        busy = r["state"] == "training"
        epoch = f"{r['epoch']}/{doc.get('epochs', '?')}" if busy else "-"
        rung = f"{r['rung_accuracy']:.2f}" if busy and r["rung_accuracy"] is not None else "-"
        since = fmt_time(doc["updated"] - r["since"])
        lines.append(f"  {r['rank']:>4}  {r['host'][:16]:<16} {r['state']:<9} {since:>8}"
                     f"  {r['candidate'] if busy else '-':>9}  {r['hash'] if busy else '-':<16}  {epoch:>7}  "
                     f"{rung:>8}  {r['why']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="a search's output directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 2) until Ctrl-C")
    args = p.parse_args(argv)
    out = Path(args.dir)
    if not out.is_dir():
        print(f"{PROG}: error: {out} is not a directory", file=sys.stderr)
        return 2
    if args.watch is not None and not 0.1 <= args.watch <= 3600:
        print(f"{PROG}: error: --watch must be 0.1 to 3600 seconds, got {args.watch}", file=sys.stderr)
        return 2
    try:
        while True:
            d = describe(out)
            shown = json.dumps(d) if args.json else text(d)
            if args.watch is None:
                emit(shown)
                return 0
            emit(("\033[H\033[2J" if sys.stdout.isatty() else "") + shown)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    hold()
    sys.exit(main())
