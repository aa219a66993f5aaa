"""bench/peers.py: Optuna's samplers over bqnn's space, with bqnn's reward and cache rule; skipped without Optuna."""
import os
import subprocess
import sys

import numpy as np
import pytest

from bqnn.config import load
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from peers import PEERS, SimulatedReward, optuna_search  # noqa: E402

CFG = ["space.max_index=5", "network.blocks_per_stage=1", "network.filters=[8,16,32]", "trainer.kind=simulated"]


def test_without_optuna_the_peers_are_skipped_with_one_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "no_optuna"), str(ROOT / "bench"),
                                                       str(ROOT)]))
    r = subprocess.run([sys.executable, "-c", "import peers; print(peers.peers_missing())"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Optuna is not installed: its samplers are skipped (pip install 'bqnn[peers]' adds them)"


@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_trains_distinct_blocks_and_earns_bqnns_reward(peer):
    pytest.importorskip("optuna")
    cfg = load(None, CFG)
    rewards, proposals, seconds, in_optuna = optuna_search(peer, 0, cfg, budget=25, time_cap=60)
    assert len(rewards) == 25 and proposals >= 25 and 0 < in_optuna <= seconds
    again = optuna_search(peer, 0, cfg, budget=25, time_cap=60)[0]
    assert np.array_equal(rewards, again)  # seeded: the same blocks
    other = optuna_search(peer, 1, cfg, budget=25, time_cap=60)[0]
    assert not np.array_equal(rewards, other)


def test_the_reward_is_the_simulated_trainers_and_a_repeat_is_not_a_training():
    pytest.importorskip("optuna")
    from bqnn.blocks.code import RESIDUAL_LIKE
    from bqnn.blocks.cost import network_cost
    from bqnn.blocks.graph import graph
    from bqnn.blocks.reward import reward
    from bqnn.data.shapes import dataset_shape
    from bqnn.training.simulated import SimulatedTrainer, known_optimum

    cfg = load(None, CFG)
    acc = SimulatedTrainer(cfg).train(RESIDUAL_LIKE, seed=0).accuracy
    cost = network_cost(RESIDUAL_LIKE, cfg.network, *dataset_shape(cfg.data))
    assert SimulatedReward(cfg)(RESIDUAL_LIKE) == reward(acc, cost.flops, graph(RESIDUAL_LIKE).density, cfg.reward)
    # a space of max_index 3 holds few distinct blocks: 300 proposals train each of them at most once
    small = load(None, [*CFG[1:], "space.max_index=3"])
    distinct = known_optimum(small)[2]
    rewards, proposals, _, _ = optuna_search("optuna-random", 0, small, budget=10_000, time_cap=30, max_proposals=300)
    assert proposals == 300 and 0.8 * distinct <= len(rewards) <= distinct < 100, (len(rewards), distinct)
