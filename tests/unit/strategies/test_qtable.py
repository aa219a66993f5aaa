import numpy as np
import pytest

from bqnn.blocks.code import RESIDUAL_LIKE, Layer, format_nsc
from bqnn.blocks.space import START, Space
from bqnn.config import load
from bqnn.strategies import make_strategy
from bqnn.strategies.qlearning import QLearningStrategy
from bqnn.strategies.qtable import PAPER_SCHEDULE, EpsilonSchedule, QTable
from bqnn.strategies.random_search import RandomStrategy
from tests.conftest import ROOT


def test_paper_schedule():
    s = EpsilonSchedule()
    assert s.total == 178 and s.total * 64 == 11_392
    eps = [s.epsilon(i) for i in range(178)]
    assert eps[:95] == [1.0] * 95 and eps[95:102] == [0.9] * 7 and eps[-12:] == [0.1] * 12
    assert [(e, eps.count(e)) for e in dict.fromkeys(eps)] == list(PAPER_SCHEDULE)
    with pytest.raises(IndexError):
        s.epsilon(178)


def test_update_follows_equations_3_to_6():
    """Residual-like block, T = 5 rows, reward 50: shaped intermediate reward 10 (eq. 6)."""
    agent = QTable(Space(), seed=0, alpha=0.5, gamma=1.0, q_init=2.0)
    nsc = RESIDUAL_LIKE
    agent.update(nsc, 50.0)
    s = (START,) + nsc
    # eq. 4: final transition s_4 -> terminal: (1-a) q0 + a r_T
    assert agent.value(s[4], nsc[4]) == pytest.approx(0.5 * 2 + 0.5 * 50)
    # eq. 5 with the just-updated successor: q(s_3,a_4) = (1-a) q0 + a (r/T + max_a' Q(s_4, a'))
    # max over s_4's actions: 26 for the terminal, others unvisited at q_init 2
    assert agent.value(s[3], nsc[3]) == pytest.approx(0.5 * 2 + 0.5 * (10 + 26))
    assert agent.value(s[2], nsc[2]) == pytest.approx(0.5 * 2 + 0.5 * (10 + 19))
    assert agent.value(s[1], nsc[1]) == pytest.approx(0.5 * 2 + 0.5 * (10 + 15.5))
    assert agent.value(s[0], nsc[0]) == pytest.approx(0.5 * 2 + 0.5 * (10 + 13.75))
    assert agent.value(s[1], Layer(2, 2, 3, 1, 0)) == 2.0  # untouched pairs keep q_init
    # without shaping the intermediate reward is 0 (MetaQNN)
    plain = QTable(Space(), seed=0, alpha=0.5, q_init=2.0, intermediate="zero")
    plain.update(nsc, 50.0)
    assert plain.value(s[3], nsc[3]) == pytest.approx(0.5 * 2 + 0.5 * (0 + 26))


def test_greedy_follows_q_and_epsilon_one_ignores_it():
    agent = QTable(Space(), seed=0, alpha=1.0, q_init=0.0)
    agent.update(RESIDUAL_LIKE, 90.0)
    assert agent.greedy_block() == RESIDUAL_LIKE
    assert sum(agent.sample(1.0) == RESIDUAL_LIKE for _ in range(200)) < 5


def test_same_seed_and_rewards_give_the_same_blocks():
    def run(seed):
        agent = QTable(Space(8), seed=seed, alpha=0.1, q_init=10.0, replay_samples=8)
        out = []
        for it in range(12):
            eps = 1.0 if it < 4 else 0.3
            blocks = [agent.sample(eps) for _ in range(8)]
            for b in blocks:
                r = 10.0 + len(b) + sum(layer.type == 1 for layer in b)
                agent.update(b, r)
                agent.remember(b, r)
            agent.replay()
            out += [format_nsc(b) for b in blocks]
        return out, agent.q

    a, qa = run(5)
    b, qb = run(5)
    c, _ = run(6)
    assert a == b and qa == qb
    assert a != c


def _synthetic(nsc) -> float:
    """Favours the residual-like block: credit per row matching it at the same position, a bonus for it exactly."""
    match = sum(1 for x, y in zip(nsc, RESIDUAL_LIKE, strict=False) if x == y)
    return 40.0 + 10.0 * match + (20.0 if nsc == RESIDUAL_LIKE else 0.0) - 3.0 * abs(len(nsc) - len(RESIDUAL_LIKE))


