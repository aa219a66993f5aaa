"""Shared test helpers. Tests run against the real package, real MPI, real HDF5 and a real SLURM."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
