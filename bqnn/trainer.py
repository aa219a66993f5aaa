"""Early-stop training of one candidate (CVPR 2018, sec. 4.2), and the simulated trainer.

Used as a library by the master (world size 1) and the workers:

    trainer = make_trainer(cfg, device)           # loads the data once, onto the device
    result = trainer.train(nsc, seed=..., candidate_id=...)

The protocol, every number a field of [trainer]: `epochs` (12) epochs of Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 256, no augmentation, lr x 0.2
every 5 epochs, MSRA init. If after epoch 1 the validation accuracy is no better
than chance (1/classes), the network is rebuilt and restarted with lr x 0.4, at
most 3 times. The reward's accuracy is the validation accuracy (held out of
the training set) after the last epoch, in percent.

Failures are results: an exception, a NaN/inf loss or running out of memory
returns a `TrainResult` with that status and a message; the search goes on.
KeyboardInterrupt and SystemExit (signals) are not caught. Inside an epoch
nothing syncs with the host: losses and correct counts accumulate on the device
and are read once per epoch.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .data import Splits, epoch_batches, load_splits
from .network import build_network
from .nsc import NSC, canonical_hash, graph
from .protocol import Status


@dataclass
class TrainResult:
    status: Status
    accuracy: float = 0.0  # percent, validation
    seconds: float = 0.0
    epochs: int = 0
    restarts: int = 0
    message: str = ""


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """`auto`: the GPU of this node-local rank (modulo visible GPUs) if CUDA is present, else CPU."""
    if spec == "auto":
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(spec)


def candidate_seed(search_seed: int, nsc: NSC) -> int:
    """Training seed of a block: the same block gets the same initial weights in every run and on every rank."""
    return (int(canonical_hash(nsc)[:8], 16) ^ (search_seed * 0x9E3779B1)) & 0x7FFFFFFF


class InjectedFault(RuntimeError):
    pass


class Interrupted(BaseException):
    """Raised out of `train` when its `interrupt` callback says stop (a BaseException: never a result)."""


Interrupt = Callable[[], bool] | None


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def _tail(e: BaseException, lines: int = 3) -> str:
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    frames = "".join(tb[-(lines + 1):-1]).strip().replace("\n", " | ")
    return f"{type(e).__name__}: {e} [{frames}]"


class EarlyStopTrainer:
    def __init__(self, cfg: Config, device: torch.device, splits: Splits | None = None) -> None:
        self.cfg = cfg
        self.t = cfg.trainer
        self.device = device
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.splits = splits if splits is not None else load_splits(cfg.data, device)
        self.interrupt: Interrupt = None

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, interrupt: Interrupt = None) -> TrainResult:
        """Train one candidate. `interrupt`, if given, is polled once per batch; when it returns
        True, `Interrupted` is raised (the caller is being stopped, the candidate will be retrained)."""
        start = time.perf_counter()
        fault = self.t.inject_fault if self.t.inject_every and candidate_id % self.t.inject_every == 0 else "none"
        self.interrupt = interrupt
        result = TrainResult(Status.OK)
        try:
            result = self._train(nsc, seed, fault)
        except Exception as e:  # a candidate's failure is a result, never a crash
            status = Status.OOM if _is_oom(e) else Status.ERROR
            result = TrainResult(status, message=_tail(e))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        result.seconds = time.perf_counter() - start
        return result

    def _train(self, nsc: NSC, seed: int, fault: str) -> TrainResult:
        t, s = self.t, self.splits
        chance = 100.0 / s.num_classes
        restarts = 0
        while True:
            torch.manual_seed(seed + restarts)
            gen = torch.Generator(device=self.device).manual_seed(seed + restarts)
            model = build_network(nsc, self.cfg.network, s.in_channels, s.size, s.num_classes).to(self.device)
            lr = t.lr * t.restart_lr_factor ** restarts
            opt = torch.optim.Adam(model.parameters(), lr=lr, betas=t.betas, eps=t.adam_eps)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t.lr_step, gamma=t.lr_decay)
            restart = False
            for epoch in range(t.epochs):
                loss_sum = self._epoch(model, opt, gen, fault if epoch == 0 else "none")
                if not math.isfinite(loss_sum):
                    return TrainResult(Status.NAN, epochs=epoch + 1, restarts=restarts,
                                       message=f"loss is {loss_sum} in epoch {epoch + 1}")
                sched.step()
                if epoch == 0 and restarts < t.max_restarts and t.epochs > 1:
                    if self.evaluate(model) <= chance:
                        restart = True
                        break
            if not restart:
                return TrainResult(Status.OK, accuracy=self.evaluate(model), epochs=t.epochs, restarts=restarts)
            restarts += 1

    def _epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, fault: str) -> float:
        s = self.splits
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        for i, idx in enumerate(epoch_batches(len(s.train_y), self.t.batch_size, gen, self.device)):
            if self.interrupt is not None and self.interrupt():
                raise Interrupted()
            x, y = s.train_x.index_select(0, idx), s.train_y.index_select(0, idx)
            loss = F.cross_entropy(model(x), y)
            if fault != "none" and i == 0:
                if fault == "exception":
                    raise InjectedFault("injected exception (trainer.inject_fault)")
                if fault == "oom":
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (injected, trainer.inject_fault)")
                if fault == "nan":
                    loss = loss * float("nan")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        return float(loss_sum)  # the one host sync of the epoch

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> float:
        """Validation accuracy in percent."""
        s = self.splits
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for i in range(0, len(s.val_y), self.t.eval_batch_size):
            x = s.val_x[i:i + self.t.eval_batch_size]
            correct += (model(x).argmax(1) == s.val_y[i:i + self.t.eval_batch_size]).sum()
        return 100.0 * int(correct) / len(s.val_y)


# ------------------------------------------------------------ simulated

# Credit per op (type, kernel) for the simulated accuracy: convolutions help, 3x3 most;
# pools and identities little; joins (add, concat) help. Chosen so that the best
# blocks have a few convolutions, a shortcut and a merge, like the paper's.
_SIM_CREDIT = {(1, 1): 2.0, (1, 3): 4.5, (1, 5): 3.5, (2, 1): -0.5, (2, 3): 0.8, (3, 1): -0.5, (3, 3): 0.5,
               (4, 0): -0.3, (5, 0): 3.0, (6, 0): 2.0}


def simulated_accuracy(nsc: NSC) -> float:
    """A deterministic 'accuracy' (percent) with structure an agent can learn:
    saturating in the summed op credits, penalised beyond 10 layers, plus a
    +-1 point jitter from the block's canonical hash (equal for equal blocks)."""
    layers = [l for l in nsc if l.type != 7]
    score = sum(_SIM_CREDIT[(l.type, l.kernel)] for l in layers)
    acc = 40.0 + 50.0 * (1.0 - math.exp(-max(score, 0.0) / 15.0)) - 1.5 * max(0, len(layers) - 10)
    acc -= 2.0 * max(0, len(graph(nsc).leaves) - 2)  # many loose ends
    jitter = int(canonical_hash(nsc)[:6], 16) / 0xFFFFFF * 2.0 - 1.0
    return float(min(max(acc + jitter, 1.0), 99.0))


