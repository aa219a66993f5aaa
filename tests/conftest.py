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
