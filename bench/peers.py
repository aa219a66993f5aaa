"""Optuna's samplers over bqnn's search space, as a new user would set them up: bench/strategies.py's peers.

    from peers import PEERS, optuna_search, peers_missing
    rewards, proposals, seconds, in_optuna = optuna_search("optuna-tpe", seed=0, cfg=cfg, budget=1000, time_cap=600)

Needs Optuna (`pip install 'bqnn[peers]'`); `peers_missing()` says why they are skipped when it is absent.

Define-by-run, one categorical choice per layer: row t of a block is `suggest_categorical("row{t}", ...)` over
`Space.actions` at index t (legal layers and the terminal; they depend only on the index, so each name keeps
one fixed set of choices, as Optuna requires), until the terminal is drawn. The objective is the reward bqnn's
simulated trainer earns (`simulated_accuracy` through eq. 7, as `known_optimum` computes it), and bqnn's
cache rule holds: a block whose canonical hash was already trained is told its cached reward and is not a
new training. Scored like bqnn's strategies: the rewards of distinct trainings, in the order they were made.

Samplers: `optuna-random` (RandomSampler), `optuna-tpe` (TPESampler, independent per parameter), `optuna-mtpe`
(TPESampler(multivariate=True, group=True): a joint model per group of parameters that occur together, which
is how Optuna handles a conditional, variable-length space). All seeded. Not tuned: defaults otherwise.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import NSC, Layer, Op
from bqnn.blocks.cost import network_cost
from bqnn.blocks.graph import graph
from bqnn.blocks.reward import reward
from bqnn.blocks.space import Space
from bqnn.config import Config
from bqnn.data.shapes import dataset_shape
from bqnn.training.simulated import simulated_accuracy

PEERS = ("optuna-random", "optuna-tpe", "optuna-mtpe")


def peers_missing() -> str | None:
    """None when Optuna can be imported, else the line to print instead of the peers' rows."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        return "Optuna is not installed: its samplers are skipped (pip install 'bqnn[peers]' adds them)"
    return None


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-mtpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    raise ValueError(f"unknown peer {name!r} (known: {', '.join(PEERS)})")


def _text(layer: Layer) -> str:
    return ",".join(map(str, layer))


class SimulatedReward:
    """The reward bqnn's simulated trainer earns for a block in `cfg`'s network (eq. 7), memoized by hash."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.shape = cfg, dataset_shape(cfg.data)

    def __call__(self, nsc: NSC) -> float:
        cost = network_cost(nsc, self.cfg.network, *self.shape)
        return float(reward(simulated_accuracy(nsc), cost.flops, graph(nsc).density, self.cfg.reward))


def optuna_search(name: str, seed: int, cfg: Config, budget: int, time_cap: float,
                  max_proposals: int | None = None) -> tuple[np.ndarray, int, float, float]:
    """(rewards of the distinct trainings in order, blocks proposed, seconds in all, seconds inside Optuna's ask
    and tell) after `budget` distinct trainings, `time_cap` seconds, or `max_proposals` (default 20 x budget)
    proposals, whichever comes first."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # group=True's notice
    space = Space.of(cfg.space)
    choices = {i: {_text(a): a for a in space.actions(Layer(i - 1, 0, 0, 0, 0))}  # only the index matters
               for i in range(1, cfg.space.max_index + 1)}
    score = SimulatedReward(cfg)
    study = optuna.create_study(direction="maximize", sampler=_sampler(name, seed))
    cache: dict[str, float] = {}
    trained: list[float] = []
    proposals, in_optuna = 0, 0.0
    limit = max_proposals if max_proposals is not None else 20 * budget
    start = time.perf_counter()
    while len(trained) < budget and proposals < limit and time.perf_counter() - start < time_cap:
        t0 = time.perf_counter()
        trial = study.ask()
        rows: list[Layer] = []
        for i in range(1, cfg.space.max_index + 1):
            options = choices[i]
            layer = options[trial.suggest_categorical(f"row{i}", list(options))]
            rows.append(layer)
            if layer.type == Op.TERMINAL:
                break
        in_optuna += time.perf_counter() - t0
        nsc = tuple(rows)
        h = canonical_hash(nsc)
        if h not in cache:
            cache[h] = score(nsc)
            trained.append(cache[h])
        t0 = time.perf_counter()
        study.tell(trial, cache[h])
        in_optuna += time.perf_counter() - t0
        proposals += 1
    return np.array(trained), proposals, time.perf_counter() - start, in_optuna
