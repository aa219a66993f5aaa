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
with pruning, which affords more candidates per epoch; PNAS: beam = (budget - 8) / 3), the others one search per
seed sized to the largest budget (their proposals do not depend on the horizon), read at every budget. Q-learning
runs twice: at the paper's alpha (0.01, the CVPR update rule: replay only) and at the alpha `tune` picks on the
simulated trainer. Pruning: bqnn's median rule (rungs 1, 2, 4) and halving rule (rungs 1, 3, reduction 3),
`min_candidates` at its default 16; Optuna's MedianPruner and HyperbandPruner (min resource 1, max 6, reduction
3), each told the accuracy after every epoch. Bench seeds 100 and up (the table's own seeds are 0-2; nothing is
tuned on them). Runs land in runs/on-table/table-DIGEST/ (one folder per table contents) and are reused: an
interrupted bench continues. `--jobs N` runs them in N processes (the same figures as one).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bqnn.blocks.canon import canonical_hash  # noqa: E402
from bqnn.config import from_json, to_dict  # noqa: E402
from bqnn.landscape.table import Table  # noqa: E402
from bqnn.run import checkpoint  # noqa: E402
from bqnn.search import main as search_main  # noqa: E402
from bqnn.training.result import Status, candidate_seed  # noqa: E402

TABLE = ROOT / "bench" / "data" / "landscape.h5"
RUNS = ROOT / "runs" / "on-table"
JOB = ROOT / "jobs" / "landscape.toml"  # the table's recipe as a job file (--job for a table of another recipe)
BUDGETS = (50, 100, 200, 500, 1000, 2000)
SEEDS = 20
FIRST_SEED = 100
# Optuna's TPE costs O(trials) per proposal in Python (its Parzen estimators are rebuilt from every trial), so a
# run costs O(trials^2): 3,000 trials took 391 s here. On a space of 2,357 blocks TPE soon proposes blocks it has
# seen (told their cached value, free in epochs, not in time), so a run is stopped after MAX_TRIALS proposals
# even if its budget is not spent: it has converged; the report says how much it spent (below: it ended first).
# Optuna's random sampler costs little per proposal but repeats blocks often (one categorical per row: 4,473 codes
# for 2,357 blocks), so its cap is higher. Measured on one seed: 2,500 proposals gave TPE ~580 trainings, random
# 1,309.
MAX_TRIALS = {"optuna-random": 10_000, "optuna-tpe": 2_500, "optuna-mtpe": 2_500}
PRUNING = {"none": [], "median": ["pruning.rule=median", "pruning.rungs=[1,2,4]"],
           "halving": ["pruning.rule=halving", "pruning.rungs=[1,3]", "pruning.reduction=3"]}
OPTUNA_PRUNING = {"none": "none", "median": "median", "halving": "hyperband"}  # the counterpart on Optuna's side


@dataclass
class Trace:
    """The trainings of one run in the order they were made."""

    hashes: list[str]
    status: np.ndarray  # Status per training
    accuracy: np.ndarray  # observed (one seed's) accuracy; a pruned one's is its rung's
    epochs: np.ndarray  # epochs trained, restarts included
    seconds: np.ndarray  # the table's seconds (k/E of them for a candidate pruned after k epochs)

    def at(self, cost: str, budget: float) -> np.ndarray:
        """Mask of the trainings made within `budget` (candidate-epochs or seconds)."""
        spent = np.cumsum(self.epochs if cost == "epochs" else self.seconds)
        return spent <= budget + 1e-9

    def best(self, mask: np.ndarray) -> str | None:
        """The block with the best observed accuracy among trainings to the end within `mask`."""
        ok = np.nonzero(mask & (self.status == Status.OK))[0]
        return self.hashes[ok[np.argmax(self.accuracy[ok])]] if len(ok) else None


class Truth:
    """What the table says of every block: its mean accuracy over seeds, the optimum, the costs of a budget."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.mean = table.mean_accuracy()
        self.optimum = float(np.nanmax(self.mean))
        self.epochs = table.epochs
        ok = table.status == Status.OK
        self.seconds_per_training = float(table.seconds[ok].mean())

    def regret(self, block: str | None) -> float:
        if block is None:
            return self.optimum  # nothing trained to the end: as bad as it gets
        m = self.mean[self.table.row(block)]
        return self.optimum - (float(m) if np.isfinite(m) else 0.0)

    def true_accuracy(self, block: str | None) -> float:
        return self.optimum - self.regret(block)

    def budget(self, cost: str, trainings: int) -> float:
        return trainings * (self.epochs if cost == "epochs" else self.seconds_per_training)


# ------------------------------------------------------------------ runs


def base_sets(table_path: Path, recipe: dict) -> list[str]:
    """The table's recipe as a search on the table: its sections, the table trainer, accuracy as the reward."""
    return [f"trainer.table={table_path}", "trainer.kind=table", "pruning.record=false", "reward.preset=accuracy",
            "search.checkpoint_interval=3600", f"space.max_index={recipe['space']['max_index']}"]


