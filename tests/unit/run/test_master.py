"""Rank 0's loop (run/master.py) in this process: a Master with the inline executor and the simulated trainer.

The reward cache, candidates joining a training in flight, rejection over the limits and an exact resume,
without MPI and without a subprocess."""
import signal

import numpy as np
import pytest

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.reward import reward
from bqnn.config import load
from bqnn.run import checkpoint
from bqnn.run.executor import InlineExecutor
from bqnn.run.master import Master
from bqnn.signals import StopFlag
from bqnn.training.result import Status
from bqnn.training.simulated import SimulatedTrainer

# blocks of at most 2 layers: few distinct blocks, so an iteration repeats some of them
TINY = ["trainer.kind=simulated", "network.blocks_per_stage=1", "network.filters=[8,16,32]", "space.max_index=3",
        "search.blocks_per_iteration=16", "search.replay_samples=16"]


class Recording:
    """A trainer that records every candidate it is asked to train; `stop_at`: the call that gets SIGTERM."""

    def __init__(self, cfg, stop: StopFlag | None = None, stop_at: int = -1) -> None:
        self.inner, self.stop, self.stop_at = SimulatedTrainer(cfg), stop, stop_at
        self.calls: list[tuple[int, str, int]] = []

    def train(self, nsc, seed, candidate_id=-1, poll=None, blocks_per_stage=0, on_epoch=None):
        if len(self.calls) == self.stop_at:
            self.stop.handler(signal.SIGTERM, None)  # as the signal would: raises Stopped while training
        self.calls.append((candidate_id, canonical_hash(nsc), blocks_per_stage))
        return self.inner.train(nsc, seed, candidate_id, poll, blocks_per_stage, on_epoch)


def run(cfg, out, stop_at=-1, state=None):
    stop = StopFlag()
    trainer = Recording(cfg, stop, stop_at)
    master = Master(cfg, out, InlineExecutor(trainer, stop), stop, log=lambda line: None, state=state)
    return master, trainer, master.run()


def by_id(rows):
    return rows[np.argsort(rows["id"], kind="stable")]


def test_a_block_is_trained_once_and_every_repeat_is_answered_from_the_cache(tmp_path):
    cfg = load(None, [*TINY, "search.schedule=[[1.0, 2], [0.1, 3]]"])
    master, trainer, code = run(cfg, tmp_path / "run")
    assert code == 0
    rows = by_id(master.records.array())
    assert len(rows) == 5 * 16 and rows["repeat"].sum() > 16  # the greedy phase repeats blocks
    trained = [h for _, h, _ in trainer.calls]
    assert len(trained) == len(set(trained)) == int((rows["repeat"] == 0).sum())  # one training per block
    first = {r["hash"]: r for r in rows if not r["repeat"]}
    for r in rows[rows["repeat"] == 1]:
        src = first[r["hash"]]
        assert r["id"] > src["id"] or r["iteration"] == src["iteration"]
        assert (r["rank"], r["seconds"]) == (-1, 0.0)
        assert (r["status"], r["accuracy"], r["reward"]) == (src["status"], src["accuracy"], src["reward"])
    assert sorted(master.cache) == sorted(h.decode() for h in first)


def test_a_block_proposed_twice_in_one_iteration_joins_the_training_in_flight(tmp_path):
    """Batch dispatch submits a whole iteration before any result: the second writing of a block waits for
    the first one's training instead of training it again."""
    cfg = load(None, [*TINY, "search.schedule=[[1.0, 1]]", "search.q_init=0"])
    master, trainer, code = run(cfg, tmp_path / "run")
    assert code == 0 and not master.waiting and not master.running
    rows = by_id(master.records.array())
    hashes = rows["hash"].tolist()
    assert len(set(hashes)) < len(hashes)  # the iteration did propose a block twice
    assert len(trainer.calls) == len(set(hashes))
    for h in set(hashes):
        same = rows[rows["hash"] == h]
        assert (same["repeat"] == 0).sum() == 1 and len(set(same["reward"].tolist())) == 1


