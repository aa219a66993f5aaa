"""Pruning's bill: the same search with and without pruning, over seeds, as ratios measured in one run.

    python bench/pruning.py                         # (a) simulated, the paper's scale, seeds 0 1 2 (minutes)
    python bench/pruning.py --real                  # also (b) real Fashion-MNIST, 6-epoch candidates (~15 min here)
    python bench/pruning.py --rule halving          # the other rule

(a) jobs/cifar100_paper.toml (178 iterations of 64 blocks, 12 epochs each) on the simulated trainer, against
jobs/cifar100_pruned.toml (median rule at epochs 1, 3, 6). The simulated trainer gives every block a learning
curve (training/simulated.py: rising to its final accuracy, each block at its own speed, with noise), so rung
accuracies rank blocks like the final one does, but not perfectly. (b) Fashion-MNIST at a scale that runs here:
jobs/demo.toml's networks, 96 candidates in 8 iterations of 12, 6 epochs each, rungs at 1 and 3.

The unpruned search runs with the same rungs and `pruning.min_candidates` set beyond reach: its candidates are
trained exactly as without pruning (a rung only measures the validation accuracy) and its rung accuracies give
the Spearman correlation between each rung and the final accuracy. Per seed: candidate-epochs spent (every epoch
of every trained candidate, restarts included: the GPU bill), wall time, the best reward and the mean of the 10
best rewards among blocks trained to the end, whether the unpruned search's best block was trained to the end
by the pruned one. Runs land in runs/bench-pruning/PART/ and are reused when finished.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from searched import by_id, finished  # noqa: E402

from bqnn.config import PruningConfig, load  # noqa: E402
from bqnn.run.pruning import Pruner  # noqa: E402
from bqnn.stats import spearman  # noqa: E402
from bqnn.training.result import Status  # noqa: E402

NEVER = "pruning.min_candidates=1000000000"  # rungs measured, nothing pruned
PARTS = {
    "simulated": (ROOT / "jobs" / "cifar100_pruned.toml", ["trainer.kind=simulated"]),
    "real": (ROOT / "jobs" / "demo.toml", [
        "trainer.epochs=6", "trainer.lr_step=2", "data.train_subset=1500", "data.val_size=500",
        "search.blocks_per_iteration=12", "search.schedule=[[1.0, 3], [0.5, 2], [0.1, 3]]", "search.replay_samples=12",
        "pruning.rule=median", "pruning.rungs=[1,3]", "pruning.min_candidates=12"]),
}


def search(out: Path, job: Path, sets: list[str]) -> tuple[np.ndarray, float]:
    """(candidates by id, elapsed seconds) of a finished search, running it unless it finished before."""
    state = finished(out, job, sets)
    return by_id(state.candidates), float(state.elapsed)


def figures(c: np.ndarray) -> dict:
    trained = c[c["repeat"] == 0]
    full = trained[trained["status"] == Status.OK]
    top = np.sort(full["reward"])[::-1]
    return {"epochs": int(trained["epochs"].sum() + trained["restarts"].sum()), "trained": len(trained),
            "pruned": int((trained["status"] == Status.PRUNED).sum()), "best": float(top[0]),
            "top10": float(top[:10].mean()), "best_hash": full[int(np.argmax(full["reward"]))]["hash"],
            "full_hashes": set(full["hash"].tolist())}


def replay(c: np.ndarray, cfg: PruningConfig, epochs: int) -> tuple[int, int, set[bytes]]:
    """The rule applied to the unpruned search's own candidates (same blocks, same rung accuracies; batch
    dispatch's reference: the earlier iterations, pruned ones with the rungs they reached): (candidate-epochs
    it would spend, those the unpruned search spent, hashes it would train to the end). Separates the rule's
    errors from the pruned search proposing other blocks once its rewards differ."""
    p = Pruner(cfg)
    trained = c[(c["repeat"] == 0) & (c["status"] == Status.OK)]
    kept = trained["rungs"].copy()
    spent, full = 0, set()
    for it in sorted(set(trained["iteration"].tolist())):
        cuts = p.cutoffs_for(kept[trained["iteration"] < it])
        for i in np.flatnonzero(trained["iteration"] == it):
            stop = next((e for k, e in enumerate(p.rungs)
                         if cuts[k] is not None and trained["rungs"][i][k] < cuts[k]), None)
            if stop is None:
                spent += epochs
                full.add(trained["hash"][i])
            else:
                spent += stop
                kept[i, p.rungs.index(stop) + 1:] = -1.0
    return spent, len(trained) * epochs, full


def part(name: str, seeds: list[int], rule: str, root: Path) -> None:
    job, base = PARTS[name]
    rule_set = [f"pruning.rule={rule}"]
    rungs = None
    rows = []
    t0 = time.perf_counter()
    for seed in seeds:
        sets = base + rule_set + [f"search.seed={seed}"]
        plain, t_plain = search(root / name / f"unpruned-s{seed}", job, sets + [NEVER])
        pruned, t_pruned = search(root / name / f"{rule}-s{seed}", job, sets)
        a, b = figures(plain), figures(pruned)
        cfg = load(job, sets)
        would, did, kept = replay(plain, cfg.pruning, cfg.trainer.epochs)
        top = np.argsort(-plain["reward"] * ((plain["repeat"] == 0) & (plain["status"] == Status.OK)))[:10]
        b["replay"] = (1 - would / did, a["best_hash"] in kept, sum(plain["hash"][i] in kept for i in top))
        rows.append((seed, a, b, t_plain, t_pruned))
        full = plain[(plain["repeat"] == 0) & (plain["status"] == Status.OK)]
        got = [full["rungs"][:, k] for k in range(8) if (full["rungs"][:, k] >= 0).all()]
        rungs = [r + [spearman(g, full["accuracy"])] for r, g in zip(rungs or [[] for _ in got], got, strict=True)]
    print(f"\n({name}) {job.name} + {' '.join(base + rule_set)}, seeds {seeds}, {time.perf_counter() - t0:.0f} s")
    print("  seed | candidate-epochs unpruned -> pruned (saved) | trained / pruned | wall s | best reward | "
          "top-10 mean | unpruned best found")
    for seed, a, b, ta, tb in rows:
        print(f"  {seed:>4} | {a['epochs']:>7,} -> {b['epochs']:>7,} ({1 - b['epochs'] / a['epochs']:6.1%}) | "
              f"{b['trained']:>5} / {b['pruned']:>5} | {ta:6.0f} -> {tb:6.0f} ({tb / ta:4.2f}) | "
              f"{a['best']:6.2f} -> {b['best']:6.2f} | {a['top10']:6.2f} -> {b['top10']:6.2f} "
              f"({b['top10'] - a['top10']:+.2f}) | {'yes' if a['best_hash'] in b['full_hashes'] else 'no'}")
    saved = [1 - b["epochs"] / a["epochs"] for _, a, b, _, _ in rows]
    found = sum(a["best_hash"] in b["full_hashes"] for _, a, b, _, _ in rows)
    dtop = [b["top10"] - a["top10"] for _, a, b, _, _ in rows]
    print(f"  mean: {np.mean(saved):.1%} fewer candidate-epochs (target >= 40 %); unpruned best found on {found} of "
          f"{len(rows)} seeds (target >= 2 of 3); top-10 mean {np.mean(dtop):+.2f} (target within 0.5); wall time "
          f"ratio {np.mean([tb / ta for *_, ta, tb in rows]):.2f}")
    for seed, _, b, _, _ in rows:
        saved_r, best_kept, top_kept = b["replay"]
        print(f"  seed {seed}, the rule on the unpruned search's own candidates: {saved_r:.1%} fewer candidate-epochs "
              f"(of those trained to the end), its best block {'kept' if best_kept else 'pruned'}, "
              f"{top_kept} of its 10 best kept")
    for k, rho in enumerate(rungs or []):
        vals = [r for r in rho if r is not None]
        print(f"  Spearman(accuracy at rung {k + 1}, final accuracy), candidates trained to the end: "
              f"{np.mean(vals):.3f} (per seed {', '.join(f'{r:.3f}' for r in vals)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--real", action="store_true", help="also (b), real Fashion-MNIST (minutes per run)")
    p.add_argument("--real-only", action="store_true", help="only (b)")
    p.add_argument("--rule", choices=["median", "halving"], default="median")
    p.add_argument("--out", default="runs/bench-pruning")
    args = p.parse_args()
    print(f"bench/pruning.py, {time.strftime('%Y-%m-%d')}; runs in {args.out}")
    if not args.real_only:
        part("simulated", args.seeds, args.rule, Path(args.out))
    if args.real or args.real_only:
        part("real", args.seeds, args.rule, Path(args.out))


if __name__ == "__main__":
    main()