def _search(strategy, n=64):
    hits = 0
    for it in range(strategy.total_iterations):
        blocks = strategy.propose(it, n)
        for b in blocks:
            hits += b == RESIDUAL_LIKE
            strategy.observe(b, _synthetic(b))
        strategy.end_iteration(it)
    return hits


def test_agent_learns_a_synthetic_optimum_and_beats_random_search():
    """The paper's schedule and batch (178 x 64 = 11,392 blocks), blocks of at most 6 layers, alpha 0.1 (at the
    paper's 0.01 the Q-values move too little in this small budget to settle), over 12 consecutive seeds: not every
    seed converges (measured over seeds 0-39: 32 of 40 end greedy on the favoured block, the others never find it),
    so the test asks for 7 of 12, which a learner converging 80 % of the time meets with probability 0.98, and for
    10 x random search's hits in all."""
    space = Space(6)
    learnt, q_hits, r_hits = 0, 0, 0
    for seed in range(12):
        q = QLearningStrategy(space, EpsilonSchedule(), seed, alpha=0.1, gamma=1.0, q_init=None,
                              intermediate="shaped", replay_samples=64, calibration_size=64)
        q_hits += _search(q)
        learnt += q.best_guess() == RESIDUAL_LIKE  # the greedy block after the schedule is the favoured one
        r_hits += _search(RandomStrategy(space, EpsilonSchedule(), seed))
    assert learnt >= 7, learnt
    assert q_hits > 10 * max(r_hits, 1)  # random search, same budget, finds it far less often


def test_random_search_draws_the_same_blocks_during_the_exploration_phase():
    cfg = load(None, ["search.seed=11", "search.blocks_per_iteration=16"])
    q = make_strategy(cfg)
    r = make_strategy(load(None, ["search.seed=11", "search.blocks_per_iteration=16", "search.strategy=random"]))
    for it in range(5):  # epsilon = 1 for the first 95 iterations
        qb, rb = q.propose(it, 16), r.propose(it, 16)
        assert qb == rb
        for b in qb:
            q.observe(b, float(len(b)))
            r.observe(b, float(len(b)))
        q.end_iteration(it)
        r.end_iteration(it)


def test_q_init_is_calibrated_from_the_first_iteration():
    q = QLearningStrategy(Space(6), EpsilonSchedule(), 0, 0.1, 1.0, None, "shaped", 4, calibration_size=4)
    blocks = q.propose(0, 4)
    for i, b in enumerate(blocks[:3]):
        q.observe(b, 10.0 * (i + 1))
    assert not q.calibrated and q.table.updates == 0  # held until the first iteration is complete
    q.observe(blocks[3], 40.0)
    assert q.calibrated and q.table.q_init == pytest.approx(25.0) and q.table.updates == 4


def test_strategy_state_round_trip_continues_identically():
    cfg = load(None, ["search.seed=3", "search.blocks_per_iteration=8", "space.max_index=8",
                      "search.schedule=[[1.0, 2], [0.5, 2], [0.1, 2]]", "search.replay_samples=8"])

    def step(s, it):
        blocks = s.propose(it, 8)
        for b in blocks:
            s.observe(b, float(len(b) * 3 + sum(layer.kernel for layer in b)))
        s.end_iteration(it)
        return blocks

    a = make_strategy(cfg)
    for it in range(3):
        step(a, it)
    arrays, attrs = a.state()
    for v in arrays.values():
        assert isinstance(v, np.ndarray) and v.dtype != object  # plain numeric data only
    b = make_strategy(cfg)
    b.load_state({k: v.copy() for k, v in arrays.items()}, dict(attrs))
    for it in range(3, 6):
        assert step(a, it) == step(b, it)
    assert a.table.q == b.table.q