def bqnn_trace(out: Path, job: Path, sets: list[str]) -> Trace:
    """A bqnn search on the table (run unless finished before): its trainings in id order."""
    done = checkpoint.exists(out) and (lambda s: s.iteration >= s.iterations_total)(checkpoint.load(out)[0])
    if not done:
        args = ["--config", str(job), "--out", str(out)] + [x for s in sets for x in ("--set", s)]
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            code = search_main(args)
        if code != 0:
            raise SystemExit(f"bench/on_table.py: search in {out} failed ({code}):\n{buf.getvalue()}")
    c = checkpoint.load(out)[0].candidates
    c = c[np.argsort(c["id"], kind="stable")]
    c = c[c["repeat"] == 0]
    return Trace([h.decode() for h in c["hash"]], c["status"].astype(int), c["accuracy"].astype(float),
                 (c["epochs"] + c["restarts"]).astype(float), c["seconds"].astype(float))


def optuna_trace(sampler: str, pruner: str, seed: int, table_path: Path, job: Path, budget: tuple[float, float],
                 cache: Path) -> Trace:
    """Optuna's `sampler` (and `pruner`) on the table until it has spent `budget` (candidate-epochs, training
    seconds: both), has trained every block, or has made MAX_TRIALS[sampler] trials; saved to `cache` (JSON) and reused.
    A trial is one block (one categorical per row, bench/peers.py); a block trained before is told its cached
    value and costs nothing (bqnn's cache rule); the table trainer trains the others, reporting the accuracy after
    every epoch to the pruner."""
    if cache.exists():
        d = json.loads(cache.read_text())
        return Trace(d["hashes"], np.array(d["status"]), np.array(d["accuracy"]), np.array(d["epochs"]),
                     np.array(d["seconds"]))
    import warnings

    import optuna
    from peers import _sampler, _text

    from bqnn.blocks.code import Layer, Op
    from bqnn.blocks.space import Space
    from bqnn.config import load
    from bqnn.training.table import TableTrainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    recipe = to_dict(load(job))
    every_epoch = list(range(1, recipe["trainer"]["epochs"]))  # the pruner is told the accuracy after each epoch
    cfg = load(job, base_sets(table_path, recipe) + ["pruning.record=true", f"pruning.rungs={every_epoch}"])
    trainer = TableTrainer(cfg)
    space = Space.of(cfg.space)
    choices = {i: {_text(a): a for a in space.actions(Layer(i - 1, 0, 0, 0, 0))}
               for i in range(1, cfg.space.max_index + 1)}
    pruners = {"none": optuna.pruners.NopPruner(), "median": optuna.pruners.MedianPruner(),
               "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.trainer.epochs,
                                                           reduction_factor=3)}
    # A fixed name: Hyperband puts a trial in a bracket by a hash of the study's name, which is random otherwise
    study = optuna.create_study(study_name=f"{sampler}-{pruner}-s{seed}", direction="maximize",
                                sampler=_sampler(sampler, seed), pruner=pruners[pruner])
    seen: dict[str, tuple[optuna.trial.TrialState, float]] = {}
    tr: dict[str, list] = {"hashes": [], "status": [], "accuracy": [], "epochs": [], "seconds": []}
    blocks = len(trainer.table.hash)
    proposals = 0
    while ((sum(tr["epochs"]) < budget[0] or sum(tr["seconds"]) < budget[1]) and len(tr["hashes"]) < blocks
           and proposals < MAX_TRIALS[sampler]):
        proposals += 1
        trial = study.ask()
        rows = []
        for i in range(1, cfg.space.max_index + 1):
            layer = choices[i][trial.suggest_categorical(f"row{i}", list(choices[i]))]
            rows.append(layer)
            if layer.type == Op.TERMINAL:
                break
        nsc = tuple(rows)
        h = canonical_hash(nsc)
        if h in seen:
            state, value = seen[h]
            study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
            continue

        def report(epoch: int, accuracy: float | None, trial: optuna.trial.Trial = trial) -> bool:
            if accuracy is None:
                return False
            trial.report(accuracy, epoch)
            return bool(trial.should_prune())

        r = trainer.train(nsc, candidate_seed(seed, h), on_epoch=report)
        state = (optuna.trial.TrialState.COMPLETE if r.status == Status.OK else optuna.trial.TrialState.PRUNED
                 if r.status == Status.PRUNED else optuna.trial.TrialState.FAIL)
        seen[h] = (state, r.accuracy)
        study.tell(trial, r.accuracy if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        for key, v in (("hashes", h), ("status", int(r.status)), ("accuracy", r.accuracy),
                       ("epochs", r.epochs + r.restarts), ("seconds", r.seconds)):
            tr[key].append(v)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({**tr, "trials": proposals, "budget": budget}))
    return Trace(tr["hashes"], np.array(tr["status"]), np.array(tr["accuracy"]), np.array(tr["epochs"]),
                 np.array(tr["seconds"]))


