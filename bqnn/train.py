"""Train one block's network to convergence: verification of a search's top blocks, or final training.

    python -m bqnn.train --from runs/demo --rank 1                         # verify the best block of a search
    python -m bqnn.train --from DIR --rank 3 --protocol verify --out DIR/verify/rank-003
    python -m bqnn.train --block residual-like --protocol cifar-final --out runs/res --set data.dataset=cifar10 --set data.root=$DATA
    python -m bqnn.train --nsc "[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]" --filters 80,160,320 --out runs/x

The block comes from `--nsc`, a named block (`--block`), or the K-th best unique
block of a search (`--from DIR --rank K`, by reward). With `--from`, the dataset
and network of the search are used, and the output goes to DIR/verify/rank-K
unless `--out` says otherwise, so verification results sit next to the search.

Protocols (`--protocol`, every number a field of [train], overridable with --set train.KEY=V):
  verify          SGD m 0.9, wd 5e-4, lr 0.1, 30 epochs, /10 at 15 and 23, batch 128, crop 32 pad 4 + flip
  cifar-final     the paper: SGD m 0.9, wd 5e-4, lr 0.1, 300 epochs, /10 at 150 and 225, batch 128, crop + flip
  imagenet-final  the paper: SGD m 0.9, wd 1e-4, lr 0.1, 90 epochs, /10 at 30 and 60, batch 256, flip
Model selection uses the validation split held out of the training set; the test
set is evaluated once, at the end, with the weights of the best validation epoch.

Every epoch ends with an atomic checkpoint (OUT/train.pt: part file, fsync,
rename); running the same command again resumes from the last complete epoch
and ends with the same weights as an uninterrupted run (shuffling and
augmentation are seeded per epoch). SIGTERM/SIGUSR1 exit 143 and SIGINT 130 at
the next batch, leaving the last checkpoint intact. One progress line per epoch.
Result: OUT/result.json. Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint
from .config import ConfigError, FinalTrainConfig, TrainJobConfig, from_json, load, to_dict, to_json
from .data import DataError, Splits, augment, epoch_batches, load_splits
from .network import build_network, network_cost
from .nsc import NAMED_BLOCKS, NSC, NSCError, canonical_hash, format_nsc, from_array, graph, parse
from .trainer import resolve_device

PROG = "bqnn.train"

PROTOCOLS: dict[str, dict] = {
    "verify": dict(epochs=30, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(15, 23),
                   gamma=0.1, crop_padding=4, flip=True),
    "cifar-final": dict(epochs=300, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(150, 225),
                        gamma=0.1, crop_padding=4, flip=True),
    "imagenet-final": dict(epochs=90, batch_size=256, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(30, 60),
                           gamma=0.1, crop_padding=0, flip=True),
}
EXIT = {signal.SIGTERM: 143, signal.SIGUSR1: 143, signal.SIGINT: 130}


class Stopped(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class TrainError(Exception):
    """Training itself failed (e.g. the loss diverged)."""


def lr_at(t: FinalTrainConfig, epoch: int) -> float:
    """Step schedule: lr x gamma for every milestone already passed."""
    return t.lr * t.gamma ** sum(1 for m in t.milestones if epoch >= m)


def top_block(search_dir: str | Path, rank: int) -> tuple[NSC, dict, str]:
    """The rank-th best (1-based) unique trained block of a search, with its record and the search's config JSON."""
    state, _, warning = checkpoint.load(search_dir)
    if warning:
        print(warning, file=sys.stderr)
    c = state.candidates
    trained = c[(c["repeat"] == 0) & (c["status"] == 0)]
    order = trained[(-trained["reward"]).argsort(kind="stable")]
    if not 1 <= rank <= len(order):
        raise ConfigError(f"--rank {rank}: the search in {search_dir} has {len(order)} trained blocks")
    row = order[rank - 1]
    record = {"search": str(search_dir), "rank": rank, "id": int(row["id"]), "reward": float(row["reward"]),
              "early_stop_accuracy": float(row["accuracy"]), "iteration": int(row["iteration"])}
    return from_array(row["nsc"], state.max_index), record, state.config_json


def _atomic_write(path: Path, write) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


