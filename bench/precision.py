"""What bf16 autocast does to early-stop accuracies and rewards: the same blocks, trained fp32 and bf16.

    python bench/precision.py                       # 24 blocks of the demo's space, demo training (about 6 min here)
    python bench/precision.py --blocks 48 --epochs 3

Three real `bqnn.search` runs (this process, world size 1) of one iteration at epsilon 1 with the same seed,
so all train exactly the same blocks with the same initial weights and batches: two with trainer.amp=off
(float32; their difference is the floor, 0 where training is deterministic), one with trainer.amp=bf16.
Prints per block the two accuracies and, over all blocks: the mean and
largest |difference|, the mean signed difference (bf16 - fp32), the Spearman correlation of the two rankings,
whether the best block is the same, and the same for rewards. Also the seconds of each run (their ratio is
bf16's speed-up on this machine; a CPU without native bf16 emulates it and is slower).

Why it matters: a search's Q-values learn from these rewards, so precision is part of a search's identity
(docs/choices.md, "Precision"). On a CPU without native bf16 instructions autocast still runs, emulated.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searched import by_id, finished

from bqnn.stats import spearman
from bqnn.training.result import Status


def run(out: Path, sets: list[str]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    c = by_id(finished(out, "jobs/demo.toml", sets).candidates)
    return c, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=24)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench-precision")
    args = p.parse_args()
    common = [f"search.blocks_per_iteration={args.blocks}", "search.schedule=[[1.0, 1]]", f"search.seed={args.seed}",
              f"trainer.epochs={args.epochs}", "trainer.channels_last=off"]
    root = Path(args.out) / f"b{args.blocks}-e{args.epochs}-s{args.seed}"
    fp32, s32 = run(root / "fp32", common + ["trainer.amp=off"])
    again, _ = run(root / "fp32-again", common + ["trainer.amp=off"])  # the floor: fp32 against itself
    bf16, s16 = run(root / "bf16", common + ["trainer.amp=bf16"])
    assert (fp32["hash"] == bf16["hash"]).all(), "the two runs trained different blocks"
    both = (fp32["repeat"] == 0) & (fp32["status"] == Status.OK) & (bf16["status"] == Status.OK)
    print(f"bench/precision.py, {time.strftime('%Y-%m-%d')}: {int(both.sum())} blocks of jobs/demo.toml's space, "
          f"{args.epochs} epochs each, trained fp32 and bf16 (seed {args.seed}); runs in {root}")
    print(f"  {'id':>3} {'fp32 acc':>9} {'bf16 acc':>9} {'diff':>6} {'fp32 reward':>12} {'bf16 reward':>12}")
    for a, b in zip(fp32[both], bf16[both], strict=True):
        print(f"  {a['id']:>3} {a['accuracy']:>9.2f} {b['accuracy']:>9.2f} {b['accuracy'] - a['accuracy']:>+6.2f} "
              f"{a['reward']:>12.3f} {b['reward']:>12.3f}")
    for field in ("accuracy", "reward"):
        x, y = fp32[both][field].astype(float), bf16[both][field].astype(float)
        d, rho = y - x, spearman(x, y)
        print(f"  {field}: mean |bf16 - fp32| {np.abs(d).mean():.3f}, largest {np.abs(d).max():.3f}, mean signed "
              f"{d.mean():+.3f}; Spearman of the rankings {'n/a' if rho is None else f'{rho:.3f}'}; same best block: "
              f"{'yes' if int(np.argmax(x)) == int(np.argmax(y)) else 'no'}")
    floor = np.abs(again[both]["accuracy"].astype(float) - fp32[both]["accuracy"].astype(float))
    print(f"  floor: fp32 run twice differs by {floor.mean():.3f} on average, at most {floor.max():.3f} (0: the "
          f"differences above are bf16's)")
    print(f"  seconds: fp32 {s32:.0f}, bf16 {s16:.0f} (bf16 / fp32 = {s16 / s32:.2f}; 0 when reused from --out)")


if __name__ == "__main__":
    main()
