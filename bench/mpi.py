"""The MPI framework's own cost: master throughput and round trip, and worker utilization.

    python bench/mpi.py                       # everything below; runs mpiexec itself
    python bench/mpi.py --only throughput     # or: utilization, startup
    mpiexec -n 33 python bench/mpi.py --role rank --mode dispatch --tasks 20000    # one measurement

throughput (zero-time simulated tasks, K = 3, 9, 33 ranks):
  dispatch  rank 0's MPIExecutor feeding the real worker loop (worker.run_worker) with pre-made tasks:
            the messaging framework alone. Tasks per second; round trip per task = a worker's time from
            its task being sent to its result being received (MPIExecutor's busy time / tasks).
  search    the whole search loop of master.Master in async dispatch on the paper's space: sampling,
            canonical hashes, analytic costs, rewards, Q-updates with replay, and a checkpoint at the end
            of every 64-block iteration. Candidates per second.
utilization (simulated tasks with lognormal times, median --median s, sigma 0.5; K = 9, 33, 129 ranks,
  oversubscribed here: waiting ranks sleep): batch (the paper's barrier: the Q-update waits for all 64
  results of an iteration) against async dispatch; mean worker utilization = time training / (time
  training + time waiting for a task), from the first task to the end (the job's start-up, imports
  and the master's set-up, is printed apart), and the async / batch throughput ratio. Each worker
  gets about --per-worker tasks.
  The idle time per task is split into waiting for a task (ready -> task sent: rank 0 busy or out of
  work) and in transit (task sent -> result read, less the training: naps, messages, rank 0 busy);
  the drain at the end (no work left) and the first wave are in neither. rank 0 CPU = its CPU time /
  wall time. BQNN_PROFILE=FILE writes rank 0's cProfile of the search loop to FILE.
startup (K = 9, 33, 129 ranks): `mpiexec -n K python -m bqnn.search` itself, on a one-iteration simulated
  search: seconds from launch to rank 0's start banner (printed once every rank has imported bqnn and
  joined the start-up broadcast), and the peak resident memory (VmHWM) of rank 0 and of the workers
  (median and largest), sampled from /proc while the run lasts.
Each measurement is one mpiexec run; rank 0 prints one JSON line, the driver prints the table.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rank_main(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from bqnn.config import load
    from bqnn.mpi.worker import run_worker

    comm = MPI.COMM_WORLD
    if comm.Get_rank() != 0:
        return run_worker(comm)
    from bqnn.mpi.manager import MPIExecutor
    from bqnn.run.executor import Task
    from bqnn.run.master import Master
    from bqnn.signals import StopFlag

    k = comm.Get_size()
    stop = StopFlag()
    if args.mode == "dispatch":
        from bqnn.blocks.canon import canonical_hash
        from bqnn.blocks.space import Space
        from bqnn.strategies.qtable import QTable

        cfg = load(None, ["trainer.kind=simulated"])
        agent = QTable(Space(), seed=0)
        blocks = [agent.sample(1.0) for _ in range(min(args.tasks, 2000))]
        hashes = [canonical_hash(b) for b in blocks]
        ex = MPIExecutor(comm, cfg, stop)
        t0 = time.perf_counter()
        for i in range(args.tasks):
            j = i % len(blocks)
            ex.submit(Task(i, 0, 1.0, blocks[j], hashes[j], 1))
        done = 0
        while done < args.tasks:
            done += len(ex.wait(timeout=1.0))
        seconds = time.perf_counter() - t0
        # the round trip of one task alone in flight: rank 0 -> worker -> rank 0
        rtts = []
        for i in range(1000):
            t1 = time.perf_counter()
            ex.submit(Task(args.tasks + i, 0, 1.0, blocks[i % len(blocks)], hashes[i % len(blocks)], 1))
            while not ex.wait(timeout=1.0):
                pass
            rtts.append(time.perf_counter() - t1)
        ex.shutdown(0)
        rtts.sort()
        print(json.dumps({"mode": "dispatch", "k": k, "tasks": args.tasks, "seconds": seconds,
                          "tasks_per_s": args.tasks / seconds, "rtt_ms": 1e3 * rtts[len(rtts) // 2],
                          "rtt_p90_ms": 1e3 * rtts[int(len(rtts) * 0.9)]}))
        return 0
    iterations = max(1, round(args.tasks / 64))
    sets = ["trainer.kind=simulated", f"search.dispatch={args.dispatch}", f"search.schedule=[[1.0, {iterations}]]",
            f"trainer.sim_seconds={args.median if args.mode == 'utilization' else 0}", "trainer.sim_sigma=0.5",
            "search.checkpoint_interval=3600"]
    cfg = load(None, sets)
    out = tempfile.mkdtemp(prefix="bqnn-bench-")
    ex = MPIExecutor(comm, cfg, stop)
    master = Master(cfg, out, ex, stop, log=lambda s: None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if os.environ.get("BQNN_PROFILE"):  # rank 0's profile, for finding what limits it
        import cProfile

        cProfile.runctx("master.run()", globals(), locals(), os.environ["BQNN_PROFILE"])
    else:
        master.run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    _, busy, idle = ex.utilization()
    ex.shutdown(0)
    n = len(master.records)
    trained = int((master.records.rows[:n]["repeat"] == 0).sum())
    print(json.dumps({"mode": args.mode, "dispatch": args.dispatch, "k": k, "candidates": n, "trained": trained,
                      "seconds": seconds, "candidates_per_s": n / seconds, "trained_per_s": trained / seconds,
                      "utilization": float(busy.sum() / (busy.sum() + idle.sum())), "startup": ex.startup,
                      "rank0_cpu": cpu / seconds,
                      "idle_waiting_ms": 1e3 * ex.waiting_for_task / max(trained, 1),
                      "idle_in_transit_ms": 1e3 * ex.in_transit / max(trained, 1)}))
    return 0


def launch(k: int, *extra: str, timeout: float = 1200) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec), "-n", str(k), sys.executable, str(Path(__file__).resolve()), "--role", "rank", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"mpiexec -n {k} {' '.join(extra)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(lines[-1])


def _rank_of(pid: int, marker: bytes) -> int | None:
    """MPI rank of a bqnn.search process whose command line holds `marker`, from /proc; None if not one."""
    d = Path("/proc") / str(pid)
    try:
        cmd = (d / "cmdline").read_bytes().split(b"\0")
        if b"bqnn.search" not in cmd or marker not in cmd or b"mpiexec" in cmd[0]:
            return None
        env = dict(kv.split(b"=", 1) for kv in (d / "environ").read_bytes().split(b"\0") if b"=" in kv)
    except OSError:
        return None
    return int(env[b"PMI_RANK"]) if b"PMI_RANK" in env else None


def _peak_kib(pid: int) -> int | None:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def startup(k: int, timeout: float = 1200) -> dict:
    """Launch -> start banner of a one-iteration simulated search through `python -m bqnn.search`, and the peak
    resident memory of each rank."""
    import statistics

    out = Path(tempfile.mkdtemp(prefix="bqnn-bench-startup-")) / "run"
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec), "-n", str(k), sys.executable, "-m", "bqnn.search", "--out", str(out), "--config", "/dev/null",
           "--set", "trainer.kind=simulated", "--set", f"search.blocks_per_iteration={k - 1}",
           "--set", "search.schedule=[[1.0, 1]]", "--set", "trainer.sim_seconds=3", "--set", "search.q_init=0.0"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    import threading

    banner: list[float] = []

    def read() -> None:
        for line in p.stdout:
            if line.startswith("bqnn search:") and not banner:
                banner.append(time.perf_counter() - t0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peaks: dict[int, int] = {}
    ranks: dict[int, int] = {}
    marker = str(out).encode()
    while p.poll() is None and time.perf_counter() - t0 < timeout:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                pid = int(d.name)
                if pid not in ranks:
                    r = _rank_of(pid, marker)
                    if r is None:
                        continue
                    ranks[pid] = r
                kib = _peak_kib(pid)
                if kib:
                    peaks[ranks[pid]] = max(peaks.get(ranks[pid], 0), kib)
        time.sleep(0.25)
    p.wait(timeout=60)
    reader.join(timeout=10)
    if p.returncode != 0 or not banner:
        raise RuntimeError(f"mpiexec -n {k} bqnn.search failed ({p.returncode}): {p.stderr.read()[-2000:]}")
    workers = [v for r, v in peaks.items() if r != 0]
    return {"k": k, "startup": banner[0], "wall": time.perf_counter() - t0, "rank0_mib": peaks.get(0, 0) / 1024,
            "worker_median_mib": statistics.median(workers) / 1024 if workers else 0.0,
            "worker_max_mib": max(workers) / 1024 if workers else 0.0, "ranks_seen": len(peaks)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["driver", "rank"], default="driver")
    p.add_argument("--mode", choices=["dispatch", "search", "utilization"], default="dispatch")
    p.add_argument("--dispatch", choices=["batch", "async"], default="async")
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--median", type=float, default=0.3, help="utilization: median task seconds")
    p.add_argument("--per-worker", type=int, default=100,
                   help="utilization: tasks per worker (the paper's search: 11,392 / 32 = 356)")
    p.add_argument("--only", choices=["throughput", "utilization", "startup"])
    p.add_argument("--ks", type=int, nargs="+", default=[9, 33, 129], help="utilization and startup: world sizes")
    args = p.parse_args()
    if args.role == "rank":
        return rank_main(args)
    print(f"bench/mpi.py on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    if args.only in (None, "throughput"):
        print("throughput, zero-time tasks:")
        print(f"  {'K':>4} {'dispatch tasks/s':>17} {'round trip ms (p90)':>20} {'search candidates/s':>20}")
        for k in (3, 9, 33):
            d = launch(k, "--mode", "dispatch", "--tasks", str(args.tasks))
            s = launch(k, "--mode", "search", "--dispatch", "async", "--tasks", "6400")
            print(f"  {k:>4} {d['tasks_per_s']:>17.0f} {d['rtt_ms']:>12.3f} ({d['rtt_p90_ms']:.3f}) "
                  f"{s['candidates_per_s']:>20.0f}")
    if args.only in (None, "startup"):
        print("start-up of python -m bqnn.search (one-iteration simulated search), peak resident memory per rank:")
        print(f"  {'K':>4} {'launch -> banner s':>19} {'rank 0 MiB':>11} {'worker MiB median (max)':>24} "
              f"{'ranks seen':>11}")
        for k in args.ks:
            r = startup(k)
            print(f"  {k:>4} {r['startup']:>19.1f} {r['rank0_mib']:>11.0f} {r['worker_median_mib']:>14.0f} "
                  f"({r['worker_max_mib']:.0f}) {r['ranks_seen']:>11}")
    if args.only in (None, "utilization"):
        print(f"utilization, lognormal task times (median {args.median} s, sigma 0.5), ~{args.per_worker} tasks "
              "per worker:")
        print(f"  {'K':>4} {'batch util':>11} {'async util':>11} {'batch trained/s':>16} {'async trained/s':>16} "
              f"{'async/batch':>12} {'start-up s':>11} {'async idle/task ms: wait+transit':>33} {'rank 0 CPU':>11}")
        for k in args.ks:
            tasks = args.per_worker * (k - 1)
            r = {m: launch(k, "--mode", "utilization", "--dispatch", m, "--tasks", str(tasks),
                           "--median", str(args.median))
                 for m in ("batch", "async")}
            b, a = r["batch"], r["async"]
            print(f"  {k:>4} {100 * b['utilization']:>10.1f}% {100 * a['utilization']:>10.1f}% "
                  f"{b['trained_per_s']:>16.1f} {a['trained_per_s']:>16.1f} "
                  f"{a['trained_per_s'] / b['trained_per_s']:>11.2f}x {a['startup']:>11.1f} "
                  f"{a['idle_waiting_ms']:>23.1f} + {a['idle_in_transit_ms']:<7.1f} {100 * a['rank0_cpu']:>10.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