def test_eq2_adds_the_reward_at_every_layer():
    """AAAI eq. 2: target = r_T + max Q(s') at every transition (r_T / T under eq. 6, 0 under MetaQNN's)."""
    nsc = RESIDUAL_LIKE
    s = (START,) + nsc
    values = {}
    for rule in ("shaped", "zero", "accuracy"):
        agent = QTable(Space(), seed=0, alpha=0.5, gamma=1.0, q_init=2.0, intermediate=rule)
        agent.update(nsc, 50.0)
        values[rule] = [agent.value(s[t], nsc[t]) for t in range(5)]
    # the last transition's target is r_T under every rule
    assert values["accuracy"][4] == values["shaped"][4] == values["zero"][4] == pytest.approx(26.0)
    # s_3 -> s_4: (1-a) q0 + a (50 + 26) = 39; then (1 - a) 2 + a (50 + 39) = 45.5, ...
    assert values["accuracy"][3] == pytest.approx(0.5 * 2 + 0.5 * (50 + 26))
    assert values["accuracy"][2] == pytest.approx(0.5 * 2 + 0.5 * (50 + 39))
    assert values["accuracy"][0] > values["shaped"][0] > values["zero"][0]
    with pytest.raises(ValueError, match="intermediate reward 'eq2'"):
        QTable(Space(), seed=0, intermediate="eq2")


def _recorded(strategy):
    """The blocks strategy.table.update is called with, in order (the real update still runs)."""
    calls = []
    real = strategy.table.update

    def update(nsc, reward):
        calls.append((nsc, reward))
        real(nsc, reward)

    strategy.table.update = update
    return calls


@pytest.mark.parametrize("rule,replay", [("result+replay", 128), ("result+replay", 0), ("replay", 64)])
def test_update_rules_count_and_order(rule, replay):
    """result+replay (AAAI): one update per result, in the order observed, then `replay` remembered blocks after
    the iteration; replay (CVPR): no update when a result arrives, `replay` updates after it, drawn from the memory
    that already holds this iteration's results."""
    cfg = load(None, ["search.seed=5", "search.blocks_per_iteration=64", f"search.updates={rule}",
                      f"search.replay_samples={replay}", "search.q_init=40.0"])
    q = make_strategy(cfg)
    calls = _recorded(q)
    seen: list = []
    for it in range(3):
        blocks = q.propose(it, 64)
        rewards = [float(len(b) * 7 + i % 5) for i, b in enumerate(blocks)]
        start = len(calls)
        for b, r in zip(blocks, rewards, strict=True):
            q.observe(b, r)
            seen.append(b)
        during = calls[start:]
        if rule == "result+replay":
            assert during == list(zip(blocks, rewards, strict=True))  # once each, in the order observed
        else:
            assert during == []
        q.end_iteration(it)
        after = calls[start + len(during):]
        assert len(after) == replay
        memory = dict(zip(seen, [q.table.memory[b] for b in seen], strict=True))
        assert all(b in memory and r == q.table.memory[b] for b, r in after)  # replayed blocks are remembered ones
    assert q.table.updates == len(calls) == 3 * ((64 if rule == "result+replay" else 0) + replay)


def test_update_rule_config_is_checked_and_earlier_key_is_read():
    from bqnn.config import ConfigError

    with pytest.raises(ConfigError, match="search.updates"):
        load(None, ["search.updates=cvpr"])
    with pytest.raises(ConfigError, match="replay_samples: must be at least 1"):
        load(None, ["search.updates=replay", "search.replay_samples=0"])
    assert load(None, ["search.shaped_reward=false"]).search.intermediate_reward == "zero"
    assert load(None, ["search.shaped_reward=true"]).search.intermediate_reward == "shaped"
    with pytest.raises(ConfigError, match="shaped_reward.*now search.intermediate_reward"):
        load(None, ["search.shaped_reward=1"])
    import json

    from bqnn.config import Config, from_json, to_dict

    stored = to_dict(Config())  # a search.h5 written before the key was renamed still resumes, same meaning
    del stored["search"]["intermediate_reward"]
    stored["search"]["shaped_reward"] = False
    assert from_json(json.dumps(stored)).search.intermediate_reward == "zero"
    paper, aaai = load(ROOT / "jobs/cifar100_paper.toml"), load(ROOT / "jobs/cifar100_aaai.toml")
    assert (paper.search.updates, paper.search.replay_samples, paper.search.intermediate_reward) == \
        ("replay", 64, "shaped")
    assert (aaai.search.updates, aaai.search.replay_samples, aaai.search.intermediate_reward, aaai.reward.preset) == \
        ("result+replay", 128, "accuracy", "aaai")
