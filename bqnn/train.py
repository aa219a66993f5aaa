"""Train one block's network to convergence: verification of a search's top blocks, or final training.

    python -m bqnn.train --from runs/demo --rank 1                         # verify the best block of a search
    python -m bqnn.train --from runs/demo --top 10                         # verify the 10 best, one after another
    python -m bqnn.train --block residual-like --protocol cifar-final --out runs/res --set data.dataset=cifar10 --set data.root=$DATA
    python -m bqnn.train --nsc "[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]" --filters 80,160,320 --out runs/x
    srun -n 8 --gpus-per-task=1 python -m bqnn.train --block residual-like --protocol imagenet-final \\
        --framework imagenet --out runs/inet --set data.dataset=imagefolder --set data.root=$IMAGENET

The block comes from `--nsc`, a named block (`--block`), or the K-th best unique
block of a search (`--from DIR --rank K`, by reward; `--top K` does ranks 1..K). With `--from`,
the dataset and network of the search are used, and the output goes to DIR/verify/rank-KKK
unless `--out` says otherwise, so verification results sit next to the search and the report
shows them beside the early-stop rewards.

Protocols (`--protocol`, every number a field of [train], overridable with --set train.KEY=V):
  verify          SGD m 0.9, wd 5e-4, lr 0.1, 30 epochs, /10 at 15 and 23, batch 128, crop pad 4 + flip
  cifar-final     the paper: SGD m 0.9, wd 5e-4, lr 0.1, 300 epochs, /10 at 150 and 225, batch 128, crop + flip
  imagenet-final  the paper: SGD m 0.9, wd 1e-4, lr 0.1, 90 epochs, /10 at 30 and 60, batch 256,
                  shorter side in [256, 480], crop 224 + flip; test: shorter side 256, center crop 224
Model selection uses the validation split held out of the training set; the test set is
evaluated once, at the end, with the weights of the best validation epoch.

Data-parallel: launched by mpiexec or srun with several ranks, the ranks form a torch.distributed
group (NCCL on GPUs, gloo on CPUs; dist.py) and each takes its slice of every global batch
(`train.batch_size` is the global batch), so the run follows a single process's. Rank 0 writes.

Every epoch ends with an atomic checkpoint (OUT/train.pt: part file, fsync, rename); running the
same command again resumes from the last complete epoch and ends with the same weights as an
uninterrupted run. SIGTERM/SIGUSR1 exit 143 and SIGINT 130 at the next batch, leaving the last
checkpoint. One progress line per epoch. Results: OUT/result.json and OUT/model.pt, the exported
network (`bqnn.load_network`). Bad input: one line on stderr, exit 2.
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
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint
from .config import ConfigError, FinalTrainConfig, TrainJobConfig, from_json, load, to_dict, to_json
from .data import DataError, apply_augment, augment_params, load_splits
from .dist import Dist, setup
from .export import save_network
from .network import build_network, network_cost
from .nsc import NAMED_BLOCKS, NSC, NSCError, canonical_hash, format_nsc, from_array, graph, parse

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
STOP_CHECK_EVERY = 10  # data-parallel: batches between the ranks' agreement on a stop signal


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
              "early_stop_accuracy": float(row["accuracy"]), "iteration": int(row["iteration"]),
              "blocks_per_stage": int(row["blocks"])}
    return from_array(row["nsc"], state.max_index), record, state.config_json


def _atomic_write(path: Path, write) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def _shard(idx: torch.Tensor, d: Dist) -> torch.Tensor:
    """This rank's part of a global batch of indices."""
    return idx.tensor_split(d.world)[d.rank] if d.active else idx


# ------------------------------------------------------------------ data sources

