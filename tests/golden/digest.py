"""Golden outputs of whole searches, recorded before a restructuring and held as tests afterwards.

    .venv/bin/python -m tests.golden.digest record      # (re)write tests/golden/*.json from fresh runs
    .venv/bin/python -m tests.golden.digest check       # run them again and compare, one line per case

A digest is read from `search.h5` with h5py alone (no bqnn import), so it does not move with the
code it checks: per iteration, a SHA-256 of every candidate's deterministic fields in id order (nsc,
hash, status, repeat, accuracy, reward, flops, params, density, blocks, epochs, restarts, epsilon,
message; not the rank, which MPI scheduling decides, nor the seconds); one per strategy array
(Q-table, replay memory, PNAS beam and predictor weights) and the strategy's attributes (RNG states,
update count, q_init); the reward cache (as a set) and the iteration sizes. Byte-for-byte: a reward that moves in
its last bit changes the digest.

The runs pin OpenBLAS to one thread and one kernel family (PNAS's predictor multiplies matrices, and
OpenBLAS picks its kernels by CPU) so that a digest does not depend on the machine. They rely on numpy's
Generator streams (PCG64 `integers`, `random`, `choice`), stable across the numpy releases used so far;
if a numpy release changed them, every case would fail from its first iteration on: re-record then.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIELDS = ("id", "iteration", "nsc", "hash", "status", "repeat", "accuracy", "reward", "flops", "params", "density",
          "blocks", "epochs", "restarts", "epsilon", "message")
# recorded when the paper jobs updated Q once per result and replayed 64 blocks per iteration; they now follow the
# CVPR text (replay only), and the digests still hold the earlier rule, which is search.updates' default; and
# before they drew random actions by type (search.explore), so every case pins the uniform draw it was recorded with
EARLIER = ["--set", "search.updates=result+replay", "--set", "search.explore=uniform"]
PAPER = ["--config", str(ROOT / "jobs" / "cifar100_paper.toml"), "--set", "trainer.kind=simulated", *EARLIER]
PAPER_L = ["--config", str(ROOT / "jobs" / "cifar100_paper_L.toml"), "--set", "trainer.kind=simulated", *EARLIER]

# name -> (MPI ranks, search arguments). "paper" is the paper-scale search; "paper-mpi3" the same
# under mpiexec -n 3 (batch dispatch: the same blocks and Q-table as one process); "paper-L" BlockQNN-L
# as the job file has it, and "paper-L-tight" with a budget that rejects blocks and adapts N often; "paper-rule" the
# paper job exactly as it is (recorded with the candidate record of schema 5, issue 27).
CASES: dict[str, tuple[int, list[str]]] = {
    "paper": (1, PAPER),
    "paper-mpi3": (3, PAPER),
    "paper-L": (1, PAPER_L),
    "paper-L-tight": (1, PAPER_L + ["--set", "limits.params=400000"]),
    "pnas": (1, PAPER + ["--set", "search.strategy=pnas", "--set", "pnas.max_size=6", "--set", "pnas.beam=48"]),
    # what jobs/cifar100_paper.toml runs, its own update rule included (replay only, 64 per iteration: CVPR sec. 4.2)
    "paper-rule": (1, ["--config", str(ROOT / "jobs" / "cifar100_paper.toml"), "--set", "trainer.kind=simulated",
                       "--set", "search.explore=uniform"]),
}


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:20]


def _array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return _sha(str(a.dtype).encode(), str(a.shape).encode(), a.tobytes())


def _attr(v) -> object:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _cache(hashes: np.ndarray, ids: np.ndarray) -> str:
    """The reward cache as a set: its order is the order results arrived in, which MPI decides."""
    order = np.argsort(hashes, kind="stable")
    return _sha(np.ascontiguousarray(hashes[order]).tobytes(), np.ascontiguousarray(ids[order]).tobytes())


def digest(h5: Path) -> dict:
    """The golden digest of one search file (see the module docstring)."""
    with h5py.File(h5, "r") as f:
        c = f["candidates"][()]
        c = c[np.argsort(c["id"], kind="stable")]
        per_iteration = []
        for it in sorted(set(c["iteration"].tolist())):
            rows = c[c["iteration"] == it]
            per_iteration.append(_sha(*(np.ascontiguousarray(rows[name]).tobytes() for name in FIELDS)))
        s = f["strategy"]
        strategy = {k: _array(s[k][()]) for k in sorted(s.keys())}
        attrs = {k: _attr(s.attrs[k]) for k in sorted(s.attrs.keys())}
        return {
            "candidates": int(len(c)),
            "iterations": int(f.attrs["iteration"]),
            "best_reward": float(c["reward"].max()),
            "per_iteration": per_iteration,
            "strategy": strategy,
            "strategy_attrs": _sha(json.dumps(attrs, sort_keys=True).encode()),
            "cache": _cache(f["cache/hash"][()], f["cache/id"][()]),
            "iteration_sizes": _array(f["iteration_sizes"][()]),
        }


NO_TORCH = ROOT / "tests" / "no_torch"  # first on PYTHONPATH, `import torch` raises


def env(no_torch: bool = False) -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", OPENBLAS_CORETYPE="Haswell",
             OMP_NUM_THREADS="1")
    if no_torch:
        e["PYTHONPATH"] = os.pathsep.join([str(NO_TORCH), *filter(None, [e.get("PYTHONPATH")])])
    return e


def run_case(name: str, out: Path, no_torch: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one case into `out` (a fresh directory); with `no_torch`, in Pythons where importing torch raises."""
    ranks, args = CASES[name]
    cmd = [sys.executable, "-m", "bqnn.search", "--out", str(out), *args]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(no_torch), cwd=ROOT)


def expected(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


def compare(got: dict, want: dict) -> str | None:
    """None if equal, else one line saying where the two runs part."""
    for i, (a, b) in enumerate(zip(got["per_iteration"], want["per_iteration"], strict=False)):
        if a != b:
            return f"candidates differ from iteration {i} on"
    for key in ("candidates", "iterations", "best_reward", "strategy", "strategy_attrs", "cache", "iteration_sizes"):
        if got[key] != want[key]:
            return f"{key} differs: {got[key]} != {want[key]}"
    return None


def main(argv: list[str]) -> int:
    import tempfile

    if not argv or argv[0] not in ("record", "check"):
        print(__doc__)
        return 2
    names = argv[1:] or list(CASES)
    failed = 0
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            r = run_case(name, Path(d) / "run")
            if r.returncode != 0:
                print(f"{name}: exit {r.returncode}: {r.stderr[-1000:]}")
                failed += 1
                continue
            got = digest(Path(d) / "run" / "search.h5")
        if argv[0] == "record":
            got["recorded_with"] = {"numpy": np.__version__, "h5py": h5py.__version__}
            (HERE / f"{name}.json").write_text(json.dumps(got, indent=1) + "\n")
            print(f"{name}: recorded ({got['candidates']} candidates, best reward {got['best_reward']:.4f})")
        else:
            why = compare(got, expected(name))
            print(f"{name}: {'identical' if why is None else why}")
            failed += why is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
