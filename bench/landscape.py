"""The landscape table: every distinct block of a small space trained for real, with several seeds (issue 26).

    python bench/landscape.py train [--seeds 0 1 2] [--ranks 3]    # the exhaustive searches, one per seed (hours)
    python bench/landscape.py build [--out bench/data/landscape.h5] # the table file from the finished searches
    python bench/landscape.py status                                # how far each seed's search is

`train` runs `python -m bqnn.search --config jobs/landscape.toml --out runs/landscape/seed-K --set search.seed=K`
under `mpiexec -n RANKS` for each seed in turn (rank 0 and RANKS - 1 workers, one core each). Each is an
ordinary exhaustive search: stopped (Ctrl-C, SIGTERM, a lost session), the same command continues it. `build`
reads every finished or partial seed and writes the table (bqnn/landscape/table.py: its layout, docs/landscape.md:
the recipe and what it measures); `--job` and `--runs` build a table of another space or dataset the same way.
Never run in CI: the test suite builds tables of tiny spaces in seconds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bqnn.run import checkpoint  # noqa: E402

JOB = ROOT / "jobs" / "landscape.toml"
RUNS = ROOT / "runs" / "landscape"


def seed_dir(runs: Path, seed: int) -> Path:
    return runs / f"seed-{seed}"


def progress(out: Path) -> tuple[int, int] | None:
    """(iterations done, iterations in all) of the search in `out`, None if it has not started."""
    if not checkpoint.exists(out):
        return None
    state = checkpoint.load(out)[0]
    return state.iteration, state.iterations_total


def train(args: argparse.Namespace) -> int:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    for seed in args.seeds:
        out = seed_dir(args.runs, seed)
        p = progress(out)
        if p is not None and p[0] >= p[1]:
            print(f"seed {seed}: finished ({out})", flush=True)
            continue
        cmd = [sys.executable, "-m", "bqnn.search", "--config", str(args.job), "--out", str(out),
               "--set", f"search.seed={seed}", *[x for s in args.set for x in ("--set", s)]]
        if args.ranks > 1:
            cmd = [str(mpiexec), "-n", str(args.ranks), *cmd]
        print(f"seed {seed}: {' '.join(cmd)}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        print(f"seed {seed}: exit {code} after {time.perf_counter() - t0:.0f} s", flush=True)
        if code != 0:
            return code
    return 0


def status(args: argparse.Namespace) -> int:
    for seed in args.seeds:
        out = seed_dir(args.runs, seed)
        p = progress(out)
        print(f"seed {seed}: " + ("not started" if p is None else f"iteration {p[0]}/{p[1]}") + f"  ({out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("train", "build", "status"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ranks", type=int, default=3, help="MPI ranks of each search (rank 0 + workers)")
    ap.add_argument("--job", type=Path, default=JOB)
    ap.add_argument("--runs", type=Path, default=RUNS, help="where the seeds' searches are (seed-K/)")
    ap.add_argument("--set", action="append", default=[], help="section.key=value for every search")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / "landscape.h5")
    args = ap.parse_args(argv)
    if args.command == "train":
        return train(args)
    if args.command == "status":
        return status(args)
    from bqnn.landscape.build import build_from_runs

    return build_from_runs([seed_dir(args.runs, s) for s in args.seeds], args.out)


if __name__ == "__main__":
    sys.exit(main())