class MemorySource:
    """A dataset held on the device (Fashion-MNIST, CIFAR, an image folder at data.resize)."""

    def __init__(self, cfg: TrainJobConfig, device: torch.device, d: Dist) -> None:
        self.s = load_splits(cfg.data, device, with_test=True)
        self.t, self.device, self.d = cfg.train, device, d
        self.in_channels, self.size, self.num_classes = self.s.in_channels, self.s.size, self.s.num_classes
        self.mean, self.std = self.s.mean, self.s.std
        self.n_train = len(self.s.train_y)

    def epoch(self, epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """(x, y, global batch size) per global batch; x and y are this rank's slice, augmented."""
        s, t = self.s, self.t
        perm = torch.randperm(self.n_train, device=self.device, generator=gen)
        for idx in perm.split(t.batch_size):
            params = augment_params(len(idx), t.crop_padding, t.flip, gen, self.device)
            part = _shard(torch.arange(len(idx), device=self.device), self.d)
            local = idx[part]
            local_params = tuple(p[part] if p is not None else None for p in params)
            x = apply_augment(s.train_x.index_select(0, local), t.crop_padding, local_params)
            yield x, s.train_y.index_select(0, local), len(idx)

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = (self.s.val_x, self.s.val_y) if split == "val" else (self.s.test_x, self.s.test_y)
        idx = _shard(torch.arange(len(y), device=self.device), self.d)
        for part in idx.split(self.t.eval_batch_size):
            yield x.index_select(0, part), y.index_select(0, part)


class StreamSource:
    """An image folder decoded on the fly with the paper's ImageNet transforms (data.resize = 0)."""

    def __init__(self, cfg: TrainJobConfig, device: torch.device, d: Dist) -> None:
        from .imagefolder import FolderError, StreamDataset, list_folder, load_fixed

        data = cfg.data
        try:
            listing = list_folder(data.root)
        except FolderError as e:
            raise DataError(str(e)) from None
        n = len(listing.train)
        if data.val_size >= n:
            raise DataError(f"data.val_size {data.val_size} leaves no training images (the training set has {n})")
        perm = np.random.default_rng(data.split_seed).permutation(n)
        val_items = [listing.train[i] for i in sorted(perm[: data.val_size])]
        train_idx = perm[data.val_size:]
        if data.train_subset:
            train_idx = train_idx[: data.train_subset]
        train_items = [listing.train[i] for i in sorted(train_idx)]
        # per-channel mean and std from (up to) 1,000 training images, center crops
        sample = [train_items[i][0] for i in np.linspace(0, len(train_items) - 1, min(1000, len(train_items))).astype(int)]
        px = np.stack([load_fixed(p, data.crop) for p in sample]).astype(np.float64) / 255.0
        self.mean = tuple(px.mean(axis=(0, 2, 3)).tolist())
        self.std = tuple(np.maximum(px.std(axis=(0, 2, 3)), 1e-6).tolist())
        mk = lambda items, train: StreamDataset(items, train, data.crop, data.scale, data.test_resize, self.mean, self.std)
        self.train_ds, self.val_ds, self.test_ds = mk(train_items, True), mk(val_items, False), mk(listing.test, False)
        self.t, self.device, self.d, self.workers = cfg.train, device, d, data.workers
        self.in_channels, self.size, self.num_classes = 3, data.crop, len(listing.classes)
        self.n_train = len(train_items)

    def _loader(self, ds, batches: list[list[int]]):
        return torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=self.workers,
                                           pin_memory=self.device.type == "cuda")

    def epoch(self, epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        perm = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(int(gen.initial_seed())))
        global_batches = list(perm.split(self.t.batch_size))
        local = [_shard(b, self.d).tolist() for b in global_batches]
        self.train_ds.epoch_seed = int(gen.initial_seed())
        for (x, y), b in zip(self._loader(self.train_ds, local), global_batches):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), len(b)

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.val_ds if split == "val" else self.test_ds
        idx = _shard(torch.arange(len(ds)), self.d)
        for x, y in self._loader(ds, [b.tolist() for b in idx.split(self.t.eval_batch_size)]):
            yield x.to(self.device), y.to(self.device)


# ------------------------------------------------------------------------- job

