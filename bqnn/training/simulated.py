"""The simulated trainer (`trainer.kind = "simulated"`): a deterministic, learnable 'accuracy' and a
configurable training time, for tests and for benchmarks of the framework at scale. No torch.

Used through training/factory.py by rank 0 and the workers, and by tests and benches
(`simulated_accuracy`, `known_optimum`); imports only numpy, so hundreds of simulated worker ranks fit
on one machine.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, Layer
from ..blocks.graph import graph
from ..config import Config
from .faults import DEVICE_MESSAGE, EXCEPTION_MESSAGE, HANG_SECONDS, scheduled
from .result import OnEpoch, Poll, Status, TrainResult, ask, pruned_result, rung_epochs

SLICE = 0.05  # seconds a simulated training sleeps between looks for a stop or a pruning answer (a real one
# looks every batch)

# Credit per op (type, kernel) for the simulated accuracy: convolutions help, 3x3 most;
# pools and identities little; joins (add, concat) help. Chosen so that the best
# blocks have a few convolutions, a shortcut and a merge, like the paper's.
_SIM_CREDIT = {(1, 1): 2.0, (1, 3): 4.5, (1, 5): 3.5, (2, 1): -0.5, (2, 3): 0.8, (3, 1): -0.5, (3, 3): 0.5,
               (4, 0): -0.3, (5, 0): 3.0, (6, 0): 2.0}


# Separate components (space.layers = "separate"): a plain convolution earns a share of the PCC's credit of
# its kernel, the rest only when a ReLU feeds it (pre-activation) and a batch norm reads it; a ReLU or a
# batch norm alone costs a little. So ReLU -> Conv -> BN earns what one PCC earns, less 0.4, with three
# layers: the separate space can build every PCC block, but longer, and random blocks in it are worse
# (CVPR Fig. 9, AAAI Fig. 3). A model of the papers' finding, not evidence for it (docs/choices.md).
_PLAIN_SHARE, _PREACT_SHARE, _NORM_SHARE = 0.35, 0.3, 0.35
_COMPONENT_CREDIT = -0.2  # a ReLU or a batch norm, on its own


def _credit(nsc: NSC, layer: Layer) -> float:
    if layer.type == 10:  # plain convolution
        pcc = _SIM_CREDIT[(1, layer.kernel)]
        share = _PLAIN_SHARE
        if layer.pred1 and nsc[layer.pred1 - 1].type == 8:
            share += _PREACT_SHARE
        if any(other.type == 9 and other.pred1 == layer.index for other in nsc):
            share += _NORM_SHARE
        return pcc * share
    if layer.type in (8, 9):
        return _COMPONENT_CREDIT
    return _SIM_CREDIT[(layer.type, layer.kernel)]


def simulated_accuracy(nsc: NSC) -> float:
    """A deterministic 'accuracy' (percent) with structure an agent can learn:
    saturating in the summed op credits, penalised beyond 10 layers, plus a
    +-1 point jitter from the block's canonical hash (equal for equal blocks)."""
    layers = [layer for layer in nsc if layer.type != 7]
    score = sum(_credit(nsc, layer) for layer in layers)
    acc = 40.0 + 50.0 * (1.0 - math.exp(-max(score, 0.0) / 15.0)) - 1.5 * max(0, len(layers) - 10)
    acc -= 2.0 * max(0, len(graph(nsc).leaves) - 2)  # many loose ends
    jitter = int(canonical_hash(nsc)[:6], 16) / 0xFFFFFF * 2.0 - 1.0
    return float(min(max(acc + jitter, 1.0), 99.0))


def simulated_curve(nsc: NSC, epochs: int) -> list[float]:
    """Validation accuracy after each of `epochs` epochs (percent): rising from near chance (10 %) and
    saturating at `simulated_accuracy(nsc)`, reached exactly at the last epoch. Each block learns at its own
    speed (a time constant of 0.15-0.6 of the epochs) with +-0.75 points of noise per epoch, both from its
    canonical hash, so an early epoch ranks blocks like the last one does, but not perfectly: what a
    pruning rule needs to be tested against (issue 17). Deterministic: equal blocks, equal curves."""
    final = simulated_accuracy(nsc)
    if epochs <= 0:
        return []
    rng = np.random.default_rng(int(canonical_hash(nsc)[:8], 16))
    tau = epochs * rng.uniform(0.15, 0.6)
    norm = 1.0 - math.exp(-epochs / tau)
    curve = []
    for e in range(epochs):
        progress = (1.0 - math.exp(-(e + 1) / tau)) / norm
        noise = rng.uniform(-0.75, 0.75) if e < epochs - 1 else 0.0
        curve.append(float(min(max(10.0 + (final - 10.0) * progress + noise, 1.0), 99.0)))
    curve[-1] = final
    return curve


