"""The landscape table described: its noise, how linear it is, how it differs from the simulated trainer, how
early its curves rank blocks. Run as `python bench/on_table.py stats [--table PATH]`; `stats(path)` prints it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table_runs import Truth  # noqa: E402

from bqnn.config import from_json  # noqa: E402
from bqnn.landscape.table import Table  # noqa: E402
from bqnn.training.result import Status  # noqa: E402


def linear_r2(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, int]:
    """Held-out R^2 of a least-squares fit of y on x (half the rows fit, half scored), and where the fit ranks the
    true best of the held-out half (1: first)."""
    idx = rng.permutation(len(y))
    fit, test = idx[: len(y) // 2], idx[len(y) // 2:]
    a = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(a[fit], y[fit], rcond=None)
    pred = a[test] @ coef
    r2 = 1 - float(((y[test] - pred) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum())
    best = int(np.argmax(y[test]))
    return r2, int((pred > pred[best]).sum()) + 1


def stats(table_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # means of blocks without a successful training are NaN
    from bqnn.blocks.code import from_array
    from bqnn.stats import spearman
    from bqnn.strategies.predictor import features
    from bqnn.training.simulated import simulated_accuracy

    table = Table.read(table_path)
    truth = Truth(table)
    recipe = from_json(table.recipe)
    ok = table.status == Status.OK
    full = ok.all(axis=1)
    acc = np.where(ok, table.accuracy, np.nan)
    sd = np.nanstd(acc[full], axis=1, ddof=1)
    mean = truth.mean
    order = np.argsort(-np.where(np.isfinite(mean), mean, -1))
    top50 = order[:50]
    print(f"the table {table_path}: {len(table.hash):,} blocks x {len(table.seeds)} seeds "
          f"(seeds {table.seeds}), {table.epochs} epochs; {int(ok.sum()):,} of {ok.size:,} trainings succeeded, "
          f"{int((table.status == -1).sum()):,} not trained")
    print(f"  recipe: {recipe.data.dataset} {recipe.data.train_subset} images at {recipe.data.resize}x"
          f"{recipe.data.resize}, {recipe.data.val_size} validation; network {list(recipe.network.filters)} "
          f"N={recipe.network.blocks_per_stage}; {table.epochs} epochs, lr step {recipe.trainer.lr_step}")
    print(f"  mean accuracy over blocks: {np.nanmean(mean):.2f} %, best {truth.optimum:.2f} %, spread between "
          f"blocks' means (sd) {np.nanstd(mean):.2f} points, range {np.nanmin(mean):.2f}-{truth.optimum:.2f}")
    in_top = np.isin(np.nonzero(full)[0], top50)
    print(f"  noise floor: seed-to-seed sd per block over the {int(full.sum()):,} blocks with every seed trained, "
          f"mean {np.mean(sd):.2f} points (median {np.median(sd):.2f}, 90th percentile {np.percentile(sd, 90):.2f}); "
          f"among the 50 best blocks {np.mean(sd[in_top]) if in_top.any() else np.nan:.2f} ({int(in_top.sum())} "
          f"of them)")
    binom = 100 * np.sqrt(truth.optimum / 100 * (1 - truth.optimum / 100) / recipe.data.val_size)
    print(f"  of which the validation set's own binomial noise at the optimum: {binom:.2f} points")
    gap = mean[order[0]] - mean[order[1]]
    print(f"  the best block {table.hash[order[0]].decode()} leads the second by {gap:.2f} points; blocks within one "
          f"seed-to-seed sd of the optimum: {int((mean > truth.optimum - np.mean(sd)).sum())}")
    seconds_report(table, ok)
    trained = np.isfinite(mean)
    codes = [from_array(table.nsc[i].astype(np.int16), table.max_index) for i in np.nonzero(trained)[0]]
    x = np.stack([features(nsc) for nsc in codes])
    real = mean[trained]
    sim = np.array([simulated_accuracy(nsc) for nsc in codes])
    rng = np.random.default_rng(0)
    r2_real, rank_real = linear_r2(x, real, rng)
    r2_sim, rank_sim = linear_r2(x, sim, np.random.default_rng(0))
    print(f"  linear fit on the PNAS predictor's features, held-out R^2: real {r2_real:.3f} (ranks the held-out best "
          f"#{rank_real}), simulated {r2_sim:.3f} (#{rank_sim}) on the same blocks")
    top_sim = set(np.argsort(-sim)[:50].tolist())
    top_real = set(np.argsort(-real)[:50].tolist())
    print(f"  simulated vs real accuracy of every block: Spearman {spearman(sim, real):+.3f}; top-50 overlap "
          f"{len(top_sim & top_real)} of 50")
    final = table.accuracy[ok]
    for k in range(table.epochs - 1):
        print(f"  rung Spearman, epoch {k + 1} vs final ({table.epochs}) over every successful training: "
              f"{spearman(table.curve[:, :, k][ok], final):+.3f}", end="")
        means = np.nanmean(np.where(ok, table.curve[:, :, k], np.nan), axis=1)
        print(f"; of blocks' means {spearman(means[trained], real):+.3f}")


def seconds_report(table: Table, ok: np.ndarray) -> None:
    """The training seconds, and how a block's seconds agree between seeds (the same work: the rest is load)."""
    from bqnn.stats import spearman

    secs = table.seconds[ok]
    print(f"  training seconds: mean {secs.mean():.2f}, median {np.median(secs):.2f}, range "
          f"{secs.min():.2f}-{secs.max():.2f} (per block, the validation after every epoch included)")
    for a in range(len(table.seeds)):
        for b in range(a + 1, len(table.seeds)):
            both = ok[:, a] & ok[:, b]
            if both.sum() > 2:
                ratio = table.seconds[both, b] / table.seconds[both, a]
                print(f"    seeds {table.seeds[a]} and {table.seeds[b]}, {int(both.sum()):,} blocks trained with both: "
                      f"Spearman of a block's seconds {spearman(table.seconds[both, a], table.seconds[both, b]):+.3f}, "
                      f"median ratio {np.median(ratio):.2f} (10th-90th percentile {np.percentile(ratio, 10):.2f}-"
                      f"{np.percentile(ratio, 90):.2f}); the same work in both: the rest is the machine's load")
