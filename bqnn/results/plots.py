"""The report's figures (matplotlib, written as PNG; no display needed).

Used by `python -m bqnn.report DIR` (and `--compare DIR2`) through bqnn/results/files.py; each `*_plot` returns the
matplotlib figure (tests look at what it draws), `save` writes it:
- search.png: the paper's Fig. 8(a): mean reward per iteration, and the best (top-1) and the mean of
  the five best (top-5) rewards found so far, with the epsilon stages marked;
- verify.png: early-stop reward against verified accuracy for the verified blocks (Fig. 6's question);
- blocks/rank-KKK.png: each top block's DAG (Graphviz `dot` if installed, else a layered matplotlib drawing);
- compare.png: Appendix A's figure: top-1 and top-5 curves of two runs (Q-learning vs random search).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..blocks.code import NSC
from ..blocks.drawing import drawing
from ..training.result import Status


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def _integer_ticks(axis, lo: float, hi: float) -> None:
    """Whole-number ticks between lo and hi: each one when there are few (a locator's "integer" still falls back to
    fractions on a span under one), else a whole-number locator."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    first, last = int(np.ceil(lo)), int(np.floor(hi))
    if last - first <= 20:
        axis.set_major_locator(FixedLocator(list(range(first, last + 1))))
    else:
        axis.set_major_locator(MaxNLocator(integer=True))


