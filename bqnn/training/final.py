"""Training one block's network to convergence: the verification and final-training job behind `python -m bqnn.train`.

Used as a library by the entry point (bqnn/train.py, which parses the command line and sets up the data-parallel
group): `Job(nsc, cfg, out, source, dist, device).run()`.

Protocols (PROTOCOLS, every number a field of [train]): verify (SGD, 30 epochs: a quick check),
paper-verify (the papers' verification: the final recipe, to convergence), cifar-final and imagenet-final (the
papers' recipes). Model selection uses the validation split held out of the training set; the test set is
evaluated once, at the end, with the weights of the best validation epoch (data.val_size = 0: the last epoch's).
Every epoch ends with an atomic checkpoint (OUT/train.pt); a rerun resumes from the last complete epoch and ends
with the same weights as an uninterrupted run. A stop signal raises `signals.Stopped` at the next batch (data-parallel:
at the same batch on every rank). Results: OUT/result.json and OUT/model.pt (nets/portable.py).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..atomic import atomic_path, write_bytes
from ..blocks.canon import canonical_hash
from ..blocks.code import NSC, format_nsc
from ..blocks.cost import network_cost
from ..blocks.graph import graph
from ..config import FinalTrainConfig, TrainJobConfig, to_dict, to_json
from ..data.sources import MemorySource, StreamSource
from ..nets.network import build_network
from ..nets.portable import UnreadableFile, load_weights_only, one_line_reason, save_network
from ..signals import StopFlag, Stopped
from .device import backend_options, speed_options
from .dist import Dist

PROTOCOLS: dict[str, dict] = {
    "verify": dict(epochs=30, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(15, 23),
                   gamma=0.1, crop_padding=4, flip=True),
    "cifar-final": dict(epochs=300, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(150, 225),
                        gamma=0.1, crop_padding=4, flip=True),
    # the papers' verification of the top blocks: "train the network until converging to get the validation
    # accuracy as the criterion to pick the best network" (CVPR sec. 4.2), with the final-training recipe
    "paper-verify": dict(epochs=300, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(150, 225),
                         gamma=0.1, crop_padding=4, flip=True),
    "imagenet-final": dict(epochs=90, batch_size=256, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(30, 60),
                           gamma=0.1, crop_padding=0, flip=True),
}
STOP_CHECK_EVERY = 10  # data-parallel: batches between the ranks' agreement on a stop signal


class TrainError(Exception):
    """Training failed (the loss diverged: exit 1), or its checkpoint cannot be used (exit 2)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def lr_at(t: FinalTrainConfig, epoch: int) -> float:
    """Step schedule: lr x gamma for every milestone already passed."""
    return t.lr * t.gamma ** sum(1 for m in t.milestones if epoch >= m)