def known_optimum(cfg: Config) -> tuple[float, set[str], int]:
    """The best reward the simulated trainer can give in `cfg`'s space, by brute force over every block
    (space.Space.blocks: only for small spaces, e.g. max_index 5 or 6): (reward, hashes of the blocks
    that earn it, distinct blocks). Used by tests and bench/strategies.py as a known optimum."""
    from ..blocks.cost import network_cost
    from ..blocks.reward import reward
    from ..blocks.space import Space
    from ..data.shapes import dataset_shape

    shape = dataset_shape(cfg.data)
    rewards: dict[str, float] = {}
    for b in Space.of(cfg.space).blocks():
        h = canonical_hash(b)
        if h not in rewards:
            cost = network_cost(b, cfg.network, *shape)
            rewards[h] = reward(simulated_accuracy(b), cost.flops, graph(b).density, cfg.reward)
    top = max(rewards.values())
    return top, {h for h, r in rewards.items() if r == top}, len(rewards)


class SimulatedTrainer:
    """`trainer.kind = "simulated"`: no data, no torch compute; sleeps a lognormal time
    (median `sim_seconds`, spread `sim_sigma`, drawn from the candidate's seed) and
    returns `simulated_accuracy`. Faults are injected as in the real trainer. The time is spread evenly over the
    epochs, each told as it ends (`on_epoch`), and each rung reports the block's `simulated_curve` at that epoch,
    so a pruned candidate takes only its rungs' share of the time."""

    def __init__(self, cfg: Config) -> None:
        self.t = cfg.trainer
        self.rungs = rung_epochs(cfg.pruning)

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, poll: Poll = None,
              blocks_per_stage: int = 0, on_epoch: OnEpoch = None) -> TrainResult:
        start = time.perf_counter()
        duration = 0.0
        if self.t.sim_seconds > 0:
            rng = np.random.default_rng(seed ^ (candidate_id & 0x7FFFFFFF))
            duration = self.t.sim_seconds * math.exp(self.t.sim_sigma * rng.standard_normal())
        fault = scheduled(self.t, candidate_id)
        if fault == "none":
            result = self._by_epoch(nsc, start, duration, poll, on_epoch)
            result.seconds = time.perf_counter() - start
            return result
        _sleep_until(start + duration, poll)  # no rungs reported on this path: nothing to stop it at
        if fault == "exception":
            result = TrainResult(Status.ERROR, message=f"InjectedFault: {EXCEPTION_MESSAGE}")
        elif fault == "nan":
            result = TrainResult(Status.NAN, epochs=1, message="loss is nan in epoch 1")
        elif fault == "device":
            result = TrainResult(Status.DEVICE, message=f"AcceleratorError: {DEVICE_MESSAGE}")
        elif fault == "hang":
            time.sleep(HANG_SECONDS)  # deaf to STOP, as a process stuck in a driver call is
            result = TrainResult(Status.ERROR, message="hung (injected, trainer.inject_fault)")
        elif fault == "oom":
            result = TrainResult(Status.OOM,
                                 message="OutOfMemoryError: CUDA out of memory (injected, trainer.inject_fault)")
        else:
            result = TrainResult(Status.OK, accuracy=simulated_accuracy(nsc), epochs=self.t.epochs)
        result.seconds = time.perf_counter() - start
        return result

    def _by_epoch(self, nsc: NSC, start: float, duration: float, poll: Poll, on_epoch: OnEpoch) -> TrainResult:
        """Sleep to the next rung's end (or the last epoch's), waking every SLICE to look for a stop, and tell the
        epochs that ended meanwhile in order: a rung at its very end (rank 0 may prune there), the others when the
        sleeper wakes. A simulated epoch of a few milliseconds so costs no wake-up of its own: with one per epoch,
        128 workers of 0.3 s tasks on 2 cores took the cores rank 0 needs (bench/mpi.py, K = 129)."""
        epochs = self.t.epochs
        curve = simulated_curve(nsc, epochs)  # its last point is simulated_accuracy(nsc)
        ends = [start + duration * e / epochs for e in range(1, epochs + 1)]
        stops = sorted({r for r in self.rungs if r < epochs} | {epochs})
        reported: list[float] = []
        epoch = 0  # epochs told
        while epoch < epochs:
            left = ends[next(r for r in stops if r > epoch) - 1] - time.perf_counter()
            if left > 0:
                time.sleep(min(left, SLICE))
            halt = ask(poll)  # once a wake-up at least, as a real trainer looks once a batch
            if halt:
                return pruned_result(self.rungs, reported, halt)
            now = time.perf_counter()
            while epoch < epochs and ends[epoch] <= now:
                epoch += 1
                told = curve[epoch - 1] if epoch in self.rungs else None
                if told is not None:
                    reported.append(told)
                if on_epoch is not None and on_epoch(epoch, told) and told is not None:
                    return pruned_result(self.rungs, reported, epoch)
        return TrainResult(Status.OK, accuracy=curve[-1], epochs=epochs, rungs=reported)


def _sleep_until(end: float, poll: Poll) -> int:
    """Sleep in slices, asking `poll` after each (signals.Stopped when the job stops); the rung epoch rank 0
    stopped the candidate at, as soon as it says so, or 0."""
    while (left := end - time.perf_counter()) > 0:
        time.sleep(min(left, SLICE))
        halt = ask(poll)
        if halt:
            return halt
    return 0
