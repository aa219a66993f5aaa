"""PNAS-style progressive search (Liu et al., ECCV 2018) over BlockQNN's block space.

Used through `bqnn.strategies.make_strategy` (`search.strategy = "pnas"`, settings in [pnas]).

Round 0 trains every block of the smallest size (the start identity and one layer: 8 blocks in
BlockQNN's space). Round r grows the blocks trained in round r - 1 (the beam) by one layer each,
in every legal way (`space.layers_at`: any op on any earlier node, any add or concat of two earlier
nodes, so "one layer or one add/concat combination" at a time), drops expansions that are the same
block as another (canonical hash) or that were trained before, scores the rest with the predictor
(predictor.py, fitted on every block trained so far), and proposes the top `pnas.beam` by predicted
reward (ties by hash); those are trained and become the next beam. Blocks have `pnas.max_size`
layers (start identity included, terminal not) in the last round.

After each round: the predictor's Spearman rank correlation between what it predicted for that
round's blocks and the rewards they earned is recorded (PNAS Table 1's question: does the surrogate
rank unseen, larger blocks well?), and the predictor is refit from scratch on all results.

Everything needed to continue is in the state: the beam, every result so far, this round's
proposals and predictions, the per-round correlations and the predictor's weights.
"""
from __future__ import annotations

import numpy as np

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, Layer, empty_codes, from_array, terminal, to_array
from ..blocks.space import Space
from ..config import Config, PNASConfig
from ..stats import spearman
from .base import Arrays, Attrs, Strategy, register
from .predictor import Predictor, features


@register
class PNASStrategy(Strategy):
    name = "pnas"
    fixed_size = False

    @classmethod
    def from_config(cls, cfg: Config, space: Space) -> PNASStrategy:
        return cls(space, cfg.pnas, cfg.search.seed)

    def __init__(self, space: Space, cfg: PNASConfig, seed: int) -> None:
        self.space, self.cfg = space, cfg
        self.first_size = 2 if space.start_identity else 1
        self.rounds = cfg.max_size - self.first_size + 1
        self.predictor = Predictor(cfg.ensemble, cfg.hidden, cfg.fit_steps, cfg.fit_lr, seed)
        self.beam: list[NSC] = []
        self.data_nsc: list[NSC] = []
        self.data_reward: list[float] = []
        self.data_x: list[np.ndarray] = []
        self.trained: set[str] = set()  # hashes proposed so far
        self.proposed: list[NSC] = []  # this round's blocks, in proposal order
        self.predicted: list[float] = []  # and what the predictor said of each (round 0: nothing)
        self.observed: dict[NSC, float] = {}
        self.correlation: list[float] = []  # per round (nan for round 0 and when undefined)
        self.n_first = len(self._smallest())

    @property
    def total_iterations(self) -> int:
        return self.rounds

    def epsilon(self, iteration: int) -> float:
        return 0.0  # every proposal after round 0 is the predictor's greedy choice

    def planned_candidates(self, n: int) -> int:
        return self.n_first + (self.rounds - 1) * self.cfg.beam

    # ------------------------------------------------------------ proposals
    def _smallest(self) -> dict[str, NSC]:
        prefix: tuple[Layer, ...] = (Layer(1, 4, 0, 0, 0),) if self.space.start_identity else ()
        s = self.first_size
        return self._unique([prefix + (layer, terminal(s + 1)) for layer in self.space.layers_at(s)])

    def _unique(self, blocks: list[NSC]) -> dict[str, NSC]:
        """hash -> block, first writing of each block not trained before, in the given order."""
        out: dict[str, NSC] = {}
        for b in blocks:
            h = canonical_hash(b)
            if h not in out and h not in self.trained:
                out[h] = b
        return out

    def _expansions(self) -> dict[str, NSC]:
        out: list[NSC] = []
        for b in self.beam:
            rows = b[:-1]  # without the terminal
            size = len(rows)
            out.extend(rows + (layer, terminal(size + 2)) for layer in self.space.layers_at(size + 1))
        return self._unique(out)

    def propose(self, iteration: int, n: int) -> list[NSC]:
        cands = self._smallest() if iteration == 0 else self._expansions()
        if iteration == 0 or not cands:
            chosen, scores = list(cands), []
        else:
            hashes = list(cands)
            pred = self.predictor.predict(np.stack([features(cands[h], self.space.kinds) for h in hashes]))
            order = sorted(range(len(hashes)), key=lambda i: (-pred[i], hashes[i]))[: self.cfg.beam]
            chosen, scores = [hashes[i] for i in order], [float(pred[i]) for i in order]
        self.proposed, self.predicted, self.observed = [cands[h] for h in chosen], scores, {}
        self.trained.update(chosen)
        return list(self.proposed)

    # ----------------------------------------------------------- results
    def observe(self, nsc: NSC, reward: float) -> None:
        self.data_nsc.append(nsc)
        self.data_reward.append(reward)
        self.data_x.append(features(nsc, self.space.kinds))
        self.observed[nsc] = reward

    def end_iteration(self, iteration: int) -> None:
        rho = None
        if self.predicted:
            actual = [self.observed.get(b, np.nan) for b in self.proposed]
            rho = spearman(self.predicted, actual)
        self.correlation.append(np.nan if rho is None else rho)
        self.beam = list(self.proposed)
        if self.data_x:
            self.predictor.fit(np.stack(self.data_x), np.array(self.data_reward), iteration)

    def note(self, iteration: int) -> str:
        size = self.first_size + iteration
        rho = self.correlation[iteration] if iteration < len(self.correlation) else np.nan
        return f"size {size}" + ("" if np.isnan(rho) else f", predictor Spearman {rho:+.2f}")

    def best_guess(self) -> NSC | None:
        return self.data_nsc[int(np.argmax(self.data_reward))] if self.data_reward else None

    # ------------------------------------------------------------- state
    def _stack(self, blocks: list[NSC]) -> np.ndarray:
        mi = self.space.max_index
        return np.stack([to_array(b, mi) for b in blocks]) if blocks else empty_codes(mi)

    def state(self) -> tuple[Arrays, Attrs]:
        arrays = {
            "beam_nsc": self._stack(self.beam),
            "data_nsc": self._stack(self.data_nsc),
            "data_reward": np.array(self.data_reward, np.float64),
            "proposed_nsc": self._stack(self.proposed),
            "proposed_prediction": np.array(self.predicted, np.float64),
            "round_spearman": np.array(self.correlation, np.float64),
            **self.predictor.state(),
        }
        arrays["observed"] = np.array([self.proposed.index(b) for b in self.observed], np.int64)
        return arrays, {}

    def load_state(self, arrays: Arrays, attrs: Attrs) -> None:
        mi = self.space.max_index
        blocks = lambda a: [from_array(r, mi) for r in a]  # noqa: E731
        self.beam = blocks(arrays["beam_nsc"])
        self.data_nsc = blocks(arrays["data_nsc"])
        self.data_reward = arrays["data_reward"].tolist()
        self.data_x = [features(b, self.space.kinds) for b in self.data_nsc]
        self.proposed = blocks(arrays["proposed_nsc"])
        self.predicted = arrays["proposed_prediction"].tolist()
        self.correlation = arrays["round_spearman"].tolist()
        self.trained = {canonical_hash(b) for b in self.data_nsc} | {canonical_hash(b) for b in self.proposed}
        rewards = dict(zip(self.data_nsc, self.data_reward, strict=True))
        self.observed = {self.proposed[i]: rewards[self.proposed[i]] for i in arrays["observed"].tolist()}
        self.predictor.load(arrays)

