"""Train one block's network to convergence: verification of a search's top blocks, or final training.

    python -m bqnn.train --from runs/demo --rank 1                         # verify the best block of a search
    python -m bqnn.train --from runs/demo --top 10                         # verify the 10 best, one after another
    python -m bqnn.train --block residual-like --protocol cifar-final --out runs/res \\
        --set data.dataset=cifar10 --set data.root=$DATA
    python -m bqnn.train --nsc "[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]" --filters 80,160,320 --out runs/x
    srun -n 8 --gpus-per-task=1 python -m bqnn.train --block residual-like --protocol imagenet-final \\
        --framework imagenet --out runs/inet --set data.dataset=imagefolder --set data.root=$IMAGENET

The block comes from `--nsc`, a named block (`--block`), or the K-th best unique
block of a search (`--from DIR --rank K`, by reward; `--top K` does ranks 1..K). With `--from`,
the dataset and network of the search are used, and the output goes to DIR/verify/rank-KKK
unless `--out` says otherwise, so verification results sit next to the search and the report
shows them beside the early-stop rewards.

Protocols (`--protocol`, every number a field of [train], overridable with --set train.KEY=V):
  verify          SGD m 0.9, wd 5e-4, lr 0.1, 30 epochs, /10 at 15 and 23, batch 128, crop pad 4 + flip: the
                  default, a quick check of a search's top blocks (a tenth of the papers' cost)
  paper-verify    the papers' verification: each top block trained to convergence with the final recipe
                  (cifar-final's numbers), ranked by validation accuracy; the AAAI paper verified its top
                  100 on CIFAR-10 (--set data.dataset=cifar10 --set data.root=DIR)
  cifar-final     the paper: SGD m 0.9, wd 5e-4, lr 0.1, 300 epochs, /10 at 150 and 225, batch 128, crop + flip
  imagenet-final  the paper: SGD m 0.9, wd 1e-4, lr 0.1, 90 epochs, /10 at 30 and 60, batch 256,
                  shorter side in [256, 480], crop 224 + flip; test: shorter side 256, center crop 224
Model selection uses the validation split held out of the training set; the test set is
evaluated once, at the end, with the weights of the best validation epoch.

Data-parallel: launched by mpiexec or srun with several ranks, the ranks form a torch.distributed
group (NCCL on GPUs, gloo on CPUs; mpi/ddp.py, training/dist.py) and each takes its slice of every global batch
(`train.batch_size` is the global batch), so the run follows a single process's. Rank 0 writes.

Every epoch ends with an atomic checkpoint (OUT/train.pt: part file, fsync, rename); running the
same command again resumes from the last complete epoch and ends with the same weights as an
uninterrupted run. SIGTERM/SIGUSR1 exit 143 and SIGINT 130 at the next batch, leaving the last
checkpoint. One progress line per epoch. Results: OUT/result.json and OUT/model.pt, the exported
network (`bqnn.load_network`). Bad input: one line on stderr, exit 2. The job itself is training/final.py.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .signals import Stopped, exit_code, hold, ignore

if TYPE_CHECKING:
    import torch

    from .blocks.code import NSC
    from .config import TrainJobConfig
    from .training.dist import Dist

# Everything else is imported inside the functions: run as a program, this module holds stop signals
# (signals.hold) before torch, numpy and h5py load (~2 s), so a SIGTERM during start-up still exits 143.

__all__ = ["main", "setup"]

PROG = "bqnn.train"


def setup(device_spec: str) -> tuple[Dist, torch.device]:
    """(the process group, this rank's device); a single process when not launched by MPI. A launcher that
    started more tasks than the MPI world holds is a ConfigError (each would train alone, all writing one
    train.pt)."""
    from .config import ConfigError
    from .mpi.launch import launch_mismatch, launched_by_mpi
    from .training.device import resolve_device
    from .training.dist import Dist, join

    if not launched_by_mpi():
        problem = launch_mismatch(1, os.environ)
        if problem:
            raise ConfigError(problem)
        return Dist(), resolve_device(device_spec, key="train.device")
    from .mpi.ddp import bootstrap

    rank, world, local, address = bootstrap()
    problem = launch_mismatch(world, os.environ)
    if problem:
        raise ConfigError(problem)
    device = resolve_device(device_spec, local, key="train.device")
    if world == 1:
        return Dist(), device
    return join(rank, world, local, address, device), device


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from .blocks.code import NAMED_BLOCKS
    from .training.final import PROTOCOLS

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


def resolve(args: argparse.Namespace, rank: int | None = None) -> tuple[NSC, TrainJobConfig, Path, dict[str, Any]]:
    from .blocks.code import NAMED_BLOCKS, format_nsc, parse
    from .config import ConfigError, TrainJobConfig, from_json, load, to_dict
    from .results.ranking import top_block
    from .training.final import PROTOCOLS

    source: dict[str, Any] = {}
    base: dict[str, Any] = {}
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
    from .mpi.launch import env_rank

    if env_rank() == 0:  # under MPI, one line from rank 0, not one per rank
        print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from .blocks.code import NSCError
    from .config import ConfigError
    from .data.errors import DataError
    from .run.checkpoint import CheckpointError

    args = parse_args(argv)
    if args.top and not args.search:
        return _fail("--top needs --from DIR")
    ranks = list(range(1, args.top + 1)) if args.top else [None]
    try:
        d, device = setup(resolve(args, ranks[0])[1].train.device)
    except (ConfigError, NSCError, DataError, CheckpointError, ValueError) as e:
        return _fail(str(e))
    global _DATA_PARALLEL
    _DATA_PARALLEL = d.active
    code = 1
    try:
        for k in ranks:
            code = _train_one(args, k, d, device)
            if code:
                return code
        return 0
    finally:
        d.close(finished=code == 0)


def _train_one(args: argparse.Namespace, rank: int | None, d: Dist, device: torch.device) -> int:
    from .blocks.code import NSCError, format_nsc
    from .config import ConfigError
    from .data.errors import DataError
    from .run.checkpoint import CheckpointError
    from .training.final import Job, TrainError

    try:
        nsc, cfg, out, source = resolve(args, rank)
        if args.top and (out / "result.json").exists():
            _done_is_this_block(out / "result.json", nsc, rank)
            if d.main:
                print(f"rank {rank}: {out / 'result.json'} exists, skipped", flush=True)
            return 0
        job = Job(nsc, cfg, out, source, d, device)  # reads the dataset first: a bad one leaves no empty --out
        if d.main:
            out.mkdir(parents=True, exist_ok=True)
        d.barrier()
    except (ConfigError, NSCError, DataError, CheckpointError, ValueError) as e:
        return _fail(str(e))
    job.stop.install()
    job.log(f"bqnn train: {format_nsc(nsc)} ({job.cost.params:,} params, {job.cost.flops / 1e9:.3f} GFLOPs), "
            f"protocol {cfg.train.protocol}, {cfg.train.epochs} epochs on {cfg.data.dataset} ({device}"
            f"{f', {d.world} ranks' if d.active else ''}), output {out}")
    try:
        job.run()
    except Stopped as e:
        name = signal.Signals(e.signum or signal.SIGTERM).name
        if job.epoch == 0 and not job.ckpt.exists():
            job.log(f"stopped by signal {name} during epoch 1, before any checkpoint: nothing written; run the same "
                    f"command to start")
        else:
            job.log(f"stopped by signal {name} during epoch {job.epoch + 1}; the checkpoint after epoch {job.epoch} "
                    f"is kept; run the same command to resume")
        return exit_code(e.signum)
    except TrainError as e:
        if d.main:
            print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        job.stop.restore()
    return 0


def _done_is_this_block(path: Path, nsc: NSC, rank: int | None) -> None:
    """A finished verification may be skipped only if it verified the block that has this rank now: the search may
    have moved on since (a better block took the rank). ConfigError, one line, when it is another block's."""
    from .blocks.canon import canonical_hash
    from .config import ConfigError

    try:
        done = json.loads(path.read_text())
        held = done["hash"] if isinstance(done, dict) else None
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"rank {rank}: {path} is unreadable; move it away to verify this rank again") from None
    if held != canonical_hash(nsc):
        raise ConfigError(f"rank {rank}: {path} is the result of another block (hash {held}; rank {rank} of the "
                          f"search is now block {canonical_hash(nsc)}, the search has moved on); use another --out, "
                          f"or move that directory away")


# A rank of a data-parallel job ends through mpi/ddp.end (MPI finalized, no interpreter teardown: gloo's
# threads could abort the process there after the results were written).
_DATA_PARALLEL = False

if __name__ == "__main__":
    hold()
    status = main()
    ignore()  # the state is saved: a late stop signal must not turn the exit code into a kill by signal
    if _DATA_PARALLEL:
        from .mpi.ddp import end

        end(status)
    sys.exit(status)
