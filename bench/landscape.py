"""The landscape table: every distinct block of a small space trained for real, with several seeds (issue 26).

    python bench/landscape.py train [--seeds 0 1 2] [--ranks 3]    # the exhaustive searches, one per seed (hours)
    python bench/landscape.py build [--out bench/data/landscape.h5] # the table file from the finished searches
    python bench/landscape.py status                                # how far each seed's search is
    python bench/landscape.py check [FILE]                          # is the table complete (counts, seeds, curves)

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


def machine() -> dict:
    """What this machine is, for the table's record of what trained it."""
    import platform

    info = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "os": platform.platform(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
                           "")
        flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), [])
        info["bf16"] = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    except OSError:
        pass
    try:
        import torch

        info["torch"], info["torch_threads_default"] = torch.__version__, torch.get_num_threads()
    except ImportError:
        pass
    return info


def train(args: argparse.Namespace) -> int:
    import json
    import signal

    from bqnn.results.landscape import MACHINES

    mpiexec = Path(sys.executable).parent / "mpiexec"
    child: list[subprocess.Popen] = []

    def forward(signum, frame):  # stop the running search (it checkpoints), then end with it
        for p in child:
            if p.poll() is None:
                p.send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(s, forward)
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
        out.mkdir(parents=True, exist_ok=True)
        with open(out / MACHINES, "a") as f:
            f.write(json.dumps({**machine(), "ranks": args.ranks, "command": " ".join(cmd)}) + "\n")
        t0 = time.perf_counter()
        child[:] = [subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))]
        code = child[0].wait()
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
    ap.add_argument("command", choices=("train", "build", "status", "check"))
    ap.add_argument("file", nargs="?", type=Path, help="check: the table (default: --out)")
    ap.add_argument("--min-seeds", type=int, default=3, help="check: seeds a complete table has")
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
    if args.command == "check":
        return check(args)
    return build(args)


def build(args: argparse.Namespace) -> int:
    from bqnn.landscape.check import check as problems_of
    from bqnn.landscape.table import TableError
    from bqnn.results.landscape import build as build_table

    dirs = [seed_dir(args.runs, s) for s in args.seeds if checkpoint.exists(seed_dir(args.runs, s))]
    try:
        table = build_table(dirs, command="python bench/landscape.py build " + " ".join(sys.argv[2:]))
    except TableError as e:
        print(f"bench/landscape.py: error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.write(args.out)
    trained = int((table.status >= 0).sum())
    print(f"wrote {args.out}: {len(table.hash):,} blocks x {len(table.seeds)} seeds, {trained:,} of "
          f"{table.status.size:,} trainings, {args.out.stat().st_size:,} bytes")
    for problem in problems_of(table):
        print(f"  not yet complete: {problem}")
    return 0


def check(args: argparse.Namespace) -> int:
    from bqnn.landscape.check import check as problems_of
    from bqnn.landscape.table import Table, TableError

    try:
        table = Table.read(args.file or args.out)
    except TableError as e:
        print(f"bench/landscape.py: error: {e}", file=sys.stderr)
        return 2
    problems = problems_of(table, args.min_seeds)
    for p in problems:
        print(p)
    print(f"{args.file or args.out}: " + ("complete" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
