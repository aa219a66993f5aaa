"""Q-learning vs random search vs PNAS, and Optuna's samplers, at an equal number of trained networks, over seeds.

    python bench/strategies.py                          # both parts below, seeds 0 1 2 (about 50 min here)
    python bench/strategies.py --only simulated --budget 300 1000 --seeds 0 1 2 3 4
    python bench/strategies.py --only simulated --budget 11392 --peer-cap 600
    python bench/strategies.py --only real --budget 32
    python -m bqnn.report runs/bench-strategies/real/qlearning-b32-s0 \\
        --compare runs/bench-strategies/real/random-b32-s0 \\
        --compare runs/bench-strategies/real/pnas-b32-s0   # the curves (best reward vs networks trained)

Every run is a real `bqnn.search` (this process, world size 1) writing
runs/bench-strategies/PART/STRATEGY-bBUDGET-sSEED.
Each strategy is scored on its first --budget trained networks (id order; repeats answered from the
cache and blocks rejected over limits cost nothing and are not counted): the best reward, the mean
of the 5 best, and the number of trainings until a fixed reward was first reached; printed per
strategy as the mean over seeds and as a ratio to random search (for trainings: random's count /
the strategy's, so > 1 means fewer trainings than random).

simulated: the simulated trainer (a deterministic, learnable accuracy; no training time) on a
  space small enough to enumerate (space.max_index 6, blocks of up to 5 layers): the known optimum is
  found by brute force over every block, and the fixed reward is the optimum minus --margin.
  Optuna's RandomSampler, TPESampler and multivariate TPESampler run beside them on the same space, reward
  and cache rule (bench/peers.py; skipped with one line when Optuna is not installed: `bqnn[peers]`), each
  within --peer-cap seconds. Budgets 300, 1,000 and the paper's 11,392 by default (there, Table 2 itself).
real: Fashion-MNIST, a 2,000-image subset at 14x14, networks with N = 1 and widths [8,16,32],
  2 epochs per candidate (space.max_index 6); the fixed reward is the 90th percentile of every reward
  trained in this part, all strategies and seeds pooled.

Budgets: PNAS trains the 8 one-layer blocks and then `beam` blocks per round for 3 rounds (blocks of
2 to 5 layers), so beam = (budget - 8) / 3; Q-learning and random search run a schedule shaped like
Table 2 (54 % of the iterations at epsilon 1, then 0.9 .. 0.1, at most 20 iterations) of about
budget x 1.5 candidates, enough for `budget` distinct trainings after repeats. With the same seed,
random search and Q-learning train the same blocks during the epsilon = 1 phase (Appendix A's
fairness), so they differ only after it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import PEERS, optuna_search, peers_missing
from searched import by_id, finished

from bqnn.config import load
from bqnn.strategies.qtable import PAPER_SCHEDULE
from bqnn.training.result import Status
from bqnn.training.simulated import known_optimum

STRATEGIES = ("random", "qlearning", "pnas")
COMMON = ["space.max_index=6", "network.blocks_per_stage=1", "network.filters=[8,16,32]"]
PARTS = {
    "simulated": ["trainer.kind=simulated"],
    "real": ["data.train_subset=2000", "data.val_size=500", "data.resize=14", "trainer.epochs=2",
             "trainer.batch_size=64", "trainer.lr_step=1"],
}


PAPER_BUDGET = 11_392  # 178 iterations x 64 blocks


def schedule(budget: int) -> tuple[int, str]:
    """(blocks per iteration, schedule). From the paper's budget up: Table 2 itself (178 iterations), with
    1.5 x budget / 178 blocks per iteration. Below: Table 2 scaled to about 1.5 x budget candidates in at most 20
    iterations: 95/178 of them at epsilon 1, the rest drawn evenly from Table 2's 83 later iterations
    (0.9 x 7, 0.8 x 7, ..., 0.1 x 12), so every run ends exploiting whatever its size."""
    candidates = int(budget * 1.5)
    if budget >= PAPER_BUDGET:
        return -(-candidates // 178), "[" + ", ".join(f"[{e}, {n}]" for e, n in PAPER_SCHEDULE) + "]"
    per_it = max(4, -(-candidates // 20))
    iters = -(-candidates // per_it)
    explore = round(iters * 95 / 178)
    later = [e for e, n in PAPER_SCHEDULE[1:] for _ in range(n)]
    picks = [later[round(i * (len(later) - 1) / max(1, iters - explore - 1))] for i in range(iters - explore)]
    stages: list[list] = [[1.0, explore]]
    for e in picks:
        if stages[-1][0] == e:
            stages[-1][1] += 1
        else:
            stages.append([e, 1])
    return per_it, "[" + ", ".join(f"[{e}, {n}]" for e, n in stages) + "]"


def run(out: Path, sets: list[str]) -> tuple[np.ndarray, int, float]:
    """One search: (its trained rewards in id order, candidates proposed, seconds of the search)."""
    state = finished(out, "/dev/null", sets)
    c = by_id(state.candidates)
    return c[(c["repeat"] == 0) & (c["status"] != Status.REJECTED)]["reward"], len(c), state.elapsed


_OPTIMA: dict[tuple[str, ...], tuple[float, set[str], int]] = {}


def scores(r: np.ndarray, budget: int, target: float) -> tuple[float, float, float]:
    r = r[:budget]
    hits = np.nonzero(r >= target)[0]
    return float(r.max()), float(np.sort(r)[-5:].mean()), float(hits[0] + 1) if len(hits) else np.nan


def part(name: str, seeds: list[int], budget: int, root: Path, margin: float, peer_cap: float) -> None:
    beam = max(1, (budget - 8) // 3)
    base = COMMON + PARTS[name]
    per_it, sched = schedule(budget)
    sets = {
        "random": ["search.strategy=random", f"search.blocks_per_iteration={per_it}", f"search.schedule={sched}"],
        "qlearning": ["search.strategy=qlearning", f"search.blocks_per_iteration={per_it}", f"search.schedule={sched}",
                      f"search.replay_samples={per_it}"],
        "pnas": ["search.strategy=pnas", "pnas.max_size=5", f"pnas.beam={beam}"],
    }
    t0 = time.perf_counter()
    runs = {(s, seed): run(root / name / f"{s}-b{budget}-s{seed}", base + sets[s] + [f"search.seed={seed}"])
            for seed in seeds for s in STRATEGIES}
    rewards = {k: v[0] for k, v in runs.items()}
    speed = {k: v[1] / max(v[2], 1e-9) for k, v in runs.items()}  # candidates proposed per second of search
    names = list(STRATEGIES)
    skipped = peers_missing() if name == "simulated" else "peers run on the simulated part only"
    capped = {}
    if skipped is None:
        cfg = load(None, base)
        for peer in PEERS:
            names.append(peer)
            for seed in seeds:
                r, proposals, seconds, _ = optuna_search(peer, seed, cfg, budget, peer_cap)
                rewards[(peer, seed)], speed[(peer, seed)] = r, proposals / max(seconds, 1e-9)
                capped[(peer, seed)] = len(r) < budget
    seconds = time.perf_counter() - t0
    if name == "simulated":
        if tuple(base) not in _OPTIMA:  # one brute force per space, whatever the budget
            _OPTIMA[tuple(base)] = known_optimum(load(None, base))
        best, _, distinct = _OPTIMA[tuple(base)]
        target = best - margin
        what = (f"known optimum {best:.3f} (brute force over {distinct:,} distinct blocks); "
                f"fixed reward = optimum - {margin}")
    else:
        pooled = np.concatenate([r[:budget] for r in rewards.values()])
        target = float(np.percentile(pooled, 90))
        what = f"fixed reward = 90th percentile of all {len(pooled)} trained rewards = {target:.3f}"
    print(f"\n{name}: budget {budget} trainings per run, seeds {seeds}, PNAS beam {beam}, Q-learning/random "
          f"{per_it} blocks x schedule {sched}; {what}; {seconds:.0f} s")
    if skipped:
        print(f"  ({skipped})")
    print(f"  {'strategy':<13} {'best':>8} {'top-5':>8} {'trainings to reach':>19} {'reached':>8} "
          f"{'best/rand':>10} {'top5/rand':>10} {'rand/trainings':>15} {'trained':>8} {'proposals/s':>12}")
    table = {}
    for s in names:
        per_seed = [scores(rewards[(s, seed)], budget, target) for seed in seeds]
        b, t5, n = (np.array(x) for x in zip(*per_seed, strict=False))
        # a run that never reached the target is counted at budget + 1 (a lower bound on its cost)
        n_counted = np.where(np.isnan(n), budget + 1, n)
        table[s] = (b.mean(), t5.mean(), n_counted.mean(), int(np.isfinite(n).sum()),
                    min(len(rewards[(s, seed)]) for seed in seeds), float(np.mean([speed[(s, x)] for x in seeds])))
    rb, rt5, rn = table["random"][:3]
    random_bound = table["random"][3] < len(seeds)  # random's count is then a lower bound
    for s in names:
        b, t5, n, reached, trained, per_s = table[s]
        bound = reached < len(seeds)
        ratio = f"{rn / n:.2f}"
        if s != "random" and (random_bound or bound):
            ratio = (">=" + ratio if random_bound and not bound
                     else "<=" + ratio if bound and not random_bound else "n/a")
        print(f"  {s:<13} {b:>8.3f} {t5:>8.3f} {('>' if bound else '') + f'{n:.1f}':>19} {reached:>5}/{len(seeds)} "
              f"{b / rb:>10.4f} {t5 / rt5:>10.4f} {ratio:>15} {min(trained, budget):>8} {per_s:>12.1f}")
    print("  (a run that never reached the fixed reward counts as budget + 1 trainings: '>' marks such means,"
          " and ratios built on them are bounds)")
    if any(capped.values()):
        short = sorted({p for (p, _), c in capped.items() if c})
        print(f"  (stopped by the {peer_cap:.0f} s time cap before {budget} trainings: {', '.join(short)}; "
              f"'trained' is the fewest any seed reached, and each is scored on what it trained)")
    print("  proposals/s: blocks proposed per second of the whole loop (bqnn: the search's wall time with the "
          "simulated trainer, checkpoints included; Optuna: ask, suggest, reward and tell)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(PARTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, nargs="+", default=[],
                   help="trainings per run, one table per budget (default: simulated 300 1000 11392, real 32)")
    p.add_argument("--peer-cap", type=float, default=300.0,
                   help="seconds each Optuna run may take (TPE's cost grows with its trials: at 11,392 it stops "
                        "at the cap)")
    p.add_argument("--margin", type=float, default=0.5, help="simulated: the fixed reward is the optimum minus this")
    p.add_argument("--out", default="runs/bench-strategies", help="where the runs are written (reused if present)")
    args = p.parse_args()
    print(f"bench/strategies.py, {time.strftime('%Y-%m-%d')}; runs in {args.out}")
    for name in ([args.only] if args.only else ["simulated", "real"]):
        for budget in args.budget or {"simulated": [300, 1000, PAPER_BUDGET], "real": [32]}[name]:
            part(name, args.seeds, budget, Path(args.out), args.margin, args.peer_cap)


if __name__ == "__main__":
    main()