# ------------------------------------------------------------ strategies

BQNN = ("random", "qlearning-paper", "qlearning-tuned", "pnas", "evolution")
PEERS = ("optuna-random", "optuna-tpe", "optuna-mtpe")
SIZED = ("qlearning-paper", "qlearning-tuned", "pnas")  # one search per budget; the others one per seed


def tuned_alpha(runs: Path) -> float:
    path = runs / "tuned.json"
    if not path.exists():
        raise SystemExit("bench/on_table.py: run `python bench/on_table.py tune` first (Q-learning's alpha, tuned on "
                         "the simulated trainer)")
    return float(json.loads(path.read_text())["alpha"])


def strategy_sets(name: str, trainings: int, pruned: bool, runs: Path = RUNS, max_index: int = 5) -> list[str]:
    """--set overrides of a bqnn strategy sized for `trainings` trainings (the rule in the module docstring)."""
    from strategies import schedule

    if name in ("random", "evolution"):
        per = 16
        return [f"search.strategy={name}", f"search.blocks_per_iteration={per}",
                f"search.schedule=[[1.0, {20 * trainings // per}]]"]
    if name.startswith("qlearning"):
        per, sched = schedule(2 * trainings if pruned else trainings)
        alpha = 0.01 if name == "qlearning-paper" else tuned_alpha(runs)
        return ["search.strategy=qlearning", f"search.blocks_per_iteration={per}", f"search.schedule={sched}",
                f"search.replay_samples={per}", f"search.alpha={alpha}", "search.updates=replay"]
    if name == "pnas":
        beam = max(1, ((2 * trainings if pruned else trainings) - 8) // 2)
        return ["search.strategy=pnas", f"pnas.max_size={max_index - 1}", f"pnas.beam={beam}"]  # every layer
    raise ValueError(name)


def runs_of(table_path: Path, runs: Path) -> Path:
    """Where the runs on this table are kept: a folder per table contents, so a rebuilt table never reuses runs
    made on another."""
    return runs / f"table-{hashlib.sha256(table_path.read_bytes()).hexdigest()[:12]}"


COST_ORDER = ("optuna-mtpe", "optuna-tpe", "pnas", "random", "evolution", "qlearning-paper", "qlearning-tuned",
              "optuna-random")  # the slowest runs first, so that a pool of processes ends together


def run_unit(unit: tuple) -> tuple[tuple, tuple, float]:
    """One run (a bqnn search or an Optuna study on the table), in this process or a pool's: (its key, its
    trace as plain arrays, seconds)."""
    key, kind, args = unit
    t0 = time.perf_counter()
    trace = optuna_trace(*args) if kind == "optuna" else bqnn_trace(*args)
    return key, (trace.hashes, trace.status, trace.accuracy, trace.epochs, trace.seconds), time.perf_counter() - t0


def traces(table_path: Path, job: Path, runs_root: Path, names: list[str], prunings: list[str], seeds: list[int],
           budgets: list[int], jobs: int = 1) -> dict[tuple[str, str, int, int], Trace]:
    """(strategy, pruning, seed, budget) -> its trace; budget 0 for a run read at every budget. With `jobs` > 1 the
    runs are spread over that many processes (each one thread); every run is seeded and kept on its own, so the
    traces are the same whatever the number of processes."""
    runs = runs_of(table_path, runs_root)
    from bqnn.config import load

    recipe = to_dict(load(job))
    base = base_sets(table_path, recipe)
    truth = Truth(Table.read(table_path))
    top = max(budgets)
    units = []
    for name in names:
        for pruning in prunings:
            for seed in seeds:
                if name in PEERS:
                    units.append(((name, pruning, seed, 0), "optuna", (
                        name, OPTUNA_PRUNING[pruning], seed, table_path, job,
                        (truth.budget("epochs", top), truth.budget("seconds", top)),
                        runs / "optuna" / f"{name}-{OPTUNA_PRUNING[pruning]}-b{top}-s{seed}.json")))
                    continue
                for b in (budgets if name in SIZED else [top]):
                    sets = (base + strategy_sets(name, b, pruning != "none", runs_root, recipe["space"]["max_index"])
                            + PRUNING[pruning] + [f"search.seed={seed}"])
                    units.append(((name, pruning, seed, b if name in SIZED else 0), "bqnn",
                                  (runs / name / f"{pruning}-b{b}-s{seed}", job, sets)))
    units.sort(key=lambda u: (COST_ORDER.index(u[0][0]), -u[0][3], u[0][2], u[0][1]))
    out: dict[tuple[str, str, int, int], Trace] = {}
    spent: dict[str, float] = {}
    t0 = time.perf_counter()

    def collect(done: tuple[tuple, tuple, float]) -> None:
        key, arrays, seconds = done
        out[key] = Trace(arrays[0], *(np.asarray(a) for a in arrays[1:]))
        spent[key[0]] = spent.get(key[0], 0.0) + seconds
        if len(out) % max(1, len(units) // 20) == 0 or len(out) == len(units):
            elapsed = time.perf_counter() - t0
            print(f"  {len(out):,} of {len(units):,} runs, {elapsed:.0f} s elapsed, ETA "
                  f"{elapsed / len(out) * (len(units) - len(out)):.0f} s", file=sys.stderr, flush=True)

    if jobs > 1:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per process
            os.environ[var] = "1"
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in pool.map(run_unit, units):
                collect(done)
    else:
        for unit in units:
            collect(run_unit(unit))
    print("  seconds per strategy (in all processes): " + ", ".join(f"{n} {spent[n]:.0f}" for n in names if n in spent),
          file=sys.stderr, flush=True)
    return out


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
    print("\ncandidate-epochs spent within the epochs budget (mean; below the budget: the run ended first)")
    for (name, pruning), by in sorted(spent.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        print(f"  {name:<17} {pruning:<8}" + "".join(f"{np.mean(by[b]):>14.0f}" for b in args.budgets))
    pruning_report(runs, truth, names)
    if "optuna-tpe" in names:
        tpe = rows.get(("optuna-tpe", "none"))
        print("\nthe target: regret at half of TPE's candidate-epochs <= TPE's regret at the budget, at every budget")
        for (name, pruning), by in sorted(rows.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
            if tpe is None or name in PEERS:
                continue
            verdict = []
            for budget in args.budgets:
                half = budget // 2
                if ("epochs", half) not in by:
                    continue
                verdict.append(np.mean(by[("epochs", half)]) <= np.mean(tpe[("epochs", budget)]))
            if verdict:
                print(f"  {name:<17} {pruning:<8} {'meets it' if all(verdict) else 'does not'}: at or below TPE's "
                      f"regret with half its candidate-epochs at {sum(verdict)} of {len(verdict)} budgets")


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


# ----------------------------------------------------------------- stats


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


def stats(args: argparse.Namespace) -> None:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # means of blocks without a successful training are NaN
    from bqnn.blocks.code import from_array
    from bqnn.stats import spearman
    from bqnn.strategies.predictor import features
    from bqnn.training.simulated import simulated_accuracy

    table = Table.read(args.table)
    truth = Truth(table)
    recipe = from_json(table.recipe)
    ok = table.status == Status.OK
    full = ok.all(axis=1)
    acc = np.where(ok, table.accuracy, np.nan)
    sd = np.nanstd(acc[full], axis=1, ddof=1)
    mean = truth.mean
    order = np.argsort(-np.where(np.isfinite(mean), mean, -1))
    top50 = order[:50]
    print(f"the table {args.table}: {len(table.hash):,} blocks x {len(table.seeds)} seeds "
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
        {"stats": stats, "tune": tune, "strategies": strategies, "retrain": retrain}[args.command](args)
    except TableError as e:
        print(f"bench/on_table.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
