"""Write and read time and size of a paper-scale search.h5: 11,392 candidates, full Q-table and replay.

    python bench/checkpoint.py

Builds the state by running the paper's schedule (178 x 64, max index 23) with the simulated
trainer (zero-time tasks) in one process without checkpoints, then times the master's snapshot of
its state, the atomic write (part file, fsync, link to .bak, rename) and a full read, each 5 times
(median), and prints the file's size.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bqnn.config import load
from bqnn.run import checkpoint
from bqnn.run.executor import InlineExecutor
from bqnn.run.master import Master
from bqnn.signals import StopFlag
from bqnn.training.simulated import SimulatedTrainer


def main() -> int:
    cfg = load(None, ["trainer.kind=simulated"])
    out = Path(tempfile.mkdtemp(prefix="bqnn-bench-"))
    stop = StopFlag()
    master = Master(cfg, out, InlineExecutor(SimulatedTrainer(cfg), stop), stop, log=lambda s: None)
    master.save = lambda: None  # only the timed writes below
    t0 = time.perf_counter()
    master.run()
    build = time.perf_counter() - t0
    snap, write, read = [], [], []
    for _ in range(5):
        t0 = time.perf_counter()
        state = master.state()
        t1 = time.perf_counter()
        checkpoint.save(out, state)
        t2 = time.perf_counter()
        checkpoint.read(out / checkpoint.FILENAME)
        t3 = time.perf_counter()
        snap.append(t1 - t0)
        write.append(t2 - t1)
        read.append(t3 - t2)
    size = (out / checkpoint.FILENAME).stat().st_size
    s = state
    print(f"bench/checkpoint.py: paper-scale state ({len(s.candidates)} candidates, "
          f"{len(s.strategy_arrays['q_value'])} "
          f"Q-table pairs, {len(s.strategy_arrays['replay_reward'])} replay blocks), built in {build:.1f} s")
    print(f"snapshot {statistics.median(snap):.3f} s + write {statistics.median(write):.3f} s = "
          f"{statistics.median(snap) + statistics.median(write):.3f} s per checkpoint (median of 5); "
          f"read {statistics.median(read):.3f} s; file {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
