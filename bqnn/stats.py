"""Small statistics shared by the report, the PNAS predictor and the benches; numpy only.

Used as a library: `from bqnn.stats import spearman`.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float | None:
    """Spearman rank correlation (average ranks for ties); None for fewer than two points or a constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2:
        return None

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])
