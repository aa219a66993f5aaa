"""How each strategy runs on the landscape table, used by bench/on_table.py and its test:

    runs = traces(table_path, job, runs_root, names, prunings, seeds, budgets, jobs=2)  # key -> Trace
    truth = Truth(Table.read(table_path)); truth.regret(runs[key].best(runs[key].at("epochs", budget)))

A bqnn strategy is a real `bqnn.search` in this process with `trainer.kind = "table"`; an Optuna sampler (and
pruner) is a study told the table trainer's answers, on the same space, cache rule and budget. Each run is kept in
runs/on-table/table-DIGEST/ and read back, so an interrupted bench continues; the sizing rule for every strategy is
in bench/on_table.py's docstring.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from searched import by_id, finished  # noqa: E402

from bqnn.blocks.canon import canonical_hash  # noqa: E402
from bqnn.config import to_dict  # noqa: E402
from bqnn.landscape.table import NOT_TRAINED, Table  # noqa: E402
from bqnn.training.result import Status, candidate_seed  # noqa: E402

RUNS = ROOT / "runs" / "on-table"
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

    @classmethod
    def of(cls, candidates: np.ndarray) -> Trace:
        """The trace of a bqnn search's candidates (search.h5's table): its first trainings of each block, by id."""
        c = by_id(candidates)
        c = c[c["repeat"] == 0]
        return cls([h.decode() for h in c["hash"]], c["status"].astype(int), c["accuracy"].astype(float),
                   (c["epochs"] + c["restarts"]).astype(float), c["seconds"].astype(float))

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

    def retrained(self, trace: Trace, mask: np.ndarray, search_seed: int, k: int) -> str | None:
        """The block a run hands over after training its `k` best blocks (by the accuracy it observed within
        `mask`) once more, on the next of their table seeds after the one the run saw, and ranking them by the mean
        of their successful trainings: what `bqnn.train --top K`'s re-evaluation buys, at the recipe's cost."""
        ok = np.nonzero(mask & (trace.status == Status.OK))[0]
        if not len(ok):
            return None
        scores = {}
        for i in ok[np.argsort(-trace.accuracy[ok], kind="stable")][:k]:
            h = trace.hashes[i]
            row = self.table.row(h)
            seen = self.table.pick(row, candidate_seed(search_seed, h))
            trained = [int(c) for c in np.nonzero(self.table.status[row] != NOT_TRAINED)[0]]
            again = trained[(trained.index(seen) + 1) % len(trained)]
            runs = [float(trace.accuracy[i])]
            if again != seen and self.table.status[row, again] == Status.OK:
                runs.append(float(self.table.accuracy[row, again]))
            scores[h] = float(np.mean(runs))
        return max(scores, key=lambda h: scores[h])



def base_sets(table_path: Path, recipe: dict) -> list[str]:
    """The table's recipe as a search on the table: its sections, the table trainer, accuracy as the reward."""
    return [f"trainer.table={table_path}", "trainer.kind=table", "pruning.record=false", "reward.preset=accuracy",
            "search.checkpoint_interval=3600", f"space.max_index={recipe['space']['max_index']}"]


def bqnn_trace(out: Path, job: Path, sets: list[str]) -> Trace:
    """A bqnn search on the table (run unless finished before): its trainings in id order."""
    return Trace.of(finished(out, job, sets).candidates)


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
    study, trainer, choices = _optuna_study(sampler, pruner, seed, table_path, job)
    seen: dict[str, tuple[Any, float]] = {}
    tr: dict[str, list] = {"hashes": [], "status": [], "accuracy": [], "epochs": [], "seconds": []}
    blocks = len(trainer.table.hash)
    proposals = 0
    while ((sum(tr["epochs"]) < budget[0] or sum(tr["seconds"]) < budget[1]) and len(tr["hashes"]) < blocks
           and proposals < MAX_TRIALS[sampler]):
        proposals += 1
        trial = study.ask()
        nsc = _propose(trial, choices)
        h = canonical_hash(nsc)
        if h not in seen:
            r = _train(trainer, trial, nsc, candidate_seed(seed, h))
            seen[h] = (_state(r.status), r.accuracy)
            for key, v in (("hashes", h), ("status", int(r.status)), ("accuracy", r.accuracy),
                           ("epochs", r.epochs + r.restarts), ("seconds", r.seconds)):
                tr[key].append(v)
        state, value = seen[h]
        study.tell(trial, value if state == _state(Status.OK) else None, state=state)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({**tr, "trials": proposals, "budget": budget}))
    return Trace(tr["hashes"], np.array(tr["status"]), np.array(tr["accuracy"]), np.array(tr["epochs"]),
                 np.array(tr["seconds"]))


def _optuna_study(sampler: str, pruner: str, seed: int, table_path: Path, job: Path) -> tuple[Any, Any, list[dict]]:
    """The study (sampler, pruner, a fixed name), the table trainer told to report after every epoch, and the
    choices of each row (its legal layers by their text)."""
    import warnings

    import optuna
    from peers import _sampler, _text

    from bqnn.blocks.code import Layer
    from bqnn.blocks.space import Space
    from bqnn.config import load
    from bqnn.training.table import TableTrainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    recipe = to_dict(load(job))
    every_epoch = list(range(1, recipe["trainer"]["epochs"]))  # the pruner is told the accuracy after each epoch
    cfg = load(job, base_sets(table_path, recipe) + ["pruning.record=true", f"pruning.rungs={every_epoch}"])
    space = Space.of(cfg.space)
    choices = [{_text(a): a for a in space.actions(Layer(i - 1, 0, 0, 0, 0))}
               for i in range(1, cfg.space.max_index + 1)]
    pruners = {"none": optuna.pruners.NopPruner(), "median": optuna.pruners.MedianPruner(),
               "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.trainer.epochs,
                                                           reduction_factor=3)}
    # A fixed name: Hyperband puts a trial in a bracket by a hash of the study's name, which is random otherwise
    study = optuna.create_study(study_name=f"{sampler}-{pruner}-s{seed}", direction="maximize",
                                sampler=_sampler(sampler, seed), pruner=pruners[pruner])
    return study, TableTrainer(cfg), choices


def _propose(trial: Any, choices: list[dict]) -> tuple:
    """The block a trial proposes: one categorical per row, up to the first terminal."""
    from bqnn.blocks.code import Op

    rows = []
    for i, legal in enumerate(choices, start=1):
        layer = legal[trial.suggest_categorical(f"row{i}", list(legal))]
        rows.append(layer)
        if layer.type == Op.TERMINAL:
            break
    return tuple(rows)


def _train(trainer: Any, trial: Any, nsc: tuple, seed: int) -> Any:
    """The table trainer's answer for `nsc`, the accuracy after every epoch reported to the trial's pruner."""
    def report(epoch: int, accuracy: float | None) -> bool:
        if accuracy is None:
            return False
        trial.report(accuracy, epoch)
        return bool(trial.should_prune())

    return trainer.train(nsc, seed, on_epoch=report)


def _state(status: int) -> Any:
    """Optuna's trial state for a training's status."""
    import optuna

    return (optuna.trial.TrialState.COMPLETE if status == Status.OK else optuna.trial.TrialState.PRUNED
            if status == Status.PRUNED else optuna.trial.TrialState.FAIL)


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
    units: list[tuple[tuple[str, str, int, int], str, tuple]] = []
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

