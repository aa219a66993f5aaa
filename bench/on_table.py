"""Search claims measured on the landscape table: every figure here comes from real trainings (issue 26).

    python bench/on_table.py stats                   # the table: noise floor, linear fits, sim vs real, rungs
    python bench/on_table.py tune                    # Q-learning alpha, tuned on the simulated trainer (not the table)
    python bench/on_table.py strategies --jobs 2     # every strategy, with and without pruning, 20 seeds, 6 budgets
    python bench/on_table.py strategies --seeds 3 --budgets 50 200 --only random qlearning  # a quick look
    python bench/on_table.py retrain                 # 5 blocks trained again from the recipe: inside the seed spread?

The table is bench/data/landscape.h5 (`--table`; docs/landscape.md). Every bqnn search here is a real
`bqnn.search` in this process with `trainer.kind = "table"`: a candidate gets one recorded training of its block
(the seed picked by the candidate's seed), its rung accuracies and its measured seconds. Optuna's samplers and
pruners run on the same space, table, cache rule and budget (bench/peers.py's encoding: one categorical per row).

Objective and score (NAS-Bench's convention): the reward is the validation accuracy (`reward.preset =
"accuracy"`); a run's *best block* at a budget is the block with the best accuracy it observed among candidates
trained to the end within that budget; its *true accuracy* is the block's mean over the table's seeds, its
*regret* the table's best mean minus that. Budgets are in candidate-epochs (each training's epochs, restarts and
pruned ones included: the GPU bill) and in training seconds (the table's measured seconds), from 50 to 2,000
trainings' worth (x 6 epochs, x the table's mean seconds per training).

Hyper-parameters, one written rule for all: every strategy at its defaults (bqnn's config defaults, Optuna's
constructors' defaults), but for what must be sized to a budget: Q-learning and PNAS run one search per budget
(Q-learning: Table 2's shape over about 1.5 x the budget in candidates, bench/strategies.py's `schedule`; x 3
with pruning, which affords more candidates per epoch; PNAS: beam = (budget - 8) / 2, the budget doubled with
pruning; max_size 4, every layer the space allows), the others one search per seed sized to the largest budget
(their proposals do not depend on the horizon), read at every budget. Q-learning
runs twice: at the paper's alpha (0.01, the CVPR update rule: replay only) and at the alpha `tune` picks on the
simulated trainer. Pruning: bqnn's median rule (rungs 1, 2, 4) and halving rule (rungs 1, 3, reduction 3),
`min_candidates` at its default 16; Optuna's MedianPruner and HyperbandPruner (min resource 1, max 6, reduction
3), each told the accuracy after every epoch. Bench seeds 100 and up (the table's own seeds are 0-2; nothing is
tuned on them). Runs land in runs/on-table/table-DIGEST/ (one folder per table contents) and are reused: an
interrupted bench continues. `--jobs N` runs them in N processes (the same figures as one).

The report ends with the same budgets spent another way: the last RETRAIN (3) trainings' worth of each budget go
to training the run's 3 best blocks once more on the next of their table seeds, the best mean handed over
(`Truth.retrained`), and the target with it, against TPE as it is and against TPE retraining too.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table_runs import BQNN, PEERS, PRUNING, RUNS, Trace, Truth, bqnn_trace, strategy_sets, traces  # noqa: E402
from table_stats import stats  # noqa: E402

from bqnn.config import from_json  # noqa: E402
from bqnn.landscape.table import Table  # noqa: E402
from bqnn.training.result import Status, candidate_seed  # noqa: E402

TABLE = ROOT / "bench" / "data" / "landscape.h5"
JOB = ROOT / "jobs" / "landscape.toml"  # the table's recipe as a job file (--job for a table of another recipe)
BUDGETS = (50, 100, 200, 500, 1000, 2000)
SEEDS = 20
FIRST_SEED = 100
RETRAIN = 3  # the best blocks a run trains once more before it hands one over (print_retrained)


# ------------------------------------------------------------ strategies

def strategies(args: argparse.Namespace) -> None:
    table = Table.read(args.table)
    truth = Truth(table)
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))
    names = [n for n in (*BQNN, *PEERS) if not args.only or n in args.only]
    every = sorted(set(args.budgets) | {b // 2 for b in args.budgets})  # halves: the target's comparison
    runs = traces(args.table, args.job, args.runs, names, args.pruning, seeds, every, args.jobs)
    print(f"\nstrategies on {args.table} ({len(table.hash):,} blocks x {len(table.seeds)} seeds; optimum "
          f"{truth.optimum:.2f} % mean accuracy; {truth.seconds_per_training:.2f} s per training on average), "
          f"seeds {seeds[0]}-{seeds[-1]}; regret = optimum - the true (mean) accuracy of the best block found; "
          f"mean over seeds (standard error)")
    rows: dict[tuple[str, str], dict[tuple[str, int], list[float]]] = {}
    spent: dict[tuple[str, str], dict[int, list[float]]] = {}
    for (name, pruning, _, b), trace in runs.items():
        for budget in every:
            if b not in (0, budget):
                continue
            for cost in ("epochs", "seconds"):
                mask = trace.at(cost, truth.budget(cost, budget))
                rows.setdefault((name, pruning), {}).setdefault((cost, budget), []).append(
                    truth.regret(trace.best(mask)))
                if cost == "epochs":
                    spent.setdefault((name, pruning), {}).setdefault(budget, []).append(float(trace.epochs[mask].sum()))
    print_floor(truth, seeds)
    for cost in ("epochs", "seconds"):
        unit = "candidate-epochs" if cost == "epochs" else "training seconds"
        print(f"\nregret at a budget of N trainings' worth of {unit} (N x {truth.budget(cost, 1):.2f})")
        print(f"  {'strategy':<17} {'pruning':<8}" + "".join(f"{b:>14}" for b in args.budgets))
        for (name, pruning), by in sorted(rows.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
            cells = []
            for budget in args.budgets:
                v = np.array(by[(cost, budget)])
                cells.append(f"{v.mean():>7.2f} ({v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0:.2f})")
            print(f"  {name:<17} {pruning:<8}" + "".join(f"{c:>14}" for c in cells))
    print_ranking(rows, args.budgets)
    print("\ncandidate-epochs spent within the epochs budget (mean; below the budget: the run ended first)")
    for (name, pruning), used in sorted(spent.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        print(f"  {name:<17} {pruning:<8}" + "".join(f"{np.mean(used[b]):>14.0f}" for b in args.budgets))
    pruning_report(runs, truth, names)
    epochs = {key: {b: v for (cost, b), v in by.items() if cost == "epochs"} for key, by in rows.items()}
    tpe = epochs.get(("optuna-tpe", "none"))
    if tpe is not None:
        print("\nthe target: regret at half of TPE's candidate-epochs <= TPE's regret at the budget, at every budget "
              "(per budget B of TPE's: the regret at B / 2, then TPE's at B)")
        print_target(epochs, tpe, names, args.budgets)
    print_retrained(runs, truth, names, args.budgets, tpe)


def print_retrained(runs: dict[tuple[str, str, int, int], Trace], truth: Truth, names: list[str],
                    budgets: list[int], plain_tpe: dict[int, list[float]] | None) -> None:
    """Regret when a run spends the last RETRAIN trainings' worth of its epochs budget on training its RETRAIN best
    blocks once more (`Truth.retrained`): the same budget, the floor lowered; and the target with it, against TPE as
    it hands over its best trial (`plain_tpe`: its regrets by budget) and against TPE retraining too."""
    every = sorted(set(budgets) | {b // 2 for b in budgets})
    rows: dict[tuple[str, str], dict[int, list[float]]] = {}
    for (name, pruning, seed, b), trace in runs.items():
        for budget in every:
            if b in (0, budget) and budget > RETRAIN:
                mask = trace.at("epochs", truth.budget("epochs", budget - RETRAIN))
                rows.setdefault((name, pruning), {}).setdefault(budget, []).append(
                    truth.regret(truth.retrained(trace, mask, seed, RETRAIN)))
    print(f"\nretraining the best {RETRAIN}: the last {RETRAIN} trainings' worth of each candidate-epochs budget train "
          f"the run's {RETRAIN} best blocks once more (the next of their table seeds) and the best mean wins; the "
          f"floor so (every block once, then its best {RETRAIN} again): "
          f"{np.mean([retrained_floor(truth, s) for s in sorted({key[2] for key in runs})]):.2f}")
    print(f"  {'strategy':<17} {'pruning':<8}" + "".join(f"{b:>14}" for b in budgets) + f"{'mean':>8}")
    for (name, pruning), by in sorted(rows.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        cells = [f"{np.mean(by[b]):>7.2f} ({np.std(by[b], ddof=1) / np.sqrt(len(by[b])) if len(by[b]) > 1 else 0:.2f})"
                 for b in budgets if b in by]
        mean = np.mean([np.mean(by[b]) for b in budgets if b in by])
        print(f"  {name:<17} {pruning:<8}" + "".join(f"{c:>14}" for c in cells) + f"{mean:>8.2f}")
    if plain_tpe is None or ("optuna-tpe", "none") not in rows:
        return
    print(f"the target with retraining the best {RETRAIN} within half of TPE's candidate-epochs, against TPE as it "
          f"hands over its best trial (optuna-tpe, no pruning)")
    print_target(rows, plain_tpe, names, budgets)
    print(f"the same against TPE retraining its best {RETRAIN} too")
    print_target(rows, rows[("optuna-tpe", "none")], names, budgets)


def every_block_once(truth: Truth, seed: int) -> tuple[Trace, np.ndarray]:
    """A run that trained every block once, each at the training the table trainer answers bench seed `seed`'s
    candidates with; and the mask of the blocks that have one."""
    table, hashes = truth.table, [h.decode() for h in truth.table.hash]
    cols = [table.pick(i, candidate_seed(seed, h)) for i, h in enumerate(hashes)]
    status = np.array([table.status[i, c] if c is not None else Status.ERROR for i, c in enumerate(cols)])
    acc = np.array([table.accuracy[i, c] if c is not None else 0.0 for i, c in enumerate(cols)])
    trace = Trace(hashes, status, acc, np.full(len(hashes), float(truth.epochs)), np.zeros(len(hashes)))
    return trace, np.array([c is not None for c in cols])


def retrained_floor(truth: Truth, seed: int) -> float:
    """The regret of a run that trained every block once and then its best RETRAIN blocks again."""
    return truth.regret(truth.retrained(*every_block_once(truth, seed), seed, RETRAIN))


def print_target(rows: dict[tuple[str, str], dict[int, list[float]]], tpe: dict[int, list[float]], names: list[str],
                 budgets: list[int]) -> None:
    """Per configuration of bqnn's: its regret at half of each budget B beside `tpe`'s at B, and at how many it is
    at or below."""
    for (name, pruning), by in sorted(rows.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        pairs = [(b, float(np.mean(by[b // 2])), float(np.mean(tpe[b]))) for b in budgets if b // 2 in by and b in tpe]
        if name in PEERS or not pairs:
            continue
        met = [mine <= theirs for _, mine, theirs in pairs]
        said = "; ".join(f"{b}: {m:.2f} {'<=' if m <= t else '> '} {t:.2f}" for b, m, t in pairs)
        print(f"  {name:<17} {pruning:<8} {'meets it' if all(met) else 'does not'}: at or below TPE's regret with half "
              f"its candidate-epochs at {sum(met)} of {len(met)} budgets ({said})")


def print_ranking(rows: dict[tuple[str, str], dict[tuple[str, int], list[float]]], budgets: list[int]) -> None:
    print(f"\nranking: regret averaged over the {len(budgets)} budgets (and over seeds), in candidate-epochs and "
          f"in training seconds, best first")
    mean = {key: {cost: float(np.mean([np.mean(by[(cost, b)]) for b in budgets]))
                  for cost in ("epochs", "seconds")} for key, by in rows.items()}
    for (name, pruning), m in sorted(mean.items(), key=lambda kv: (kv[1]["epochs"], kv[1]["seconds"])):
        print(f"  {name:<17} {pruning:<8} {m['epochs']:>7.2f} {m['seconds']:>7.2f}")


def print_floor(truth: Truth, seeds: list[int]) -> None:
    """The floor drawn at random, and with the very seeds the table trainer picks for these bench seeds."""
    low, share = floor(truth)
    ours = [truth.regret(once.best(mask)) for once, mask in (every_block_once(truth, s) for s in seeds)]
    print(f"the floor: every block trained once (one of its seeds, drawn) and the best observed kept: regret "
          f"{low:.2f} on average, the optimum itself kept in {share:.0%} of 10,000 draws; with the seeds the table "
          f"trainer picks for bench seeds {seeds[0]}-{seeds[-1]}: {np.mean(ours):.2f} (the optimum kept on "
          f"{sum(r <= 1e-9 for r in ours)} of {len(seeds)})")


def observed(table: Table) -> np.ndarray:
    """[B, S] the accuracy a training shows its search; -inf where it failed (never the best seen)."""
    return np.where(table.status == Status.OK, table.accuracy, -np.inf)


def floor(truth: Truth, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The regret of a search that trained every block once, each on one of its table seeds drawn at random, and
    kept the best accuracy it saw: what selection by one noisy training costs even when nothing is missed. (mean
    regret, share of draws that kept the optimum)"""
    acc = observed(truth.table)
    rng = np.random.default_rng(seed)
    regrets = []
    for chunk in np.array_split(np.arange(draws), max(1, draws // 500)):
        pick = rng.integers(acc.shape[1], size=(len(chunk), acc.shape[0]))
        seen = acc[np.arange(acc.shape[0]), pick]  # (draws, blocks): each block at its drawn seed
        best = seen.argmax(axis=1)
        regrets.append(truth.optimum - np.nan_to_num(truth.mean[best], nan=0.0))
    r = np.concatenate(regrets)
    return float(r.mean()), float((r <= 1e-9).mean())


def pruning_report(runs: dict[tuple[str, str, int, int], Trace], truth: Truth, names: list[str]) -> None:
    """Pruning on the table: the share of a full training's epochs that pruned runs spent per training, and how
    often a training of one of the table's 10 best blocks (by mean) was pruned."""
    top10 = {truth.table.hash[i].decode() for i in np.argsort(-np.nan_to_num(truth.mean, nan=-1.0))[:10]}
    print("\npruning on the table: epochs per training as a share of a full one (restarts included); trainings of "
          "the table's 10 best blocks, and how many of them were pruned (all runs, all seeds, every budget's run)")
    by: dict[tuple[str, str], list[Trace]] = {}
    for (name, pruning, _, _), trace in runs.items():
        by.setdefault((name, pruning), []).append(trace)
    for (name, pruning), ts in sorted(by.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        epochs = np.concatenate([t.epochs for t in ts])
        status = np.concatenate([t.status for t in ts])
        top = np.array([h in top10 for t in ts for h in t.hashes])
        pruned = status == Status.PRUNED
        print(f"  {name:<17} {pruning:<8} {epochs.mean() / truth.epochs:>6.1%} of the epochs, {pruned.mean():>6.1%} "
              f"of {len(status):>7,} trainings pruned; top-10 blocks: {int((top & pruned).sum()):>4} of "
              f"{int(top.sum()):>5,} trainings pruned ({(top & pruned).sum() / max(1, top.sum()):.1%})")


# ------------------------------------------------------------------ tune


def tune(args: argparse.Namespace) -> None:
    """Q-learning's alpha on the simulated trainer (its known optimum by brute force), never on the table: the
    value with the least mean regret over budgets 200 and 1,000 and seeds 1000-1009."""
    from bqnn.config import load
    from bqnn.training.simulated import known_optimum

    job = args.job
    base = ["trainer.kind=simulated", "pruning.record=false", "reward.preset=accuracy",
            "search.checkpoint_interval=3600"]
    best, hashes, distinct = known_optimum(load(job, base))
    results = {}
    for alpha in args.alphas:
        regrets = []
        for budget in (200, 1000):
            for seed in range(1000, 1010):
                sets = base + strategy_sets("qlearning-paper", budget, False)
                sets = [s for s in sets if not s.startswith("search.alpha")] + [f"search.alpha={alpha}",
                                                                                f"search.seed={seed}"]
                tr = bqnn_trace(args.runs / "tune" / f"a{alpha}-b{budget}-s{seed}", job, sets)
                mask = tr.at("epochs", budget * 6)
                ok = np.nonzero(mask & (tr.status == Status.OK))[0]
                regrets.append(best - float(tr.accuracy[ok].max()) if len(ok) else best)
        results[alpha] = float(np.mean(regrets))
        print(f"  alpha {alpha}: mean regret {results[alpha]:.3f} (simulated optimum {best:.2f}, {distinct:,} blocks)")
    pick = min(results, key=lambda a: (results[a], a))
    (args.runs / "tuned.json").parent.mkdir(parents=True, exist_ok=True)
    (args.runs / "tuned.json").write_text(json.dumps({"alpha": pick, "regrets": results}))
    print(f"tuned alpha: {pick} (written to {args.runs / 'tuned.json'})")


# --------------------------------------------------------------- retrain


def retrain(args: argparse.Namespace) -> None:
    """Blocks trained again from the table's recipe and seed (the real trainer, this machine): each retraining
    against the table's number for that seed, and against the block's seed-to-seed spread."""
    import dataclasses

    import torch

    from bqnn.blocks.code import from_array
    from bqnn.training.early_stop import EarlyStopTrainer

    table = Table.read(args.table)
    recipe = from_json(table.recipe)
    ok = (table.status == Status.OK).all(axis=1)
    rng = np.random.default_rng(args.pick_seed)
    rows = rng.choice(np.nonzero(ok)[0], size=args.blocks, replace=False)
    torch.set_num_threads(1)
    trainer = EarlyStopTrainer(recipe, torch.device("cpu"))
    print(f"retraining {args.blocks} blocks of {args.table} from its recipe (rows {sorted(rows.tolist())}, drawn "
          f"with seed {args.pick_seed}), one core, fp32")
    within = exact = 0
    for i in rows:
        nsc = from_array(table.nsc[i].astype(np.int16), table.max_index)
        h = table.hash[i].decode()
        spread = float(np.std(table.accuracy[i], ddof=1))
        lo, hi = float(table.accuracy[i].min()), float(table.accuracy[i].max())
        diffs = []
        for s, seed in enumerate(table.seeds):
            cfg = dataclasses.replace(recipe, search=dataclasses.replace(recipe.search, seed=seed))
            r = trainer.train(nsc, candidate_seed(cfg.search.seed, h))
            diffs.append(r.accuracy - float(table.accuracy[i, s]))
        ok_block = all(abs(d) <= max(hi - lo, 2 * spread) for d in diffs)
        within += ok_block
        exact += all(abs(d) < 1e-4 for d in diffs)  # the table keeps float32: equal up to its rounding
        print(f"  {h}: table {', '.join(f'{a:.2f}' for a in table.accuracy[i])} (sd {spread:.2f}); retrained minus "
              f"table per seed {', '.join(f'{d:+.2f}' for d in diffs)} -> {'within' if ok_block else 'OUTSIDE'} "
              f"the seeds' spread")
    print(f"{within} of {args.blocks} blocks within the spread; {exact} of them equal to the table at every seed "
          f"(the same number of images right: same code, CPU kind and thread count as the table's training)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("stats", "tune", "strategies", "retrain"))
    p.add_argument("--table", type=Path, default=TABLE)
    p.add_argument("--job", type=Path, default=JOB, help="the table's recipe as a job file")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the runs are kept and reused")
    p.add_argument("--jobs", type=int, default=1, help="strategies: processes running the runs (one core each)")
    p.add_argument("--seeds", type=int, default=SEEDS, help=f"strategies: bench seeds {FIRST_SEED}, {FIRST_SEED + 1}..")
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="in trainings' worth")
    p.add_argument("--only", nargs="+", choices=(*BQNN, *PEERS))
    p.add_argument("--pruning", nargs="+", choices=tuple(PRUNING), default=list(PRUNING))
    p.add_argument("--alphas", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 0.6, 1.0])
    p.add_argument("--blocks", type=int, default=5, help="retrain: how many blocks")
    p.add_argument("--pick-seed", type=int, default=7, help="retrain: which blocks")
    args = p.parse_args()
    print(f"bench/on_table.py {args.command}, {time.strftime('%Y-%m-%d %H:%M')}")
    from bqnn.landscape.table import TableError

    try:
        if args.command != "tune":
            Table.read(args.table)  # a missing or damaged table is one line before anything runs
        commands = {"stats": lambda a: stats(a.table), "tune": tune, "strategies": strategies, "retrain": retrain}
        commands[args.command](args)
    except TableError as e:
        print(f"bench/on_table.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
