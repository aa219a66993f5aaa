"""The demo's wall time alone and beside a busy process, for one or two checkouts (before/after a change).

    python bench/demo_time.py                                   # this checkout: the whole demo, alone and loaded
    python bench/demo_time.py --quick                           # one iteration (16 blocks) instead of 13
    python bench/demo_time.py --before /tmp/old-checkout        # also an older checkout, in turns with this one
    python bench/demo_time.py --quick --set trainer.threads=1   # a setting on top of the job (every checkout)
    python bench/demo_time.py --alone-only --seed 0 --seed 1    # the demo test's margin over search seeds

Each run is `python -m bqnn.search --config jobs/demo.toml --out TMP` in the checkout's directory (so that
checkout's bqnn is imported), with this interpreter and a fresh output directory. "loaded": a second process
spins on one core for the whole run (`while True: pass`), the way a shared 2-core machine has a neighbour.
Runs alternate between the checkouts and the load conditions, `--repeats` times each; the table gives each
run's wall time, the search's final mean reward and the demo test's margin (the mean reward at the last
epsilon less that at epsilon 1; tests/e2e/test_demo.py asserts it is above 3).
Times are of this machine now: compare the rows of one run, not with another machine's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
QUICK = ["--set", "search.schedule=[[1.0, 1]]"]


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def one_run(code: Path, extra: list[str], loaded: bool) -> tuple[float, float, int, float]:
    """(wall seconds, final mean reward, candidates, the mean reward at the last epsilon less that at epsilon 1:
    the demo test's margin) of one demo search in `code`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        env = dict(os.environ)
        for key in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
            env.pop(key, None)  # the default, as a user's shell has it
        spinner = busy() if loaded else None
        try:
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "bqnn.search", "--config", "jobs/demo.toml", "--out",
                                str(out), *extra], cwd=code, env=env, capture_output=True, text=True)
            wall = time.monotonic() - t0
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        if r.returncode != 0:
            sys.exit(f"demo_time: the search in {code} failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
        rep = subprocess.run([sys.executable, "-m", "bqnn.report", str(out), "--json"], cwd=code,
                             capture_output=True, text=True, check=True)
        summary = json.loads(rep.stdout)
        last = summary["per_iteration"][-1]["mean_reward"]
        eps = list(summary["per_epsilon"].values())
        return wall, float(last), int(summary["unique_trained"]), float(eps[-1] - eps[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/demo_time.py", description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, help="an older checkout to time in turns with this one")
    p.add_argument("--quick", action="store_true", help="one iteration of 16 blocks instead of the whole demo")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="added to every run")
    p.add_argument("--alone-only", action="store_true", help="no loaded runs")
    p.add_argument("--seed", type=int, action="append", default=[],
                   help="search.seed (repeatable: each seed is a run of each condition); default the job's")
    args = p.parse_args(argv)
    extra = (QUICK if args.quick else []) + [a for kv in args.set for a in ("--set", kv)]
    if args.before and not (args.before / "bqnn" / "search.py").is_file():
        p.error(f"--before {args.before}: not a bqnn checkout (no bqnn/search.py there)")
    codes = [("before", args.before.resolve())] if args.before else []
    codes.append(("this checkout", HERE))
    loads = [False] if args.alone_only else [False, True]
    print(f"demo_time: {'one iteration' if args.quick else 'the whole demo'}, {os.cpu_count()} CPUs, "
          f"affinity {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f} at start"
          f"{', ' + ' '.join(extra) if extra else ''}", flush=True)
    rows: list[tuple[str, str, float, float, int, float]] = []
    seeds: list[int | None] = list(args.seed) or [None]
    for rep in range(args.repeats):
        for seed in seeds:
            seeded = extra + ([] if seed is None else ["--set", f"search.seed={seed}"])
            for loaded in loads:
                for name, code in codes:
                    wall, reward, n, margin = one_run(code, seeded, loaded)
                    cond = "beside a busy process" if loaded else "alone"
                    rows.append((name, cond, wall, reward, n, margin))
                    print(f"  [{rep + 1}/{args.repeats}] {'' if seed is None else f'seed {seed} '}{name:14s} "
                          f"{cond:22s} {wall:7.1f} s   final mean reward {reward:7.2f}   last-epsilon margin "
                          f"{margin:+6.2f}   {n} blocks trained", flush=True)
    print("\n| checkout | condition | wall s (each run) | final mean reward | last-ε margin |\n"
          "| --- | --- | --- | --- | --- |")
    for name, _ in codes:
        for loaded in loads:
            cond = "beside a busy process" if loaded else "alone"
            mine = [r for r in rows if r[0] == name and r[1] == cond]
            print(f"| {name} | {cond} | {', '.join(f'{r[2]:.1f}' for r in mine)} | "
                  f"{', '.join(f'{r[3]:.2f}' for r in mine)} | {', '.join(f'{r[5]:+.2f}' for r in mine)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
