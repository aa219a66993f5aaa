"""PNAS's surrogate: an ensemble of small MLPs that predicts a block's reward from its graph. numpy only.

Used as a library by strategies/pnas.py (`Predictor.fit`, `Predictor.predict`, `state`/`load`).

Features (`features`) are counts on the block's DAG, so the same block written with another
numbering has the same features, and a predictor fitted on blocks of size b can score blocks of
size b + 1 (PNAS's point: the surrogate must generalise to larger cells than it was trained on; a
positional encoding of the rows would leave the new row's weights untrained). Per block: how many
layers of each (type, kernel) kind of its space (`Space.kinds`; in the PCC space the 10 kinds conv
1/3/5, max pool 1/3, avg pool 1/3, identity, add, concat); the edges by (source kind, target kind),
the block input as a source and the block output as a target (11 x 11 there); layers, edges,
leaves, depth (longest input-to-output path) and density.

Each of `ensemble` MLPs (features -> hidden -> hidden -> 1, ReLU) is fitted with full-batch Adam on
the standardized rewards of all blocks trained so far, leaving out its own fifth of them (PNAS
sec. 3.3: an ensemble of predictors, each trained on a different part of the data); the prediction
is the ensemble's mean. Initialisation and folds come from one seed, so a refit on the same data
gives the same weights.
"""
from __future__ import annotations

import functools

import numpy as np

from ..blocks.code import NSC, Op
from ..blocks.graph import graph

# The (type, kernel) kinds of the PCC space (Table 1), in the op table's order: `Space.kinds` of "pcc".
KINDS = ((1, 1), (1, 3), (1, 5), (2, 1), (2, 3), (3, 1), (3, 3), (4, 0), (5, 0), (6, 0))


def n_features(kinds: tuple[tuple[int, int], ...] = KINDS) -> int:
    return len(kinds) + (len(kinds) + 1) ** 2 + 5


def features(nsc: NSC, kinds: tuple[tuple[int, int], ...] = KINDS) -> np.ndarray:
    """The block's feature vector over the layer kinds of its space (`Space.kinds`)."""
    index = _index(kinds)
    n_kinds = len(kinds)
    layers = [layer for layer in nsc if layer.type != Op.TERMINAL]
    g = graph(nsc)
    n = g.n_layers
    kind = [n_kinds] + [index[(layer.type, layer.kernel)] for layer in layers]  # node 0: the block input
    x = np.zeros(n_features(kinds))
    for k in kind[1:]:
        x[k] += 1
    edges = x[n_kinds: n_kinds + (n_kinds + 1) ** 2].reshape(n_kinds + 1, n_kinds + 1)  # a view
    depth = [0] * (n + 2)
    for v in range(1, n + 2):
        target = kind[v] if v <= n else n_kinds  # node n+1: the block output
        for p in g.preds[v]:
            edges[kind[p], target] += 1
        depth[v] = 1 + max((depth[p] for p in g.preds[v]), default=0)
    x[-5:] = (n, g.edges, len(g.leaves), depth[n + 1], g.density)
    return x


@functools.lru_cache(maxsize=8)
def _index(kinds: tuple[tuple[int, int], ...]) -> dict[tuple[int, int], int]:
    return {k: i for i, k in enumerate(kinds)}


class Predictor:
    def __init__(self, ensemble: int, hidden: int, steps: int, lr: float, seed: int) -> None:
        self.ensemble, self.hidden, self.steps, self.lr, self.seed = ensemble, hidden, steps, lr, seed
        self.weights: dict[str, np.ndarray] = {}  # empty until the first fit

    @property
    def fitted(self) -> bool:
        return bool(self.weights)

    def fit(self, x: np.ndarray, y: np.ndarray, round_: int) -> None:
        """Refit every member from scratch on all (x, y) so far; `round_` seeds this refit."""
        x_mean, x_std = x.mean(0), x.std(0)
        x_std[x_std < 1e-8] = 1.0
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std
        rng = np.random.default_rng([self.seed, round_])
        folds = rng.permutation(len(x)) % self.ensemble
        members = [self._fit_one(xs[folds != e] if self.ensemble > 1 and len(x) >= 2 * self.ensemble else xs,
                                 ys[folds != e] if self.ensemble > 1 and len(x) >= 2 * self.ensemble else ys, rng)
                   for e in range(self.ensemble)]
        self.weights = {k: np.stack([m[k] for m in members]) for k in members[0]}
        self.weights.update(x_mean=x_mean, x_std=x_std, y_scale=np.array([y_mean, y_std]))

    def _fit_one(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        d, h = x.shape[1], self.hidden
        p = {"w1": rng.standard_normal((d, h)) * np.sqrt(2.0 / d), "b1": np.zeros(h),
             "w2": rng.standard_normal((h, h)) * np.sqrt(2.0 / h), "b2": np.zeros(h),
             "w3": rng.standard_normal((h, 1)) * np.sqrt(1.0 / h), "b3": np.zeros(1)}
        m = {k: np.zeros_like(v) for k, v in p.items()}
        v2 = {k: np.zeros_like(v) for k, v in p.items()}
        b1, b2, eps, n = 0.9, 0.999, 1e-8, len(x)
        y = y[:, None]
        for t in range(1, self.steps + 1):
            a1 = x @ p["w1"] + p["b1"]
            h1 = np.maximum(a1, 0)
            a2 = h1 @ p["w2"] + p["b2"]
            h2 = np.maximum(a2, 0)
            out = h2 @ p["w3"] + p["b3"]
            g_out = 2.0 * (out - y) / n  # mean squared error
            g = {"w3": h2.T @ g_out, "b3": g_out.sum(0)}
            g_a2 = (g_out @ p["w3"].T) * (a2 > 0)
            g["w2"], g["b2"] = h1.T @ g_a2, g_a2.sum(0)
            g_a1 = (g_a2 @ p["w2"].T) * (a1 > 0)
            g["w1"], g["b1"] = x.T @ g_a1, g_a1.sum(0)
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
                p[k] -= self.lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + eps)
        return p

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Mean predicted reward of each row of x."""
        w = self.weights
        xs = (x - w["x_mean"]) / w["x_std"]
        h1 = np.maximum(np.einsum("nd,edh->enh", xs, w["w1"]) + w["b1"][:, None, :], 0)
        h2 = np.maximum(np.einsum("enh,ehk->enk", h1, w["w2"]) + w["b2"][:, None, :], 0)
        out = np.einsum("enh,eho->eno", h2, w["w3"])[..., 0] + w["b3"]
        y_mean, y_std = w["y_scale"]
        return out.mean(0) * y_std + y_mean

    def state(self) -> dict[str, np.ndarray]:
        return {f"predictor_{k}": v for k, v in self.weights.items()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = {k[len("predictor_"):]: v for k, v in arrays.items() if k.startswith("predictor_")}
