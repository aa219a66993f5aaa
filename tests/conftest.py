"""Shared test helpers. Tests run against the real package, real MPI, real HDF5 and a real SLURM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (the test command runs the unit and end-to-end tests with -n 2), each worker and all it
    starts get cores of their own: two workers' torch threads on the same cores spin against each other (the demo
    test took over 900 s beside the unit tests instead of about 230 s alone, measured). bqnn sizes its threads from
    the CPU affinity, so a search a test starts follows."""
    name, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    cpus = sorted(os.sched_getaffinity(0))
    if name.startswith("gw") and 1 < count <= len(cpus):
        i = int(name[2:])
        share = set(cpus[i * len(cpus) // count:(i + 1) * len(cpus) // count])
        os.sched_setaffinity(0, share)
        os.environ["OMP_NUM_THREADS"] = str(len(share))


_pin_xdist_worker()
FASHION = Path("/usr/share/datasets/fashion-mnist")


def run_module(module: str, *args: str, timeout: float = 600, env: dict | None = None,
               cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """python -m <module> args, in a fresh interpreter."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)


needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist (setup.sh installs it)")

MPIEXEC = Path(sys.executable).parent / "mpiexec"
needs_mpiexec = pytest.mark.skipif(not MPIEXEC.exists(), reason="needs mpiexec in the environment (pip install mpich)")


def mpi_search(n: int, out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """mpiexec -n N python -m bqnn.search --out OUT ARGS."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "bqnn.search", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def start_mpi_search(n: int, out: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "bqnn.search", "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)


def rank_pids(out: Path) -> dict[int, int]:
    """{MPI rank: pid} of the bqnn.search processes writing to OUT, read from /proc."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            if b"bqnn.search" not in cmd or str(out).encode() not in cmd or b"mpiexec" in cmd[0]:
                continue
            env = dict(kv.split(b"=", 1) for kv in (d / "environ").read_bytes().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if b"PMI_RANK" in env:
            found[int(env[b"PMI_RANK"])] = int(d.name)
    return found


# simulated candidates on the smallest networks: what the in-process strategy and budget tests search with
SIM_SMALL_NET = ["trainer.kind=simulated", "network.blocks_per_stage=1", "network.filters=[8,16,32]"]


def search_in_process(tmp_path: Path, name: str, sets: list[str], config: str = "/dev/null"):
    """bqnn.search's main() in this process with `--set` overrides; (state, candidates by id, its output)."""
    import contextlib
    import io

    import numpy as np

    from bqnn.run import checkpoint
    from bqnn.search import main

    out = tmp_path / name
    args = ["--config", config, "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    assert code == 0, buf.getvalue()
    state, _, _ = checkpoint.load(out)
    c = state.candidates
    return state, c[np.argsort(c["id"], kind="stable")], buf.getvalue()


def race(start, stagger: float, timeout: float = 240) -> list[tuple[int, str, str, float, float]]:
    """Start two processes with `start()`, `stagger` seconds apart, and wait for both: per process (exit code,
    stdout, stderr, seconds from its own start to its exit, seconds from the first one's start to its exit)."""
    import time

    starts, procs = [], []
    for k in range(2):
        if k:
            time.sleep(stagger)
        starts.append(time.monotonic())
        procs.append(start())
    ended: dict[int, float] = {}
    while len(ended) < 2 and time.monotonic() - starts[0] < timeout:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic() - starts[i]
        time.sleep(0.02)
    return [(p.returncode, *p.communicate(timeout=10), ended.get(i, float("inf")),
             starts[i] - starts[0] + ended.get(i, float("inf"))) for i, p in enumerate(procs)]


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGTERM installed (SigCgt in /proc/PID/status)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False


def has_loaded(pid: int, library: str) -> bool:
    """Whether process `pid` has a shared object whose path contains `library` mapped (/proc/PID/maps)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _candidates_in(h5: Path) -> int:
    from bqnn.run import checkpoint

    try:
        return len(checkpoint.read(h5).candidates)
    except checkpoint.CheckpointError:
        return 0


def sigkill_search(p: subprocess.Popen, out: Path) -> None:
    """SIGKILL a search's launcher and every rank it recorded, as a lost node does, and wait until all are gone."""
    for pid in [p.pid, *rank_pids(out).values()]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait(timeout=30)
    assert wait_for(lambda: not rank_pids(out), 10)


def sigkill_and_resume(out: Path, args: tuple[str, ...], kills: int = 3, n: int = 3, latest: float = 0.6) -> list[int]:
    """Start `mpiexec -n N bqnn.search --out OUT ARGS`, SIGKILL every process of it at a random moment
    after it has written a checkpoint of its own, `kills` times (fewer if it finishes first), then let
    it finish. Returns the candidates in search.h5 after each kill."""
    import random
    import time

    from bqnn.run import checkpoint

    h5 = out / "search.h5"
    rng = random.Random(int(time.time()))
    progress: list[int] = []
    for attempt in range(kills + 1):
        before = h5.stat().st_mtime_ns if h5.exists() else 0
        p = start_mpi_search(n, out, *args)
        if attempt == kills:
            assert p.wait(timeout=180) == 0, p.stderr.read()
            break
        # a checkpoint of its own that holds results (a new search writes an empty one before it trains)
        assert wait_for(lambda before=before: h5.exists() and h5.stat().st_mtime_ns != before
                        and _candidates_in(h5) > 0, 60)
        time.sleep(rng.uniform(0.05, latest))
        if p.poll() is not None:  # finished before the kill
            assert p.returncode == 0, p.stderr.read()
            break
        sigkill_search(p, out)
        progress.append(len(checkpoint.load(out)[0].candidates))
    return progress


def signal_storm(cmd: list[str], out: Path, signum: int, count: int, rng) -> tuple[int, str]:
    """Start `cmd` (a search writing to `out`), and once it has written a checkpoint send it `count` signals
    `signum`, 0-0.5 s apart; wait for it to end: (exit code, stderr). The first signal comes at a random moment of
    its training, the others whenever they come: while it checkpoints, releases its workers or tears down."""
    import signal as _signal
    import time

    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert wait_for(lambda: (out / "search.h5").exists() or p.poll() is not None, 60)
        time.sleep(rng.uniform(0.2, 1.0))
        for k in range(count):
            if k:
                time.sleep(rng.uniform(0.0, 0.5))
            if p.poll() is None:
                p.send_signal(_signal.Signals(signum))
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, err


STORM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "trainer.sim_seconds=0.05",
         "--set", "search.blocks_per_iteration=4", "--set", "search.schedule=[[1.0, 10], [0.5, 10]]",
         "--set", "space.max_index=8"]


def records(out):
    """(id, hash, reward) of every candidate in search.h5, by id."""
    import numpy as np

    from bqnn.run import checkpoint
    from bqnn.run.invariants import check_state

    state, _, warning = checkpoint.load(out, check=check_state)
    assert warning is None, warning
    c = state.candidates[np.argsort(state.candidates["id"])]
    return {int(i): (bytes(h), float(r)) for i, h, r in zip(c["id"], c["hash"], c["reward"], strict=True)}


@pytest.fixture(scope="module")
def storm_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("storm") / "ref"
    assert run_module("bqnn.search", "--out", str(out), *STORM).returncode == 0
    return records(out)


def storms(tmp_path, cmd_of, signum, counts, reference, repeats=10, together=5):
    """`repeats` searches, `together` at a time, the k-th stopped by `counts[k % len(counts)]` signals: every one
    exits 143 (130), its checkpoint is readable and holds exactly what an uninterrupted search has for those
    candidates, and the same command finishes it equal to the uninterrupted search."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random()
    outs = [tmp_path / f"run{k}" for k in range(repeats)]
    with ThreadPoolExecutor(together) as pool:
        ended = list(pool.map(lambda k: signal_storm(cmd_of(outs[k]), outs[k], signum, counts[k % len(counts)],
                                                     random.Random(rng.random())), range(repeats)))
    want = 130 if signum == signal.SIGINT else 143
    for out, (code, err) in zip(outs, ended, strict=True):
        assert code == want, (out, code, err[-2000:])
        got = records(out)
        assert len(got) < len(reference) and all(reference[i] == v for i, v in got.items()), out
    for out in outs[:2]:  # and it continues exactly
        import subprocess

        assert subprocess.run(cmd_of(out), capture_output=True).returncode == 0
        assert records(out) == reference