class Job:
    def __init__(self, nsc: NSC, cfg: TrainJobConfig, out: Path, source: dict[str, Any], d: Dist,
                 device: torch.device) -> None:
        self.nsc, self.cfg, self.out, self.source, self.d, self.device = nsc, cfg, out, source, d, device
        self.t = cfg.train
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.amp_dtype, self.channels_last = speed_options(self.t, device)
        if self.t.channels_last == "auto" and device.type != "cuda":
            # measured: two gloo ranks on a CPU with bf16 and channels-last ended 2 of 6 runs with
            # "terminate called without an active exception" at exit (0 of 5 with either off)
            self.channels_last = False
        backend_options(self.t.cudnn_benchmark and device.type == "cuda", self.t.deterministic)
        streamed = cfg.data.dataset == "imagefolder" and not cfg.data.resize
        self.data: MemorySource | StreamSource = (StreamSource(cfg, device, d.rank, d.world) if streamed
                                                  else MemorySource(cfg, device, d.rank, d.world))
        dd = self.data
        torch.manual_seed(self.t.seed)  # the initial weights; DDP broadcasts rank 0's anyway
        self.net = build_network(nsc, cfg.network, dd.in_channels, dd.size, dd.num_classes).to(device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.cost = network_cost(nsc, cfg.network, dd.in_channels, dd.size, dd.num_classes)
        if d.active and device.type == "cuda" and self.t.sync_bn:
            self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
        self.model = self.net
        if d.active:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.t.lr, momentum=self.t.momentum,
                                   weight_decay=self.t.weight_decay, nesterov=self.t.nesterov)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_epoch, self.best_acc = -1, -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        # data.val_size = 0 (the paper's final training: all training images): no model selection, the last epoch
        self.validated = cfg.data.val_size > 0
        self.seconds = 0.0
        self.stop = StopFlag()  # the entry point installs its handlers

    # ------------------------------------------------------------ checkpoint
    @property
    def ckpt(self) -> Path:
        return self.out / "train.pt"

    def save(self) -> None:
        if not self.d.main:
            return
        state = {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "epoch": self.epoch,
                 "history": self.history, "best_epoch": self.best_epoch, "best_acc": self.best_acc,
                 "best_model": self.best_state, "seconds": self.seconds, "nsc": format_nsc(self.nsc),
                 "config": to_json(self.cfg), "world": self.d.world}
        with atomic_path(self.ckpt) as part:
            torch.save(state, part)

    def resume(self) -> bool:
        if not self.ckpt.exists():
            return False
        try:
            state = load_weights_only(self.ckpt, self.device)
        except UnreadableFile as e:
            raise TrainError(f"{e}; move it away to start over", exit_code=2) from None
        if not isinstance(state, dict) or state.get("nsc") != format_nsc(self.nsc) \
                or state.get("config") != to_json(self.cfg):
            raise TrainError(f"{self.ckpt} belongs to another block or configuration; use another --out", exit_code=2)
        try:
            self._restore(state)
        except Exception as e:  # keys missing, weights of another shape: a damaged or edited file
            raise TrainError(f"{self.ckpt}: a damaged training checkpoint ({one_line_reason(e)}); move it away "
                             f"to start over", exit_code=2) from None
        return True

    def _restore(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.best_epoch, self.best_acc = int(state["best_epoch"]), float(state["best_acc"])
        self.best_state, self.seconds = state["best_model"], float(state["seconds"])

    # -------------------------------------------------------------- training
    def _epoch(self, epoch: int) -> float:
        t = self.t
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, epoch)
        gen = torch.Generator(device=self.device).manual_seed(t.seed * 1_000_003 + epoch)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        n = 0
        for i, (x, y, global_n) in enumerate(self.data.epoch(epoch, gen)):
            if self.d.active:  # all ranks stop at the same batch, or one would wait forever in an all-reduce
                if i % STOP_CHECK_EVERY == 0 and (signum := self.d.agree_max(self.stop.signum or 0, self.device)):
                    raise Stopped(signum)
            elif self.stop.signum is not None:
                raise Stopped(self.stop.signum)
            # the local mean over this rank's slice, weighted so that DDP's average over ranks is the
            # global batch's mean even when the last batch does not split evenly
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                loss = F.cross_entropy(self.model(x), y, reduction="sum") * (self.d.world / global_n)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach().double() * global_n / self.d.world
            n += len(y)
        total, count = self.d.all_sum([float(loss_sum), float(n)], self.device)
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate(self, split: str) -> float:
        self.model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for x, y in self.data.eval_batches(split):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                correct += (self.net(x).argmax(1) == y).sum()
            seen += len(y)
        c, n = self.d.all_sum([float(correct), float(seen)], self.device)
        return 100.0 * c / max(n, 1)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when train.amp (or its auto rule) turns it on, else no context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def log(self, text: str) -> None:
        if self.d.main:
            print(text, flush=True)

    def run(self) -> dict:
        t = self.t
        if self.resume():
            self.log(f"resuming {self.ckpt} after epoch {self.epoch}/{t.epochs}")
        while self.epoch < t.epochs:
            t0 = time.perf_counter()
            loss = self._epoch(self.epoch)
            if not math.isfinite(loss):
                raise TrainError(f"the training loss became {loss} in epoch {self.epoch + 1}")
            val = self.evaluate("val") if self.validated else None
            self.seconds += time.perf_counter() - t0
            self.history.append({"epoch": self.epoch + 1, "loss": loss, "val_accuracy": val,
                                 "lr": lr_at(t, self.epoch)})
            if val is not None and val > self.best_acc:
                self.best_acc, self.best_epoch = val, self.epoch + 1
                self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            self.epoch += 1
            self.save()
            self.d.barrier()
            eta = self.seconds / len(self.history) * (t.epochs - self.epoch)
            scores = (f"val {val:6.2f} %  best {self.best_acc:6.2f} % (epoch {self.best_epoch})" if val is not None
                      else "no validation split")
            self.log(f"epoch {self.epoch:>{len(str(t.epochs))}}/{t.epochs}  lr {lr_at(t, self.epoch - 1):.4g}  "
                     f"loss {loss:.4f}  {scores}  {time.perf_counter() - t0:6.1f}s  ETA {eta / 60:.1f} min")
        final_val = self.history[-1]["val_accuracy"] if self.history else None
        if not self.validated:  # data.val_size = 0: nothing to select by, the last epoch's weights
            self.best_epoch = self.epoch
        elif self.best_state is not None:  # model selection: the best validation epoch
            self.net.load_state_dict(self.best_state)
        test = self.evaluate("test")  # once, at the end
        result = {
            "nsc": format_nsc(self.nsc), "hash": canonical_hash(self.nsc), "source": self.source,
            "protocol": t.protocol, "config": to_dict(self.cfg), "epochs": t.epochs, "world_size": self.d.world,
            "selection": "best validation epoch" if self.validated else "last epoch (no validation split)",
            "best_epoch": self.best_epoch, "best_val_accuracy": self.best_acc if self.validated else None,
            "final_val_accuracy": final_val,
            "test_accuracy": test, "params": self.cost.params, "flops": self.cost.flops,
            "density": graph(self.nsc).density, "seconds": self.seconds, "history": self.history,
        }
        if self.d.main:
            dd = self.data
            save_network(self.out / "model.pt", self.net, self.nsc, self.cfg.network, dd.in_channels, dd.size,
                         dd.num_classes, dd.mean, dd.std,
                         meta={k: result[k] for k in ("protocol", "best_epoch", "best_val_accuracy", "test_accuracy",
                                                      "source", "hash")})
            write_bytes(self.out / "result.json", json.dumps(result, indent=1).encode())
        chosen = (f"best validation {self.best_acc:.2f} % at epoch {self.best_epoch}" if self.validated
                  else f"no validation split: the weights of the last epoch, {self.best_epoch}")
        self.log(f"done: test accuracy {test:.2f} % ({chosen}); {self.out / 'result.json'}, network "
                 f"{self.out / 'model.pt'}")
        return result
