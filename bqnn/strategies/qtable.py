"""The Q-table and its learning rule: tabular Q-learning over block codes (CVPR 2018, sec. 3.2 and 4.2).

Used as a library by the Q-learning and random strategies (strategies/qlearning.py, random_search.py);
bench/agent.py times it. numpy only.

A block is a trajectory s_0 = START -> s_1 = row 1 -> ... -> s_T = terminal row;
the action taken in s_{t-1} is row t. After a block of T rows earns reward r_T
(eq. 7), its transitions are updated from the end (eq. 3-6):

    Q(s_{T-1}, a_T) <- (1-a) Q + a r_T
    Q(s_t, a_{t+1}) <- (1-a) Q + a [r_T/T + g max_a' Q(s_{t+1}, a')],  t = T-2 .. 0

with a = 0.01, g = 1 and the shaped intermediate reward r_T/T (eq. 6). `intermediate`
picks that reward: "shaped" (r_T/T), "zero" (MetaQNN) or "accuracy" (r_T at every
layer's update: the AAAI paper's eq. 2, there with the accuracy as reward). Unvisited pairs
hold `q_init`. Sampling is e-greedy per step over the legal actions of
`space.Space`; greedy ties are broken uniformly at random. Replay: every
evaluated block is remembered with its reward; `replay()` samples
`replay_samples` of them and updates each again.

Determinism: two numpy generators seeded from one seed, one for sampling and one
for replay, so random search with the same seed draws exactly the blocks the
agent draws during its e = 1 phase (the paper's fairness condition, Appendix A).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..blocks.code import NSC, NSC_WIDTH, Layer, Op, from_array, to_array
from ..blocks.space import START, Explore, Space
from ..config import PAPER_SCHEDULE, check_schedule

__all__ = ["INTERMEDIATE", "PAPER_SCHEDULE", "EpsilonSchedule", "QTable"]

# The reward of every transition but the last, from the block's reward r_T and its rows T.
INTERMEDIATE = {
    "shaped": lambda r, T: r / T,  # CVPR eq. 6
    "zero": lambda r, T: 0.0,  # MetaQNN
    "accuracy": lambda r, T: r,  # AAAI eq. 2
}


@dataclass(frozen=True)
class EpsilonSchedule:
    stages: tuple[tuple[float, int], ...] = PAPER_SCHEDULE

    def __post_init__(self) -> None:
        check_schedule(self.stages)

    @property
    def total(self) -> int:
        return sum(count for _, count in self.stages)

    def epsilon(self, iteration: int) -> float:
        """Epsilon of a 0-based iteration."""
        for eps, count in self.stages:
            if iteration < count:
                return eps
            iteration -= count
        raise IndexError("iteration beyond the schedule")


class QTable:
    def __init__(
        self,
        space: Space,
        seed: int,
        alpha: float = 0.01,
        gamma: float = 1.0,
        q_init: float = 0.0,
        intermediate: str = "shaped",
        replay_samples: int = 64,
        explore: Explore = "uniform",
    ) -> None:
        if intermediate not in INTERMEDIATE:
            raise ValueError(f"intermediate reward {intermediate!r}: expected one of {', '.join(INTERMEDIATE)}")
        self.space = space
        self.alpha, self.gamma, self.q_init, self.intermediate = alpha, gamma, q_init, intermediate
        self.replay_samples = replay_samples
        self.explore = explore  # how a random action is drawn (Space.random_action)
        sample_seq, replay_seq = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.Generator(np.random.PCG64(sample_seq))
        self.replay_rng = np.random.Generator(np.random.PCG64(replay_seq))
        self.q: dict[Layer, dict[Layer, float]] = {}
        self.memory: dict[NSC, float] = {}  # replay memory, insertion ordered
        self.updates = 0
        # Mirrors for checkpoints, kept up to date as the table grows, so that a snapshot is a few
        # slices: every (state, action) pair in the order it was first visited, and its value.
        self._pair_index: dict[Layer, dict[Layer, int]] = {}  # state -> action -> position
        self._pair_state = np.zeros((1024, NSC_WIDTH), np.int16)
        self._pair_action = np.zeros((1024, NSC_WIDTH), np.int16)
        self._pair_value = np.zeros(1024, np.float64)
        self._n_pairs = 0
        self._memory_array = np.zeros((256, space.max_index, NSC_WIDTH), np.int16)  # to_array of each memory key

    # ------------------------------------------------------------ sampling
    def sample(self, epsilon: float) -> NSC:
        """One block, e-greedy at every step."""
        rows: list[Layer] = []
        state = START
        while True:
            actions = self.space.actions(state)
            explore = self.rng.random() < epsilon  # drawn every step, so streams match across strategies
            action = (self.space.random_action(state, self.rng, self.explore) if explore
                      else self._greedy(state, actions))
            rows.append(action)
            if action.type == Op.TERMINAL:
                return tuple(rows)
            state = action

    def greedy_block(self) -> NSC:
        """The block the current Q-table prefers (e = 0); ties broken by the sampling generator."""
        return self.sample(0.0)

    def _greedy(self, state: Layer, actions: Sequence[Layer]) -> Layer:
        qs = self.q.get(state, {})
        unvisited = len(actions) - len(qs)  # these hold q_init
        best = max(qs.values(), default=-np.inf)
        if unvisited:
            best = max(best, self.q_init)
        visited_ties = sorted(a for a, v in qs.items() if v == best)
        unvisited_ties = unvisited if unvisited and self.q_init == best else 0
        n = len(visited_ties) + unvisited_ties
        pick = int(self.rng.integers(n)) if n > 1 else 0
        if pick < len(visited_ties):
            return visited_ties[pick]
        while True:  # a uniformly random unvisited action
            action = actions[int(self.rng.integers(len(actions)))]
            if action not in qs:
                return action

    # ------------------------------------------------------------- updates
    def value(self, state: Layer, action: Layer) -> float:
        return self.q.get(state, {}).get(action, self.q_init)

    def max_value(self, state: Layer) -> float:
        qs = self.q.get(state)
        if not qs:
            return self.q_init
        best = max(qs.values())
        if len(qs) < self.space.n_actions(state):
            best = max(best, self.q_init)
        return best

    def update(self, nsc: NSC, reward: float) -> None:
        """eq. 3-6 for every transition of one block, from the terminal backwards."""
        T = len(nsc)
        a = self.alpha
        r_t = INTERMEDIATE[self.intermediate](reward, T)
        states = (START,) + tuple(nsc)
        for t in range(T - 1, -1, -1):  # transition s_t -> s_{t+1} by action nsc[t]
            s, act = states[t], nsc[t]
            target = reward if t == T - 1 else r_t + self.gamma * self.max_value(states[t + 1])
            row = self.q.get(s)
            if row is None:
                row = self.q[s] = {}
                self._pair_index[s] = {}
            old = row.get(act)
            if old is None:
                old = self.q_init
                self._new_pair(s, act)
            row[act] = value = (1 - a) * old + a * target
            self._pair_value[self._pair_index[s][act]] = value
        self.updates += 1

    def remember(self, nsc: NSC, reward: float) -> None:
        if nsc not in self.memory:
            n = len(self.memory)
            if n == len(self._memory_array):
                self._memory_array = np.concatenate([self._memory_array, np.zeros_like(self._memory_array)])
            self._memory_array[n] = to_array(nsc, self.space.max_index)
        self.memory[nsc] = reward

    def replay(self) -> int:
        """Sample `replay_samples` remembered blocks and update with each; returns the count."""
        if not self.memory or self.replay_samples <= 0:
            return 0
        keys = list(self.memory)
        n = self.replay_samples
        picks = self.replay_rng.choice(len(keys), size=n, replace=len(keys) < n)
        for i in picks:
            self.update(keys[i], self.memory[keys[i]])
        return n

    # --------------------------------------------------------------- state
    def _new_pair(self, state: Layer, action: Layer) -> None:
        n = self._n_pairs
        if n == len(self._pair_value):
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self._pair_state, self._pair_action = grow(self._pair_state), grow(self._pair_action)
            self._pair_value = grow(self._pair_value)
        self._pair_state[n], self._pair_action[n] = tuple(state), tuple(action)
        self._pair_index[state][action] = n
        self._n_pairs = n + 1

    def state_arrays(self, max_index: int) -> dict[str, np.ndarray]:
        n, m = self._n_pairs, len(self.memory)
        return {  # the pairs in the order they were first visited
            "q_state": self._pair_state[:n].copy(),
            "q_action": self._pair_action[:n].copy(),
            "q_value": self._pair_value[:n].copy(),
            "replay_nsc": self._memory_array[:m].copy(),
            "replay_reward": np.fromiter(self.memory.values(), np.float64, m),
        }

    def state_attrs(self) -> dict[str, str | int]:
        return {
            "rng_sample": json.dumps(self.rng.bit_generator.state),
            "rng_replay": json.dumps(self.replay_rng.bit_generator.state),
            "updates": self.updates,
        }

    def load_state(self, arrays: dict[str, np.ndarray], attrs: dict) -> None:
        self.q, self._pair_index, self._n_pairs = {}, {}, 0
        size = max(1024, 2 * len(arrays["q_value"]))
        self._pair_state = np.zeros((size, NSC_WIDTH), np.int16)
        self._pair_action = np.zeros((size, NSC_WIDTH), np.int16)
        self._pair_value = np.zeros(size, np.float64)
        pairs = zip(arrays["q_state"].tolist(), arrays["q_action"].tolist(), arrays["q_value"].tolist(), strict=True)
        for s, a, v in pairs:
            state, action = Layer(*s), Layer(*a)
            if state not in self.q:
                self.q[state], self._pair_index[state] = {}, {}
            self.q[state][action] = float(v)
            self._new_pair(state, action)
            self._pair_value[self._n_pairs - 1] = float(v)
        self.memory = {
            from_array(n, self.space.max_index): float(r)
            for n, r in zip(arrays["replay_nsc"], arrays["replay_reward"].tolist(), strict=True)
        }
        rows = max(256, 2 * len(arrays["replay_nsc"]))
        self._memory_array = np.zeros((rows, self.space.max_index, NSC_WIDTH), np.int16)
        self._memory_array[: len(arrays["replay_nsc"])] = arrays["replay_nsc"]
        self.rng.bit_generator.state = json.loads(attrs["rng_sample"])
        self.replay_rng.bit_generator.state = json.loads(attrs["rng_replay"])
        self.updates = int(attrs["updates"])
