"""The report's figures (matplotlib, written as PNG; no display needed).

Used by `python -m bqnn.report DIR` (and `--compare DIR2`) through bqnn/results/files.py:
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

from ..blocks.code import NSC, OPS, Op
from ..blocks.graph import graph
from ..training.result import Status


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def running_top(per_iteration_rewards: list[np.ndarray], k: int) -> np.ndarray:
    """After each iteration, the mean of the k best rewards found so far (unique candidates as given)."""
    best: list[float] = []
    out = []
    for rewards in per_iteration_rewards:
        best = sorted(best + list(rewards), reverse=True)[:k]
        out.append(float(np.mean(best)))
    return np.array(out)


def search_figure(path: Path, iterations: np.ndarray, epsilon: np.ndarray, mean: np.ndarray, top1: np.ndarray,
                  top5: np.ndarray, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = iterations + 1
    ax.plot(x, mean, color="tab:blue", label="mean reward of the iteration")
    ax.plot(x, top1, color="tab:red", label="top-1 so far")
    ax.plot(x, top5, color="tab:orange", label="top-5 mean so far")
    stages = [0] + [i for i in range(1, len(epsilon)) if epsilon[i] != epsilon[i - 1]]
    for j, s in enumerate(stages):
        end = stages[j + 1] if j + 1 < len(stages) else len(epsilon)
        if j % 2:
            ax.axvspan(x[s] - 0.5, x[end - 1] + 0.5, color="0.92", zorder=0)
        ax.text((x[s] + x[end - 1]) / 2, 1.01, f"ε={epsilon[s]:g}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("iteration (batch)")
    ax.set_ylabel("reward")
    ax.set_title(title, pad=18)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def verify_figure(path: Path, reward: np.ndarray, verified: np.ndarray, early: np.ndarray, rho_reward: float,
                  rho_early: float) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(reward, verified, color="tab:red", label=f"redefined reward (Spearman {rho_reward:+.2f})")
    ax.scatter(early, verified, color="tab:gray", marker="x", label=f"early-stop accuracy (Spearman {rho_early:+.2f})")
    ax.set_xlabel("early-stop reward / accuracy")
    ax.set_ylabel("verified accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("early stop vs verification")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rung_figure(path: Path, rungs: tuple[int, ...], epochs: int, rows: np.ndarray, cutoffs: list[float | None],
                limit: int = 2000) -> Path:
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_figure(path: Path, runs: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    """runs: (label, best reward after each training, mean of the 5 best after each training).
    The x axis is the number of networks trained (what a GPU budget buys), so strategies whose
    iterations differ in size (PNAS rounds) compare fairly."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    for i, (label, top1, top5) in enumerate(runs):
        color = colors[i % len(colors)]
        x = np.arange(1, len(top1) + 1)
        ax.plot(x, top1, color=color, label=f"{label} top-1")
        ax.plot(x, top5, color=color, linestyle="--", label=f"{label} top-5")
    ax.set_xlabel("networks trained")
    ax.set_ylabel("reward")
    ax.set_title("best blocks found so far")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(nsc: NSC, i: int) -> str:
    layer = nsc[i - 1]
    spec = OPS[Op(layer.type)]
    return f"{spec.short},{layer.kernel}" if spec.kernels != (0,) else spec.short


def _dot(nsc: NSC) -> str:
    g = graph(nsc)
    n = g.n_layers
    lines = ["digraph block {", "  rankdir=TB; node [shape=box, style=rounded, fontname=Helvetica];",
             '  n0 [label="Input", shape=ellipse];',
             f'  n{n + 1} [label="{"Concat" if len(g.leaves) > 1 else "Output"}", shape=ellipse];']
    lines += [f'  n{i} [label="{_label(nsc, i)}"];' for i in range(1, n + 1)]
    lines += [f"  n{p} -> n{v};" for v in range(1, n + 2) for p in g.preds[v]]
    return "\n".join(lines + ["}"])


def block_figure(path: Path, nsc: NSC, title: str = "") -> Path:
    """The block's DAG: Graphviz if `dot` is on PATH, else a layered drawing with matplotlib."""
    if shutil.which("dot"):
        r = subprocess.run(["dot", "-Tpng", "-o", str(path)], input=_dot(nsc), text=True, capture_output=True)
        if r.returncode == 0:
            return path
    g = graph(nsc)
    n = g.n_layers
    depth = [0] * (n + 2)
    for v in range(1, n + 2):
        depth[v] = 1 + max(depth[p] for p in g.preds[v])
    levels: dict[int, list[int]] = {}
    for v in range(n + 2):
        levels.setdefault(depth[v], []).append(v)
    pos = {v: ((k + 1) / (len(vs) + 1), -d) for d, vs in levels.items() for k, v in enumerate(vs)}
    labels = {0: "Input", n + 1: "Concat" if len(g.leaves) > 1 else "Output",
              **{i: _label(nsc, i) for i in range(1, n + 1)}}
    plt = _plt()
    height = max(3.0, 0.8 * (max(depth) + 1))
    fig, ax = plt.subplots(figsize=(max(3.5, 1.3 * max(len(v) for v in levels.values())), height))
    for v in range(1, n + 2):
        for p in g.preds[v]:
            ax.annotate("", xy=pos[v], xytext=pos[p],
                        arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=12, shrinkB=12))
    for v, (x, y) in pos.items():
        ax.text(x, y, labels[v], ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#fde2c8" if 0 < v <= n else "#dddddd", ec="0.3"))
    ax.set_xlim(0, 1)
    ax.set_ylim(-max(depth) - 0.6, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