class Job:
    def __init__(self, nsc: NSC, cfg: TrainJobConfig, out: Path, source: dict, d: Dist, device: torch.device) -> None:
        self.nsc, self.cfg, self.out, self.source, self.d, self.device = nsc, cfg, out, source, d, device
        self.t = cfg.train
        if self.t.threads:
            torch.set_num_threads(self.t.threads)
        streamed = cfg.data.dataset == "imagefolder" and not cfg.data.resize
        self.data = StreamSource(cfg, device, d) if streamed else MemorySource(cfg, device, d)
        dd = self.data
        torch.manual_seed(self.t.seed)  # the initial weights; DDP broadcasts rank 0's anyway
        self.net = build_network(nsc, cfg.network, dd.in_channels, dd.size, dd.num_classes).to(device)
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
        self.best_state: dict | None = None
        self.seconds = 0.0
        self.stop: int | None = None

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
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.best_epoch, self.best_acc = int(state["best_epoch"]), float(state["best_acc"])
        self.best_state, self.seconds = state["best_model"], float(state["seconds"])
        return True

    # -------------------------------------------------------------- training
    def on_signal(self, signum: int, frame) -> None:
        self.stop = signum

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
                if i % STOP_CHECK_EVERY == 0 and (signum := self.d.agree_max(self.stop or 0, self.device)):
                    raise Stopped(signum)
            elif self.stop is not None:
                raise Stopped(self.stop)
            # the local mean over this rank's slice, weighted so that DDP's average over ranks is the
            # global batch's mean even when the last batch does not split evenly
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
            correct += (self.net(x).argmax(1) == y).sum()
            seen += len(y)
        c, n = self.d.all_sum([float(correct), float(seen)], self.device)
        return 100.0 * c / max(n, 1)

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
            val = self.evaluate("val")
            self.seconds += time.perf_counter() - t0
            self.history.append({"epoch": self.epoch + 1, "loss": loss, "val_accuracy": val, "lr": lr_at(t, self.epoch)})
            if val > self.best_acc:
                self.best_acc, self.best_epoch = val, self.epoch + 1
                self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            self.epoch += 1
            self.save()
            self.d.barrier()
            eta = self.seconds / len(self.history) * (t.epochs - self.epoch)
            self.log(f"epoch {self.epoch:>{len(str(t.epochs))}}/{t.epochs}  lr {lr_at(t, self.epoch - 1):.4g}  "
                     f"loss {loss:.4f}  val {val:6.2f} %  best {self.best_acc:6.2f} % (epoch {self.best_epoch})  "
                     f"{time.perf_counter() - t0:6.1f}s  ETA {eta / 60:.1f} min")
        final_val = self.history[-1]["val_accuracy"] if self.history else 0.0
        if self.best_state is not None:  # model selection: the best validation epoch
            self.net.load_state_dict(self.best_state)
        test = self.evaluate("test")  # once, at the end
        result = {
            "nsc": format_nsc(self.nsc), "hash": canonical_hash(self.nsc), "source": self.source,
            "protocol": t.protocol, "config": to_dict(self.cfg), "epochs": t.epochs, "world_size": self.d.world,
            "best_epoch": self.best_epoch, "best_val_accuracy": self.best_acc, "final_val_accuracy": final_val,
            "test_accuracy": test, "params": self.cost.params, "flops": self.cost.flops,
            "density": graph(self.nsc).density, "seconds": self.seconds, "history": self.history,
        }
        if self.d.main:
            dd = self.data
            save_network(self.out / "model.pt", self.net, self.nsc, self.cfg.network, dd.in_channels, dd.size,
                         dd.num_classes, dd.mean, dd.std,
                         meta={k: result[k] for k in ("protocol", "best_epoch", "best_val_accuracy", "test_accuracy",
                                                      "source", "hash")})
            _atomic_write(self.out / "result.json", lambda f: f.write(json.dumps(result, indent=1).encode()))
        self.log(f"done: test accuracy {test:.2f} % (best validation {self.best_acc:.2f} % at epoch {self.best_epoch}); "
                 f"{self.out / 'result.json'}, network {self.out / 'model.pt'}")
        return result


