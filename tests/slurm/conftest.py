"""A real SLURM (munged, slurmctld, slurmd from Debian) started for the session by slurm/local-cluster.sh."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "slurm" / "local-cluster.sh"


@dataclass
class Cluster:
    dir: Path
    env: dict

    def run(self, *cmd: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(cmd, capture_output=True, text=True, env={**self.env, **(env or {})}, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
        return r

    def sbatch(self, *args: str, env: dict | None = None) -> str:
        return self.run("sbatch", "--parsable", *args, env=env).stdout.strip().split(";")[0]

    def job(self, job: str) -> dict:
        """Fields of `scontrol show job` (for an array: its first task)."""
        out = self.run("scontrol", "-o", "show", "job", job).stdout.splitlines()[0]
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def array_tasks(self, job: str) -> list[dict]:
        return [dict(re.findall(r"(\w+)=(\S*)", line))
                for line in self.run("scontrol", "-o", "show", "job", job).stdout.splitlines()]

    def wait(self, job: str, states: tuple[str, ...], timeout: float) -> dict:
        end = time.monotonic() + timeout
        info = {}
        while time.monotonic() < end:
            info = self.job(job)
            if info.get("JobState") in states:
                return info
            time.sleep(1)
        raise AssertionError(f"job {job} not in {states} after {timeout}s: {info.get('JobState')} {info.get('Reason')}")

    def wait_array(self, job: str, timeout: float) -> list[dict]:
        end = time.monotonic() + timeout
        tasks = []
        while time.monotonic() < end:
            tasks = self.array_tasks(job)
            if tasks and all(t.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for t in tasks) \
                    and not any("_[" in t.get("JobId", "") + t.get("ArrayTaskId", "") for t in tasks):
                return tasks
            time.sleep(1)
        raise AssertionError(f"array {job} not finished after {timeout}s: {[t.get('JobState') for t in tasks]}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("no SLURM and no apt-get to install it")
    d = tmp_path_factory.mktemp("slurm")
    r = subprocess.run(["bash", str(SCRIPT), "start", str(d)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"local SLURM did not start: {r.stderr}")
    env = dict(os.environ, SLURM_CONF=str(d / "slurm.conf"), BQNN_PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    yield Cluster(d, env)
    subprocess.run(["bash", str(SCRIPT), "stop", str(d)], capture_output=True, timeout=120)
