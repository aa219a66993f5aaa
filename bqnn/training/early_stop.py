"""Early-stop training of one candidate (CVPR 2018, sec. 4.2).

Used as a library through training/factory.py by rank 0 (world size 1) and the workers:

    trainer = EarlyStopTrainer(cfg, device)       # loads the data once, onto the device
    result = trainer.train(nsc, seed=..., candidate_id=...)

The protocol, every number a field of [trainer]: `epochs` (12) epochs of Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 256, no augmentation, lr x 0.2
every 5 epochs, MSRA init. If after epoch 1 the validation accuracy is no better
than chance (1/classes), the network is rebuilt and restarted with lr x 0.4, at
most 3 times. The reward's accuracy is the validation accuracy (held out of
the training set) after the last epoch, in percent. With pruning on (`pruning.rule`), the validation
accuracy is also measured after each rung epoch and reported (`on_epoch`, told every epoch); the answer, or a later
`Halt` from
`poll`, ends the candidate there (training/result.py). Injected faults (tests) are armed on the model as it is
built (`_arm`), so the training loop itself never looks for them.

Speed (none of it changes what is searched): the data sit on the device and a batch is an
index_select there; losses and correct counts accumulate on the device and are read once per
epoch; evaluation uses large batches; bf16 autocast (`trainer.amp`) and channels-last tensors
(`trainer.channels_last`) are on by default on GPUs and on CPUs with native bf16, and cuDNN
autotuning (`trainer.cudnn_benchmark`) on GPUs; Adam's update is one fused kernel (`trainer.fused_adam`)
instead of a loop over ~60 parameter tensors (3-5 % of a small candidate's step on a CPU); on CPUs
two of PyTorch's kernels are sidestepped with the same function computed another way (nets/cpu_kernels.py):
average pooling as a depthwise convolution (`trainer.avg_pool_conv`) and channels-last batch norm of
fewer than 16 channels on a contiguous copy (`trainer.narrow_bn_contiguous`). No per-candidate
compilation: every candidate is a new graph, so torch.compile's start-up would be paid 11,392 times.

Failures are results: an exception, a NaN/inf loss or running out of memory
returns a `TrainResult` with that status and a message; the search goes on.
KeyboardInterrupt and SystemExit (signals) are not caught. Inside an epoch
nothing syncs with the host: losses and correct counts accumulate on the device
and are read once per epoch.
"""
from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..blocks.code import NSC
from ..config import Config
from ..data.splits import Splits, epoch_batches, load_splits
from ..nets.cpu_kernels import use_cpu_kernels
from ..nets.network import build_network
from .core_share import CoreShare
from .device import backend_options, speed_options
from .faults import DEVICE_MESSAGE, EXCEPTION_MESSAGE, HANG_SECONDS, OOM_MESSAGE, InjectedFault, scheduled
from .result import OnEpoch, Poll, Status, TrainResult, ask, is_device_fault, pruned_result, rung_epochs


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def _tail(e: BaseException, lines: int = 3) -> str:
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    frames = "".join(tb[-(lines + 1):-1]).strip().replace("\n", " | ")
    return f"{type(e).__name__}: {e} [{frames}]"


@dataclass
class _Candidate:
    """One call's state (the trainer itself keeps none, so it is reentrant): how to ask for a stop, whom to tell
    each epoch, the fault to inject, the rung accuracies and restarts so far."""

    poll: Poll
    on_epoch: OnEpoch
    fault: str
    reported: list[float] = field(default_factory=list)
    restarts: int = 0


class _PrunedAt(Exception):
    """Ends a candidate at the rung after `epoch` epochs, from inside its batch loop (private to this trainer)."""

    def __init__(self, epoch: int) -> None:
        super().__init__(epoch)
        self.epoch = epoch


