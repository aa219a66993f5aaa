"""The agent's cost for a whole paper-scale search: 178 iterations x 64 blocks, replay included.

    python bench/agent.py
    python bench/agent.py --candidate-seconds 1.2    # also the ratio to one candidate's training

Runs the Q-learning strategy exactly as the master drives it (propose 64, observe 64, end the
iteration with 64 replayed blocks) on the paper's space (max index 23) and schedule, with a
synthetic reward (a fixed function of the code, costing nothing), and times only the strategy's
calls. Prints the total and per-iteration seconds, the Q-table's size, and the ratio of the agent's
total to one candidate's training time: the paper's (3 days x 32 GPUs / 11,392 blocks = 12.1
GPU-minutes, 4.9 candidates per GPU-hour) and, with --candidate-seconds, a measured one (bench/trainer.py prints it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bqnn.config import load
from bqnn.strategies import make_strategy

PAPER_CANDIDATE_SECONDS = 3 * 24 * 3600 * 32 / 11392


def synthetic(nsc) -> float:
    convs = sum(1 for layer in nsc if layer.type == 1)
    joins = sum(1 for layer in nsc if layer.type in (5, 6))
    return 40.0 + 4.0 * min(convs, 6) + 3.0 * min(joins, 2) - 0.8 * max(0, len(nsc) - 10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidate-seconds", type=float, default=0.0)
    args = p.parse_args()
    cfg = load(None, [])  # the paper's defaults: 178 iterations x 64, alpha 0.01, replay 64, max index 23
    strategy = make_strategy(cfg)
    n = cfg.search.blocks_per_iteration
    per_iteration = []
    agent_time = 0.0
    for it in range(strategy.total_iterations):
        t0 = time.perf_counter()
        blocks = strategy.propose(it, n)
        t1 = time.perf_counter()
        rewards = [synthetic(b) for b in blocks]  # not agent work: not timed
        t2 = time.perf_counter()
        for b, r in zip(blocks, rewards, strict=False):
            strategy.observe(b, r)
        strategy.end_iteration(it)
        t3 = time.perf_counter()
        per_iteration.append((t1 - t0) + (t3 - t2))
        agent_time += per_iteration[-1]
    q = strategy.table.q
    pairs = sum(len(r) for r in q.values())
    print(f"bench/agent.py: {strategy.total_iterations} iterations x {n} blocks ({strategy.total_iterations * n} "
          f"blocks, {strategy.table.updates} Q-updates with replay) on max index {cfg.space.max_index}")
    mean_ms = 1e3 * agent_time / len(per_iteration)
    print(f"agent total {agent_time:.2f} s on one core; per iteration mean {mean_ms:.1f} ms, "
          f"max {1e3 * max(per_iteration):.1f} ms")
    print(f"Q-table: {len(q)} states, {pairs} state-action pairs (space bound {strategy.space.size_hint}); "
          f"replay memory {len(strategy.table.memory)} blocks")
    print(f"agent total / one paper candidate ({PAPER_CANDIDATE_SECONDS / 60:.1f} GPU-min): "
          f"{agent_time / PAPER_CANDIDATE_SECONDS:.5f}")
    if args.candidate_seconds:
        print(f"agent total / one measured candidate ({args.candidate_seconds:g} s): "
              f"{agent_time / args.candidate_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