# ------------------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bqnn.train", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--nsc", help='the block code, "[(1,4,0,0,0),...]"')
    src.add_argument("--block", choices=sorted(NAMED_BLOCKS), help="a named block")
    src.add_argument("--from", dest="search", metavar="DIR", help="a search directory (with --rank or --top)")
    p.add_argument("--rank", type=int, default=1, help="with --from: the K-th best unique block (1 = best)")
    p.add_argument("--top", type=int, default=0, help="with --from: verify ranks 1..K one after another")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="verify")
    p.add_argument("--config", help="TOML with [data], [network], [train] sections")
    p.add_argument("--out", help="output directory (default with --from: DIR/verify/rank-KKK)")
    p.add_argument("--filters", help="stage widths, e.g. 80,160,320 (the paper's 'more filters')")
    p.add_argument("--framework", choices=["cifar", "imagenet"])
    p.add_argument("--blocks-per-stage", type=int, help="N")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace, rank: int | None = None) -> tuple[NSC, TrainJobConfig, Path, dict]:
    source: dict = {}
    base: dict = {}
    if args.search:
        k = rank or args.rank
        nsc, source, cfg_json = top_block(args.search, k)
        stored = json.loads(cfg_json)
        base = {"data": stored["data"], "network": stored["network"]}
        if source["blocks_per_stage"]:  # BlockQNN-L: the N the block was searched with
            base["network"] = dict(base["network"], blocks_per_stage=source["blocks_per_stage"])
        out = Path(args.out) / f"rank-{k:03d}" if args.out and args.top else \
            Path(args.out) if args.out else Path(args.search) / "verify" / f"rank-{k:03d}"
    else:
        nsc = NAMED_BLOCKS[args.block] if args.block else parse(args.nsc)
        source = {"block": args.block} if args.block else {"nsc": format_nsc(nsc)}
        if not args.out:
            raise ConfigError("--out is required with --nsc or --block")
        out = Path(args.out)
    base["train"] = {"protocol": args.protocol, **PROTOCOLS[args.protocol]}
    cfg = from_json(json.dumps(base), TrainJobConfig)
    if args.config:  # the file's keys over the preset and the search's values
        import tomllib

        load(args.config, [], root=TrainJobConfig)  # validates, one line on error
        merged = to_dict(cfg)
        for section, values in tomllib.loads(Path(args.config).read_text()).items():
            merged[section].update(values)
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


def _fail(message: str) -> int:
    from .mpi import env_rank

    if env_rank() == 0:  # under MPI, one line from rank 0, not one per rank
        print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.top and not args.search:
        return _fail("--top needs --from DIR")
    ranks = list(range(1, args.top + 1)) if args.top else [None]
    try:
        d, device = setup(resolve(args, ranks[0])[1].train.device)
    except (ConfigError, NSCError, DataError, checkpoint.CheckpointError, ValueError) as e:
        return _fail(str(e))
    try:
        for k in ranks:
            code = _train_one(args, k, d, device)
            if code:
                return code
        return 0
    finally:
        d.close()


def _train_one(args: argparse.Namespace, rank: int | None, d: Dist, device: torch.device) -> int:
    try:
        nsc, cfg, out, source = resolve(args, rank)
        if args.top and (out / "result.json").exists():
            if d.main:
                print(f"rank {rank}: {out / 'result.json'} exists, skipped", flush=True)
            return 0
        if d.main:
            out.mkdir(parents=True, exist_ok=True)
        d.barrier()
        job = Job(nsc, cfg, out, source, d, device)
    except (ConfigError, NSCError, DataError, checkpoint.CheckpointError, ValueError) as e:
        return _fail(str(e))
    for s in EXIT:
        signal.signal(s, job.on_signal)
    job.log(f"bqnn train: {format_nsc(nsc)} ({job.cost.params:,} params, {job.cost.flops / 1e9:.3f} GFLOPs), "
            f"protocol {cfg.train.protocol}, {cfg.train.epochs} epochs on {cfg.data.dataset} ({device}"
            f"{f', {d.world} ranks' if d.active else ''}), output {out}")
    try:
        job.run()
    except Stopped as e:
        job.log(f"stopped by signal {signal.Signals(e.signum).name} during epoch {job.epoch + 1}; the checkpoint "
                f"after epoch {job.epoch} is kept; run the same command to resume")
        return EXIT[e.signum]
    except (ConfigError, TrainError) as e:
        if d.main:
            print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