def test_blocks_over_the_limits_are_rejected_on_rank_0_and_never_trained(tmp_path):
    base = [*TINY, "space.max_index=6", "search.strategy=random", "search.schedule=[[1.0, 3]]"]
    free, _, _ = run(load(None, base), tmp_path / "free")  # random search: the same blocks whatever the rewards
    params = by_id(free.records.array())["params"]
    limit = int(np.median(params))
    cfg = load(None, [*base, f"limits.params={limit}", "limits.adaptive_blocks=false"])
    master, trainer, code = run(cfg, tmp_path / "limited")
    assert code == 0
    rows = by_id(master.records.array())
    over = rows["params"] > limit
    assert over.any() and (~over).any()
    assert (rows["status"][over] == Status.REJECTED).all() and (rows["blocks"][over] == 0).all()
    assert (rows["status"][~over] == Status.OK).all() and (rows["blocks"][~over] == 1).all()
    assert not {h for _, h, _ in trainer.calls} & {h.decode() for h in rows["hash"][over]}  # never trained
    for r in rows[over]:
        assert r["reward"] == reward(cfg.reward.failure_accuracy, r["flops"], r["density"], cfg.reward)
        assert r["message"].startswith(b"over the limits (params <= ")


@pytest.mark.parametrize("stop_at", [1, 9, 30])
def test_a_stopped_search_resumes_to_the_uninterrupted_result(tmp_path, stop_at):
    cfg = load(None, [*TINY, "space.max_index=5", "search.schedule=[[1.0, 2], [0.3, 2]]"])
    whole, _, code = run(cfg, tmp_path / "whole")
    assert code == 0
    part, _, code = run(cfg, tmp_path / "part", stop_at=stop_at)
    assert code == 143 and len(part.records) < len(whole.records)
    state, _, warning = checkpoint.load(tmp_path / "part")
    assert warning is None and state.next_id > len(state.candidates)  # stopped with candidates in flight
    resumed, trainer, code = run(cfg, tmp_path / "part", state=state)
    assert code == 0 and resumed.clock.runs == 2
    a, b = by_id(whole.records.array()), by_id(resumed.records.array())
    for field in ("id", "iteration", "nsc", "hash", "status", "repeat", "accuracy", "reward", "flops", "params",
                  "blocks", "epsilon"):
        assert np.array_equal(a[field], b[field]), field
    sa, _ = whole.strategy.state()
    sb, _ = resumed.strategy.state()
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


class Watching(Recording):
    """Trains each candidate for `seconds`; at each call notes the time, the ids that came back before it and
    the ids in search.h5 on disk (nobody writes while the inline executor trains)."""

    def __init__(self, cfg, out, seconds: float) -> None:
        super().__init__(cfg)
        self.out, self.seconds = out, seconds
        self.returned: list[tuple[float, int]] = []  # (time the result came back, id)
        self.seen: list[tuple[float, set[int], list[tuple[float, int]]]] = []

    def train(self, nsc, seed, candidate_id=-1, poll=None, blocks_per_stage=0, on_epoch=None):
        import time

        import h5py

        now = time.perf_counter()
        on_disk = set()
        if (self.out / "search.h5").exists():
            with h5py.File(self.out / "search.h5") as f:
                on_disk = set(f["candidates"]["id"].tolist())
        self.seen.append((now, on_disk, list(self.returned)))
        time.sleep(self.seconds)
        result = super().train(nsc, seed, candidate_id, poll, blocks_per_stage, on_epoch)
        self.returned.append((time.perf_counter(), candidate_id))
        return result


def test_a_result_is_in_search_h5_within_the_checkpoint_interval(tmp_path):
    """Issue 14: results are written at most `checkpoint_interval` after they arrive, several per write."""
    interval, seconds = 0.5, 0.1
    cfg = load(None, [*TINY, "space.max_index=6", f"search.checkpoint_interval={interval}",
                        "search.schedule=[[1.0, 2]]"])
    out = tmp_path / "run"
    stop = StopFlag()
    trainer = Watching(cfg, out, seconds)
    writes = []
    real_save = checkpoint.save

    def counting_save(*a, **k):
        writes.append(1)
        return real_save(*a, **k)

    checkpoint.save = counting_save
    try:
        assert Master(cfg, out, InlineExecutor(trainer, stop), stop, log=lambda line: None).run() == 0
    finally:
        checkpoint.save = real_save
    trained = len(trainer.returned)
    assert trained >= 20
    late = [(round(now - t, 2), cid) for now, on_disk, returned in trainer.seen for t, cid in returned
            if now - t > interval + seconds + 0.2 and cid not in on_disk]
    assert not late, f"results not on disk long after they arrived (seconds, id): {late}"
    # batched: far fewer writes than results (a write per result would be `trained` writes)
    assert 2 <= len(writes) <= trained * (seconds / interval) * 1.5 + 2