class SimulatedTrainer:
    """`trainer.kind = "simulated"`: no data, no torch compute; sleeps a lognormal time
    (median `sim_seconds`, spread `sim_sigma`, drawn from the candidate's seed) and
    returns `simulated_accuracy`. Faults are injected as in the real trainer."""

    def __init__(self, cfg: Config) -> None:
        self.t = cfg.trainer

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, interrupt: Interrupt = None) -> TrainResult:
        start = time.perf_counter()
        if self.t.sim_seconds > 0:
            rng = np.random.default_rng(seed ^ (candidate_id & 0x7FFFFFFF))
            end = start + self.t.sim_seconds * math.exp(self.t.sim_sigma * rng.standard_normal())
            while (left := end - time.perf_counter()) > 0:  # sleep in slices so a stop is noticed
                time.sleep(min(left, 0.05))
                if interrupt is not None and interrupt():
                    raise Interrupted()
        fault = self.t.inject_fault if self.t.inject_every and candidate_id % self.t.inject_every == 0 else "none"
        if fault == "exception":
            result = TrainResult(Status.ERROR, message="InjectedFault: injected exception (trainer.inject_fault)")
        elif fault == "nan":
            result = TrainResult(Status.NAN, epochs=1, message="loss is nan in epoch 1")
        elif fault == "oom":
            result = TrainResult(Status.OOM, message="OutOfMemoryError: CUDA out of memory (injected, trainer.inject_fault)")
        else:
            result = TrainResult(Status.OK, accuracy=simulated_accuracy(nsc), epochs=self.t.epochs)
        result.seconds = time.perf_counter() - start
        return result


def make_trainer(cfg: Config, device: torch.device | None = None):
    if cfg.trainer.kind == "simulated":
        return SimulatedTrainer(cfg)
    return EarlyStopTrainer(cfg, device or resolve_device(cfg.trainer.device))