def _pad(ax, values: np.ndarray) -> None:
    """A y range that shows what the data are: at least 2 points of reward around a single value (matplotlib's own
    default is +-4 % of it, which reads as a scale of 0.96-1.04)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) and v.max() - v.min() < 2.0:
        mid = (v.max() + v.min()) / 2
        ax.set_ylim(mid - 1.5, mid + 1.5)


def running_top(per_iteration_rewards: list[np.ndarray], k: int) -> np.ndarray:
    """After each iteration, the mean of the k best rewards found so far (unique candidates as given); NaN while
    fewer than k exist (a top-k of fewer would dip as blocks arrive)."""
    best: list[float] = []
    out = []
    for rewards in per_iteration_rewards:
        best = sorted(best + list(rewards), reverse=True)[:k]
        out.append(float(np.mean(best)) if len(best) == k else np.nan)
    return np.array(out)


def search_plot(iterations: np.ndarray, epsilon: np.ndarray, mean: np.ndarray, top1: np.ndarray, top5: np.ndarray,
                title: str):
    """The paper's Fig. 8(a): mean reward per iteration, best and top-5 so far, the epsilon stages; markers, so an
    iteration alone is a point, and whole-number iterations."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = iterations + 1
    small = dict(marker="o", markersize=3 if len(x) > 30 else 5)
    ax.plot(x, mean, color="tab:blue", label="mean reward of the iteration", **small)
    ax.plot(x, top1, color="tab:red", label="top-1 so far", **small)
    if np.isfinite(top5).any():
        ax.plot(x, top5, color="tab:orange", label="top-5 mean so far (from 5 blocks on)", **small)
    stages = [0] + [i for i in range(1, len(epsilon)) if epsilon[i] != epsilon[i - 1]]
    for j, s in enumerate(stages):
        end = stages[j + 1] if j + 1 < len(stages) else len(epsilon)
        if j % 2:
            ax.axvspan(x[s] - 0.5, x[end - 1] + 0.5, color="0.92", zorder=0)
        ax.text((x[s] + x[end - 1]) / 2, 1.01, f"ε={epsilon[s]:g}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    _integer_ticks(ax.xaxis, x[0] - 0.5, x[-1] + 0.5)
    _pad(ax, np.concatenate([mean, top1]))
    ax.set_xlabel("iteration (batch)")
    ax.set_ylabel("reward")
    ax.set_title(title + (f" ({len(x)} iteration{'s' if len(x) > 1 else ''} complete)"), pad=18)
    ax.legend(loc="lower right", fontsize=8)
    return fig


MIN_FOR_SPEARMAN = 3


def verify_plot(reward: np.ndarray, verified: np.ndarray, early: np.ndarray, rho_reward: float | None,
                rho_early: float | None):
    """Early-stop reward and accuracy against verified accuracy; a rank correlation only from 3 blocks on."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    enough = len(verified) >= MIN_FOR_SPEARMAN

    def name(what: str, rho: float | None) -> str:
        return f"{what} (Spearman {rho:+.2f})" if enough and rho is not None else what

    ax.scatter(reward, verified, color="tab:red", label=name("redefined reward", rho_reward))
    ax.scatter(early, verified, color="tab:gray", marker="x", label=name("early-stop accuracy", rho_early))
    ax.set_xlabel("early-stop reward / accuracy")
    ax.set_ylabel("verified accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title(f"early stop vs verification ({len(verified)} block{'s' if len(verified) != 1 else ''}"
                 + ("" if enough else f"; no correlation from fewer than {MIN_FOR_SPEARMAN}") + ")")
    return fig


def rung_plot(rungs: tuple[int, ...], epochs: int, rows: np.ndarray, cutoffs: list[float | None],
              limit: int = 2000):
    """Each trained candidate's validation accuracy at the pruning rungs and, when trained to the end, its final
    accuracy; pruned ones grey, ending in an x at their rung; the rule's current cut-offs in red. At most `limit`
    candidates, evenly spaced in id order."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    step = max(1, len(rows) // limit)
    alpha = min(0.6, max(0.03, 30.0 / max(1, len(rows) // step)))
    for row in rows[::step]:
        reached = [(e, float(a)) for e, a in zip(rungs, row["rungs"], strict=False) if a >= 0]
        pruned = int(row["status"]) == Status.PRUNED
        if not pruned:
            reached.append((epochs, float(row["accuracy"])))
        if not reached:
            continue
        x, y = zip(*reached, strict=True)
        ax.plot(x, y, color="tab:gray" if pruned else "tab:blue", alpha=alpha, lw=0.8,
                marker="x" if pruned else None, markevery=[len(x) - 1] if pruned else None)
    for e, cut in zip(rungs, cutoffs, strict=True):
        if cut is not None:
            ax.plot([e - 0.3, e + 0.3], [cut, cut], color="tab:red", lw=2.5)
    ax.plot([], [], color="tab:blue", label="trained to the end")
    ax.plot([], [], color="tab:gray", marker="x", label="pruned at a rung")
    ax.plot([], [], color="tab:red", lw=2.5, label="cut-off now")
    ax.set_xticks(sorted(set(rungs) | {epochs}))
    ax.set_xlabel("epochs")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"candidates' curves at the pruning rungs ({len(rows[::step])} of {len(rows)} shown)")
    ax.legend(fontsize=8)
    return fig


def compare_plot(runs: list[tuple[str, np.ndarray, np.ndarray]], note: str = ""):
    """runs: (label, best reward after each training, mean of the 5 best after each training; NaN until 5 exist).
    The x axis is the number of networks trained (what a GPU budget buys), so strategies whose iterations differ in
    size (PNAS rounds) compare fairly. `note`: what differs between the runs beyond the search (their data, epochs:
    then their rewards are not comparable, and the figure says so)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    for i, (label, top1, top5) in enumerate(runs):
        color = colors[i % len(colors)]
        x = np.arange(1, len(top1) + 1)
        ax.plot(x, top1, color=color, label=f"{label} top-1", marker="o" if len(x) < 30 else None, markersize=4)
        if np.isfinite(top5).any():
            ax.plot(x, top5, color=color, linestyle="--", label=f"{label} top-5")
    longest = max((len(top1) for _, top1, _ in runs), default=1)
    ax.set_xlim(0.5, longest + 0.5)
    _integer_ticks(ax.xaxis, 0.5, longest + 0.5)
    ax.set_xlabel("networks trained")
    ax.set_ylabel("reward")
    ax.set_title("best blocks found so far" + (f"\nnot comparable: {note}" if note else ""),
                 color="tab:red" if note else "black", fontsize=10 if note else 12)
    ax.legend(fontsize=8)
    return fig


def _dot(nsc: NSC) -> str:
    d = drawing(nsc)
    shape = {"input": "ellipse", "output": "ellipse", "layer": "box"}
    lines = ["digraph block {", "  rankdir=TB; node [style=rounded, fontname=Helvetica];"]
    lines += [f'  n{v.id} [label="{v.label}", shape={shape[v.kind]}];' for v in d.nodes]
    lines += [f"  n{a} -> n{b};" for a, b in d.edges]
    return "\n".join(lines + ["}"])


def block_plot(nsc: NSC, title: str = ""):
    """The block's layered drawing (blocks/drawing.py: the same the dashboard draws), each layer with its index."""
    d = drawing(nsc)
    at = {v.id: v for v in d.nodes}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.5, 1.6 * d.width), max(3.0, 0.8 * d.rows)))
    for a, b in d.edges:
        ax.annotate("", xy=(at[b].x, -at[b].row), xytext=(at[a].x, -at[a].row),
                    arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=12, shrinkB=12))
    for v in d.nodes:
        ax.text(v.x, -v.row, v.label, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#fde2c8" if v.kind == "layer" else "#dddddd", ec="0.3"))
    half = max(0.8, d.width / 2)
    ax.set_xlim(-half, half)
    ax.set_ylim(-d.rows + 0.4, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def block_figure(path: Path, nsc: NSC, title: str = "") -> Path:
    """The block's DAG: Graphviz if `dot` is on PATH (with the same labels), else the layered matplotlib drawing."""
    if shutil.which("dot"):
        r = subprocess.run(["dot", "-Tpng", "-o", str(path)], input=_dot(nsc), text=True, capture_output=True)
        if r.returncode == 0:
            return path
    return save(block_plot(nsc, title), path, dpi=100)