class Job:
    def __init__(self, nsc: NSC, cfg: TrainJobConfig, out: Path, source: dict) -> None:
        self.nsc, self.cfg, self.out, self.source = nsc, cfg, out, source
        self.t = cfg.train
        self.device = resolve_device(self.t.device)
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        self.splits: Splits = load_splits(cfg.data, self.device, with_test=True)
        s = self.splits
        self.model = build_network(nsc, cfg.network, s.in_channels, s.size, s.num_classes).to(self.device)
        self.cost = network_cost(nsc, cfg.network, s.in_channels, s.size, s.num_classes)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.t.lr, momentum=self.t.momentum,
                                   weight_decay=self.t.weight_decay, nesterov=self.t.nesterov)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_epoch, self.best_acc = -1, -1.0
        self.best_state: dict | None = None
        self.seconds = 0.0
        self.stop: int | None = None

    # ------------------------------------------------------------ checkpoint
    @property
    def ckpt(self) -> Path:
        return self.out / "train.pt"

    def save(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "epoch": self.epoch,
                 "history": self.history, "best_epoch": self.best_epoch, "best_acc": self.best_acc,
                 "best_model": self.best_state, "seconds": self.seconds, "nsc": format_nsc(self.nsc),
                 "config": to_json(self.cfg)}
        _atomic_write(self.ckpt, lambda f: torch.save(state, f))

    def resume(self) -> bool:
        if not self.ckpt.exists():
            return False
        try:
            state = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        except Exception as e:
            raise ConfigError(f"{self.ckpt} is unreadable ({type(e).__name__}); move it away to start over") from None
        if state["nsc"] != format_nsc(self.nsc) or state["config"] != to_json(self.cfg):
            raise ConfigError(f"{self.ckpt} belongs to another block or configuration; use another --out")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.best_epoch, self.best_acc = int(state["best_epoch"]), float(state["best_acc"])
        self.best_state, self.seconds = state["best_model"], float(state["seconds"])
        return True

    # -------------------------------------------------------------- training
    def on_signal(self, signum: int, frame) -> None:
        self.stop = signum

    def _epoch(self, epoch: int) -> float:
        t, s = self.t, self.splits
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, epoch)
        gen = torch.Generator(device=self.device).manual_seed(t.seed * 1_000_003 + epoch)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        n = 0
        for idx in epoch_batches(len(s.train_y), t.batch_size, gen, self.device):
            if self.stop is not None:
                raise Stopped(self.stop)
            x = augment(s.train_x.index_select(0, idx), t.crop_padding, t.flip, gen)
            loss = F.cross_entropy(self.model(x), s.train_y.index_select(0, idx))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach() * len(idx)
            n += len(idx)
        return float(loss_sum) / max(n, 1)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for i in range(0, len(y), self.t.eval_batch_size):
            correct += (self.model(x[i:i + self.t.eval_batch_size]).argmax(1) == y[i:i + self.t.eval_batch_size]).sum()
        return 100.0 * int(correct) / max(len(y), 1)

    def run(self) -> dict:
        t = self.t
        torch.manual_seed(t.seed)  # the initial weights (rebuilt here so resumed and fresh runs agree)
        s = self.splits
        self.model.load_state_dict(build_network(self.nsc, self.cfg.network, s.in_channels, s.size,
                                                 s.num_classes).state_dict())
        resumed = self.resume()
        if resumed:
            print(f"resuming {self.ckpt} after epoch {self.epoch}/{t.epochs}", flush=True)
        while self.epoch < t.epochs:
            t0 = time.perf_counter()
            loss = self._epoch(self.epoch)
            if not math.isfinite(loss):
                raise TrainError(f"the training loss became {loss} in epoch {self.epoch + 1}")
            val = self.evaluate(s.val_x, s.val_y)
            self.seconds += time.perf_counter() - t0
            self.history.append({"epoch": self.epoch + 1, "loss": loss, "val_accuracy": val,
                                 "lr": lr_at(t, self.epoch)})
            if val > self.best_acc:
                self.best_acc, self.best_epoch = val, self.epoch + 1
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.epoch += 1
            self.save()
            eta = self.seconds / len(self.history) * (t.epochs - self.epoch) if self.history else 0
            print(f"epoch {self.epoch:>{len(str(t.epochs))}}/{t.epochs}  lr {lr_at(t, self.epoch - 1):.4g}  "
                  f"loss {loss:.4f}  val {val:6.2f} %  best {self.best_acc:6.2f} % (epoch {self.best_epoch})  "
                  f"{time.perf_counter() - t0:6.1f}s  ETA {eta / 60:.1f} min", flush=True)
        final_val = self.history[-1]["val_accuracy"] if self.history else 0.0
        if self.best_state is not None:  # model selection: the best validation epoch
            self.model.load_state_dict(self.best_state)
        test = self.evaluate(s.test_x, s.test_y)  # once, at the end
        result = {
            "nsc": format_nsc(self.nsc), "hash": canonical_hash(self.nsc), "source": self.source,
            "protocol": t.protocol, "config": to_dict(self.cfg), "epochs": t.epochs,
            "best_epoch": self.best_epoch, "best_val_accuracy": self.best_acc, "final_val_accuracy": final_val,
            "test_accuracy": test, "params": self.cost.params, "flops": self.cost.flops,
            "density": graph(self.nsc).density, "seconds": self.seconds, "history": self.history,
        }
        _atomic_write(self.out / "result.json", lambda f: f.write(json.dumps(result, indent=1).encode()))
        print(f"done: test accuracy {test:.2f} % (best validation {self.best_acc:.2f} % at epoch {self.best_epoch}); "
              f"{self.out / 'result.json'}", flush=True)
        return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bqnn.train", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--nsc", help='the block code, "[(1,4,0,0,0),...]"')
    src.add_argument("--block", choices=sorted(NAMED_BLOCKS), help="a named block")
    src.add_argument("--from", dest="search", metavar="DIR", help="a search directory (with --rank)")
    p.add_argument("--rank", type=int, default=1, help="with --from: the K-th best unique block (1 = best)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="verify")
    p.add_argument("--config", help="TOML with [data], [network], [train] sections")
    p.add_argument("--out", help="output directory (default with --from: DIR/verify/rank-K)")
    p.add_argument("--filters", help="stage widths, e.g. 80,160,320 (the paper's 'more filters')")
    p.add_argument("--framework", choices=["cifar", "imagenet"])
    p.add_argument("--blocks-per-stage", type=int, help="N")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[NSC, TrainJobConfig, Path, dict]:
    source: dict = {}
    base: dict = {}
    if args.search:
        nsc, source, cfg_json = top_block(args.search, args.rank)
        stored = json.loads(cfg_json)
        base = {"data": stored["data"], "network": stored["network"]}
        out = Path(args.out) if args.out else Path(args.search) / "verify" / f"rank-{args.rank:03d}"
    else:
        nsc = NAMED_BLOCKS[args.block] if args.block else parse(args.nsc)
        source = {"block": args.block} if args.block else {"nsc": format_nsc(nsc)}
        if not args.out:
            raise ConfigError("--out is required with --nsc or --block")
        out = Path(args.out)
    base["train"] = {"protocol": args.protocol, **PROTOCOLS[args.protocol]}
    cfg = load(None, [], base=from_json(json.dumps(base), TrainJobConfig), root=TrainJobConfig)
    if args.config:
        file_cfg = to_dict(load(args.config, [], root=TrainJobConfig))
        merged = to_dict(cfg)
        import tomllib

        given = tomllib.loads(Path(args.config).read_text())
        for section, values in given.items():
            for key in values:
                merged[section][key] = file_cfg[section][key]
        cfg = from_json(json.dumps(merged), TrainJobConfig)
    extra = list(args.set)
    if args.filters:
        extra.append(f"network.filters=[{args.filters}]")
    if args.framework:
        extra.append(f"network.framework={args.framework}")
    if args.blocks_per_stage:
        extra.append(f"network.blocks_per_stage={args.blocks_per_stage}")
    cfg = load(None, extra, base=cfg, root=TrainJobConfig)
    return nsc, cfg, out, source


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        nsc, cfg, out, source = resolve(args)
        out.mkdir(parents=True, exist_ok=True)
        job = Job(nsc, cfg, out, source)
    except (ConfigError, NSCError, DataError, checkpoint.CheckpointError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    for s in EXIT:
        signal.signal(s, job.on_signal)
    print(f"bqnn train: {format_nsc(nsc)} ({job.cost.params:,} params, {job.cost.flops / 1e9:.3f} GFLOPs), "
          f"protocol {cfg.train.protocol}, {cfg.train.epochs} epochs on {cfg.data.dataset} ({job.device}), "
          f"output {out}", flush=True)
    try:
        job.run()
    except Stopped as e:
        print(f"stopped by signal {signal.Signals(e.signum).name} during epoch {job.epoch + 1}; the checkpoint "
              f"after epoch {job.epoch} is kept; run the same command to resume", flush=True)
        return EXIT[e.signum]
    except (ConfigError, TrainError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