def _arm(model: torch.nn.Module, fault: str) -> None:
    """Inject `fault` (training/faults.py) into the model's first forward pass, once: a hook set up when the model is
    built, so the training loop itself never looks for faults. "nan" makes the first batch's output (and loss) NaN;
    "hang" sleeps, deaf to everything, as a process stuck in a driver call; the others raise what a real failure
    raises, for the trainer's own handlers to classify."""
    if fault == "none":
        return

    def once(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        handle.remove()
        if fault == "exception":
            raise InjectedFault(EXCEPTION_MESSAGE)
        if fault == "oom":
            raise torch.OutOfMemoryError(OOM_MESSAGE)
        if fault == "device":
            raise RuntimeError(DEVICE_MESSAGE)
        if fault == "hang":
            time.sleep(HANG_SECONDS)
        return output * float("nan") if fault == "nan" else output

    handle = model.register_forward_hook(once)


class EarlyStopTrainer:
    def __init__(self, cfg: Config, device: torch.device, splits: Splits | None = None) -> None:
        self.cfg = cfg
        self.t = cfg.trainer
        self.device = device
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        # trainer.threads = 0 on a CPU: each candidate gets the cores other processes leave free (core_share.py)
        adaptive = device.type == "cpu" and not self.t.threads and not self.t.deterministic
        self.core_share = CoreShare(torch.get_num_threads()) if adaptive else None
        self.amp_dtype, self.channels_last = speed_options(self.t, device)
        self.fused_adam = self.t.fused_adam and device.type in ("cpu", "cuda")
        cpu_auto = {"on": True, "off": False, "auto": device.type == "cpu"}  # measured on CPUs only
        self.avg_pool_conv = cpu_auto[self.t.avg_pool_conv]
        self.narrow_bn_contiguous = cpu_auto[self.t.narrow_bn_contiguous]
        backend_options(self.t.cudnn_benchmark and device.type == "cuda", self.t.deterministic)
        self.splits = splits if splits is not None else load_splits(cfg.data, device)
        self.model_params = 0  # of the last network built (tests compare it with the analytic count)
        self.rungs = rung_epochs(cfg.pruning)

    def train(self, nsc: NSC, seed: int, candidate_id: int = -1, poll: Poll = None,
              blocks_per_stage: int = 0, on_epoch: OnEpoch = None) -> TrainResult:
        """Train one candidate. `poll`, if given, is asked once per batch (training/result.py: `STOP` raises
        signals.Stopped, the candidate will be retrained; `Halt(k)` ends it at the rung after k epochs).
        `blocks_per_stage`: N of its network (BlockQNN-L's adaptive N; 0: as configured). `on_epoch`: told each
        epoch's end, with the accuracy at a rung; True there ends the candidate at that rung."""
        if self.core_share is not None:
            torch.set_num_threads(self.core_share.next())
        start = time.perf_counter()
        run = _Candidate(poll, on_epoch, scheduled(self.t, candidate_id))
        result = TrainResult(Status.OK)
        try:
            result = self._train(nsc, seed, run, blocks_per_stage)
        except _PrunedAt as p:
            result = pruned_result(self.rungs, run.reported, p.epoch, run.restarts)
        except Exception as e:  # a candidate's failure is a result, never a crash
            status = Status.OOM if _is_oom(e) else Status.DEVICE if is_device_fault(str(e)) else Status.ERROR
            # a device fault is about the GPU, not the candidate: its own words, for the line that retires the rank
            text = " ".join(f"{type(e).__name__}: {e}".split()) if status == Status.DEVICE else _tail(e)
            result = TrainResult(status, message=text)
        if result.status != Status.OK and self.device.type == "cuda":
            # outside the handler: the exception's traceback (which holds the model, its activations and the
            # optimizer) is released by then, so the cache can give their memory back
            torch.cuda.empty_cache()
        result.seconds = time.perf_counter() - start
        return result

    def _train(self, nsc: NSC, seed: int, run: _Candidate, blocks_per_stage: int = 0) -> TrainResult:
        t, s = self.t, self.splits
        network = (dataclasses.replace(self.cfg.network, blocks_per_stage=blocks_per_stage) if blocks_per_stage
                   else self.cfg.network)
        chance = 100.0 / s.num_classes
        while True:
            run.reported = []
            torch.manual_seed(seed + run.restarts)
            gen = torch.Generator(device=self.device).manual_seed(seed + run.restarts)
            model = build_network(nsc, network, s.in_channels, s.size, s.num_classes).to(self.device)
            self.model_params = sum(p.numel() for p in model.parameters())
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
            use_cpu_kernels(model, self.avg_pool_conv, self.narrow_bn_contiguous)
            _arm(model, run.fault)
            lr = t.lr * t.restart_lr_factor ** run.restarts
            opt = torch.optim.Adam(model.parameters(), lr=lr, betas=t.betas, eps=t.adam_eps,
                                   fused=self.fused_adam or None)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t.lr_step, gamma=t.lr_decay)
            restart = False
            for epoch in range(t.epochs):
                loss_sum = self._epoch(model, opt, gen, run)
                if not math.isfinite(loss_sum):
                    return TrainResult(Status.NAN, epochs=epoch + 1, restarts=run.restarts,
                                       message=f"loss is {loss_sum} in epoch {epoch + 1}")
                sched.step()
                accuracy = None
                if epoch == 0 and run.restarts < t.max_restarts and t.epochs > 1:
                    accuracy = self.evaluate(model)
                    if accuracy <= chance:
                        restart = True
                        break
                if epoch + 1 in self.rungs:
                    self._rung(run, epoch + 1, accuracy if accuracy is not None else self.evaluate(model))
                elif run.on_epoch is not None:
                    run.on_epoch(epoch + 1, None)  # progress only
            if not restart:
                return TrainResult(Status.OK, accuracy=self.evaluate(model), epochs=t.epochs, restarts=run.restarts,
                                   rungs=list(run.reported))
            run.restarts += 1

    def _rung(self, run: _Candidate, epoch: int, accuracy: float) -> None:
        run.reported.append(accuracy)
        if run.on_epoch is not None and run.on_epoch(epoch, accuracy):
            raise _PrunedAt(epoch)

    def _epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
               run: _Candidate) -> float:
        s = self.splits
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        for idx in epoch_batches(len(s.train_y), self.t.batch_size, gen, self.device):
            halt = ask(run.poll)  # raises signals.Stopped when the job stops
            if halt:
                raise _PrunedAt(halt)
            x, y = s.train_x.index_select(0, idx), s.train_y.index_select(0, idx)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        return float(loss_sum)  # the one host sync of the epoch

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None)

    @torch.inference_mode()
    def evaluate(self, model: torch.nn.Module) -> float:
        """Validation accuracy in percent."""
        s = self.splits
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for i in range(0, len(s.val_y), self.t.eval_batch_size):
            x = s.val_x[i:i + self.t.eval_batch_size]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                correct += (model(x).argmax(1) == s.val_y[i:i + self.t.eval_batch_size]).sum()
        return 100.0 * int(correct) / len(s.val_y)
