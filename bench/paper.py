"""The papers' claims, one command each: bqnn's figure beside the paper's, as a ratio.

    python bench/paper.py --help                      # the claims
    python bench/paper.py appendix-a                  # one claim, simulated trainer, paper scale, seeds 0 1 2
    python bench/paper.py all                         # every claim (about 5 min here)
    python bench/paper.py fig8a --real                # also on real Fashion-MNIST at the demo's scale (minutes)
    python bench/paper.py all --table bench/data/landscape.h5 --explore uniform by_type  # also on the table

Every run is a real `bqnn.search` (this process, world size 1) of a paper job (jobs/cifar100_paper.toml,
jobs/cifar100_paper_L.toml, jobs/cifar100_aaai.toml) with `trainer.kind=simulated`: all 178 iterations of
64 blocks, the paper's space and schedule, with the simulated trainer's accuracy (training/simulated.py: a
deterministic function of the block, learnable, not CIFAR-100's). With --real, each claim also runs on
Fashion-MNIST at jobs/demo.toml's scale (13 iterations of 16 blocks, 2 epochs per block), the same switches.
Runs land in runs/bench-paper/PART/JOB-KEY-sSEED (KEY: a digest of the switches, so claims share runs) and are
reused when present. Each claim writes
runs/bench-paper/PART/CLAIM.png, drawn like the paper's figure, and prints its figures: the mean over seeds,
the paper's figure, and their ratio.

What is compared is early-stop accuracy, as the papers' figures plot it (the reward steers the agent; the
figures show accuracy). With --table, Appendix A, Fig. 8(a) and Appendix B also run on the landscape table
(docs/landscape.md: real Fashion-MNIST trainings of every block of the demo's space at max_index 5) at the
table's scale: jobs/landscape.toml's space and recipe answered by `trainer.kind = "table"`, the CVPR job's
search (Table 2's 178 iterations, alpha 0.01, shaped reward, replay) with 8 blocks per iteration (1,424
candidates for 2,357 blocks; the paper's 11,392 were a sliver of its space). --explore runs every part once
per rule of drawing a random action (search.explore; the job's own rule when not given). "Top-k so far" is over
distinct trained blocks. The exploitation phase is every iteration after the epsilon = 1 stage.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from searched import by_id, finished  # noqa: E402

from bqnn.blocks.code import format_nsc, from_array  # noqa: E402
from bqnn.config import load  # noqa: E402
from bqnn.training.result import Status  # noqa: E402

JOBS = {"cvpr": ROOT / "jobs" / "cifar100_paper.toml", "L": ROOT / "jobs" / "cifar100_paper_L.toml",
        "aaai": ROOT / "jobs" / "cifar100_aaai.toml", "demo": ROOT / "jobs" / "demo.toml",
        "landscape": ROOT / "jobs" / "landscape.toml"}
MEDIAN_AT = (1, 30, 60, 90, 110, 130, 150, 170)  # Appendix B's iterations (1-based)
PAPER_EXPLORE, PAPER_ITERATIONS = 95, 178  # Table 2: iterations at epsilon 1, in all


@dataclass
class Run:
    """One finished search, per iteration (0-based)."""

    epsilon: np.ndarray  # per iteration
    mean_acc: np.ndarray  # mean early-stop accuracy of the iteration's candidates (repeats included)
    top1: np.ndarray  # best accuracy among distinct trained blocks so far
    top5: np.ndarray  # mean of the 5 best so far
    rows: np.ndarray  # the candidates, id order

    @property
    def explore_end(self) -> int:
        return int(np.argmax(self.epsilon < 1.0)) if (self.epsilon < 1.0).any() else len(self.epsilon)


def search(out: Path, job: Path, sets: list[str]) -> Run:
    c = by_id(finished(out, job, sets).candidates)
    its = sorted(set(c["iteration"].tolist()))
    eps, mean, top1, top5, best = [], [], [], [], []
    for it in its:
        rows = c[c["iteration"] == it]
        ok = rows[rows["status"] == Status.OK]
        eps.append(float(rows["epsilon"][0]))
        mean.append(float(ok["accuracy"].mean()) if len(ok) else np.nan)
        fresh = ok[ok["repeat"] == 0]["accuracy"].tolist()
        best = sorted(best + fresh, reverse=True)[:5]
        top1.append(best[0] if best else np.nan)
        top5.append(float(np.mean(best)) if best else np.nan)
    return Run(np.array(eps), np.array(mean), np.array(top1), np.array(top5), c)


# ---------------------------------------------------------------- the claims


@dataclass
class Claim:
    title: str  # what the paper says
    paper: str  # the paper's figure, as text
    paper_value: float | None  # the number the ratio is taken against
    runs: dict[str, tuple[str, list[str]]]  # label -> (job, --set overrides)
    measure: Callable[[dict[str, list[Run]]], tuple[float, str]]  # (the figure, how it reads)
    draw: str  # "versus" (curves of each label) or "mean" (Fig. 8(a)) or "none"


def _exploit(series: np.ndarray, start: int) -> float:
    """Mean of a per-iteration series over the exploitation phase (from iteration `start` on)."""
    return float(np.nanmean(series[start:]))


def _versus(a: str, b: str, series: str) -> Callable[[dict[str, list[Run]]], tuple[float, str]]:
    def measure(runs: dict[str, list[Run]]) -> tuple[float, str]:
        end = [float(getattr(x, series)[-1] - getattr(y, series)[-1]) for x, y in zip(runs[a], runs[b], strict=True)]
        # the phase as the learning run's schedule has it (random search records epsilon 1 throughout)
        phase = [_exploit(getattr(x, series), x.explore_end) - _exploit(getattr(y, series), x.explore_end)
                 for x, y in zip(runs[a], runs[b], strict=True)]
        explore = [float(np.nanmean(getattr(x, series)[: x.explore_end])
                         - np.nanmean(getattr(y, series)[: x.explore_end]))
                   for x, y in zip(runs[a], runs[b], strict=True)]
        t1 = [float(x.top1[-1] - y.top1[-1]) for x, y in zip(runs[a], runs[b], strict=True)]
        return float(np.mean(end)), (f"{a} - {b}, {series} at the end: {np.mean(end):+.2f} points (per seed "
                                     f"{', '.join(f'{v:+.2f}' for v in end)}); over the exploration phase "
                                     f"{np.mean(explore):+.2f}, over the exploitation phase "
                                     f"{np.mean(phase):+.2f}; best block {np.mean(t1):+.2f}")
    return measure


def _fig8a(runs: dict[str, list[Run]]) -> tuple[float, str]:
    rs = runs["BlockQNN"]
    explore = [float(np.nanmean(r.mean_acc[: r.explore_end])) for r in rs]
    last = [float(np.nanmean(r.mean_acc[r.epsilon == r.epsilon.min()])) for r in rs]
    gain = float(np.mean(last) - np.mean(explore))
    return gain, (f"mean early-stop accuracy {np.mean(explore):.1f} % at epsilon 1, {np.mean(last):.1f} % at the "
                  f"last epsilon ({gain:+.1f} points; the paper: 56 % -> 65 %, +9)")


def _scaled(paper_it: int, n: int, explore_end: int) -> int:
    """The 0-based iteration of a run of `n` iterations (exploration ends at `explore_end`) that stands where the
    paper's 1-based iteration `paper_it` stands in its own schedule (each phase scaled on its own, so an
    exploration point stays in exploration); the identity on a run with the paper's schedule."""
    if paper_it <= PAPER_EXPLORE:
        return min(explore_end - 1, (paper_it - 1) * explore_end // PAPER_EXPLORE)
    late = (paper_it - 1 - PAPER_EXPLORE) * (n - explore_end) // (PAPER_ITERATIONS - PAPER_EXPLORE)
    return min(n - 1, explore_end + late)


def _median_blocks(runs: dict[str, list[Run]]) -> tuple[float, str]:
    lines, early, late = [], [], []
    for seed, r in enumerate(runs["BlockQNN"]):
        for paper_it in MEDIAN_AT:
            it = _scaled(paper_it, len(r.epsilon), r.explore_end)
            rows = r.rows[(r.rows["iteration"] == it) & (r.rows["status"] == Status.OK)]
            if not len(rows):
                continue
            med = rows[np.argsort(rows["accuracy"], kind="stable")[len(rows) // 2]]
            nsc = from_array(med["nsc"], med["nsc"].shape[0])
            layers = len(nsc) - 1
            (early if it < r.explore_end else late).append(layers)
            if seed == 0:
                lines.append(f"    iteration {it + 1:>3} (the paper's {paper_it:>3}): {med['accuracy']:5.1f} %  "
                             f"{layers} layers  {format_nsc(nsc)}")
    if not early or not late:
        raise SystemExit("bench/paper.py: appendix-b needs median blocks of both phases; the run has "
                         f"{len(early)} exploration and {len(late)} exploitation iterations at the paper's points")
    ratio = float(np.mean(late) / np.mean(early))
    return ratio, (f"median blocks have {np.mean(early):.1f} layers in exploration, {np.mean(late):.1f} in "
                   f"exploitation (ratio {ratio:.2f}); seed 0's:\n" + "\n".join(lines))


SIM = ["trainer.kind=simulated"]
CLAIMS: dict[str, Claim] = {
    "appendix-a": Claim("Appendix A, Fig. 10: BlockQNN beats random search (same exploration phase) by over 1 % in "
                        "the exploitation phase, best and top-5 mean", "> +1 point (top-5 mean)", 1.0,
                        {"BlockQNN": ("cvpr", ["search.strategy=qlearning"]),
                         "RS": ("cvpr", ["search.strategy=random"])}, _versus("BlockQNN", "RS", "top5"), "versus"),
    "fig11": Claim("Fig. 11: BlockQNN-L beats RS-L (10M parameters, adaptive N) by over 1 % in the exploitation "
                   "phase", "> +1 point (top-5 mean)", 1.0,
                   {"BlockQNN-L": ("L", ["search.strategy=qlearning"]), "RS-L": ("L", ["search.strategy=random"])},
                   _versus("BlockQNN-L", "RS-L", "top5"), "versus"),
    "fig5": Claim("Fig. 5: the shaped intermediate reward (eq. 6) converges faster than none, from the same "
                  "exploration", "shaped above none (no number given)", None,
                  {"shaped": ("cvpr", ["search.intermediate_reward=shaped"]),
                   "no shaping": ("cvpr", ["search.intermediate_reward=zero"])},
                  _versus("shaped", "no shaping", "mean_acc"), "versus"),
    "aaai-fig6": Claim("AAAI Fig. 6: eq. 2 (the reward at every layer's update) converges faster than MetaQNN's "
                       "update", "eq. 2 above MetaQNN's (no number given)", None,
                       {"eq. 2": ("aaai", ["search.intermediate_reward=accuracy"]),
                        "MetaQNN": ("aaai", ["search.intermediate_reward=zero"])},
                       _versus("eq. 2", "MetaQNN", "mean_acc"), "versus"),
    "fig9": Claim("Fig. 9 (AAAI Fig. 3): searching the PCC is better than searching ReLU, BN and convolution as "
                  "separate layers, from the beginning, with a big gap",
                  "PCC above separate from the start (no number)", None,
                  {"PCC": ("cvpr", ["search.strategy=qlearning"]),
                   "separate": ("cvpr", ["search.strategy=qlearning", "space.layers=separate"])},
                  _versus("PCC", "separate", "mean_acc"), "versus"),
    "fig8a": Claim("Fig. 8(a): the mean early-stop accuracy per iteration rises as epsilon falls, 56 % in "
                   "exploration to 65 % at epsilon 0.1", "+9 points (56 % -> 65 %)", 9.0,
                   {"BlockQNN": ("cvpr", ["search.strategy=qlearning"])}, _fig8a, "mean"),
    "appendix-b": Claim("Appendix B, Fig. 12: median blocks of the exploitation stage are more complex than those "
                        "of the random exploration", "more layers later (drawn, no number)", None,
                        {"BlockQNN": ("cvpr", ["search.strategy=qlearning"])}, _median_blocks, "none"),
}
REAL = ["data.dataset=fashion-mnist"]  # the demo's data and scale; the claim's switches on top
TABLE_CLAIMS = ("appendix-a", "fig8a", "appendix-b")  # the claims of the CVPR job's own space and reward
TABLE_PER_ITERATION = 8


def table_sets(path: Path) -> list[str]:
    """The CVPR job's search on jobs/landscape.toml's space, answered by the table at `path`."""
    cvpr = load(JOBS["cvpr"]).search
    schedule = "[" + ", ".join(f"[{e}, {n}]" for e, n in cvpr.schedule) + "]"
    return ["trainer.kind=table", f"trainer.table={path}", "pruning.record=false", "search.checkpoint_interval=3600",
            f"search.blocks_per_iteration={TABLE_PER_ITERATION}", f"search.schedule={schedule}",
            f"search.alpha={cvpr.alpha}", f"search.gamma={cvpr.gamma}", f"search.updates={cvpr.updates}",
            f"search.intermediate_reward={cvpr.intermediate_reward}", f"search.replay_samples={TABLE_PER_ITERATION}"]


def draw(path: Path, claim: Claim, runs: dict[str, list[Run]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rs in runs.items():
        n = min(len(r.mean_acc) for r in rs)
        x = np.arange(1, n + 1)
        if claim.draw == "mean":
            ax.plot(x, np.nanmean([r.mean_acc[:n] for r in rs], axis=0), label=f"{label}: mean per iteration")
            ax.plot(x, np.nanmean([r.top5[:n] for r in rs], axis=0), label=f"{label}: top-5 so far")
        else:
            series = "mean_acc" if claim.paper.startswith(("shaped", "eq. 2", "PCC")) else "top5"
            ax.plot(x, np.nanmean([getattr(r, series)[:n] for r in rs], axis=0),
                    label=f"{label}: {'mean per iteration' if series == 'mean_acc' else 'top-5 so far'}")
    first = next(iter(runs.values()))[0]
    ax.axvline(first.explore_end + 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("iteration (64 blocks each)" if len(first.epsilon) > 100 else "iteration")
    ax.set_ylabel("early-stop accuracy (%)")
    ax.set_title(claim.title[:90], fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_claim(name: str, part: str, seeds: list[int], root: Path, explore: str | None = None,
              table: Path | None = None, table_job: Path = JOBS["landscape"]) -> None:
    claim = CLAIMS[name]
    t0 = time.perf_counter()
    runs: dict[str, list[Run]] = {}
    for label, (job, sets) in claim.runs.items():
        job_name = {"real": "demo", "table": "landscape"}.get(part, job)
        extra = REAL if part == "real" else table_sets(table) if part == "table" and table else SIM
        if part == "real" and job == "aaai":  # the AAAI reward and update rule on the demo's scale
            extra = REAL + ["reward.preset=aaai", "search.replay_samples=32"]
        if part == "real" and job == "L":  # a parameter limit that binds the demo's narrow networks
            extra = REAL + ["limits.params=20000", "network.blocks_per_stage=2"]
        if explore:
            extra = extra + [f"search.explore={explore}"]
        contents = ([hashlib.sha256(table.read_bytes()).hexdigest(), str(table_job)] if part == "table" and table
                    else [])
        key = hashlib.sha256(" ".join([job_name, *extra, *sets, *contents]).encode()).hexdigest()[:10]  # shared
        job_path = table_job if part == "table" else JOBS[job_name]
        runs[label] = [search(root / part / f"{job_name}-{key}-s{seed}", job_path,
                              extra + sets + [f"search.seed={seed}"]) for seed in seeds]
    value, text = claim.measure(runs)
    figure = root / part / (f"{name}-{explore}.png" if explore else f"{name}.png")
    if claim.draw != "none":
        draw(figure, claim, runs)
    ratio = (f"{value / claim.paper_value:.2f}" if claim.paper_value else "n/a")
    how = f"{part}, explore {explore}" if explore else part
    print(f"\n{name} ({how}, seeds {seeds}, {time.perf_counter() - t0:.0f} s): {claim.title}\n"
          f"  bqnn: {text}\n  paper: {claim.paper}; ratio bqnn / paper: {ratio}"
          + (f"\n  figure: {figure}" if claim.draw != "none" else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="claims: " + "; ".join(f"{k}: {c.title}" for k, c in CLAIMS.items()))
    p.add_argument("claim", choices=[*CLAIMS, "all"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--real", action="store_true", help="also on Fashion-MNIST at the demo's scale")
    p.add_argument("--real-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--table", type=Path, help=f"also on this landscape table ({', '.join(TABLE_CLAIMS)})")
    p.add_argument("--table-seeds", type=int, nargs="+", default=list(range(20)))
    p.add_argument("--table-job", type=Path, default=JOBS["landscape"], help="the table's recipe as a job file")
    p.add_argument("--explore", nargs="+", choices=("uniform", "by_type"),
                   help="run each part once per rule of drawing a random action (default: the job's own)")
    p.add_argument("--parts", nargs="+", choices=("simulated", "real", "table"),
                   help="which parts run (default: simulated, and real / table when --real / --table is given)")
    p.add_argument("--out", default="runs/bench-paper")
    args = p.parse_args()
    parts = args.parts or ["simulated"] + (["real"] if args.real else []) + (["table"] if args.table else [])
    if "table" in parts and not args.table:
        p.error("--parts table needs --table PATH")
    if "table" in parts:
        from bqnn.landscape.table import Table, TableError

        try:
            Table.read(args.table)  # a missing or damaged table is one line before anything runs
        except TableError as e:
            p.exit(2, f"bench/paper.py: error: {e}\n")
    load(JOBS["cvpr"])  # the jobs parse before anything runs
    print(f"bench/paper.py, {time.strftime('%Y-%m-%d')}; runs in {args.out}")
    for name in CLAIMS if args.claim == "all" else [args.claim]:
        for explore in args.explore or [None]:
            if "simulated" in parts:
                run_claim(name, "simulated", args.seeds, Path(args.out), explore)
            if "real" in parts:
                run_claim(name, "real", args.real_seeds, Path(args.out), explore)
            if "table" in parts and name in TABLE_CLAIMS:
                run_claim(name, "table", args.table_seeds, Path(args.out), explore, args.table, args.table_job)


if __name__ == "__main__":
    main()
