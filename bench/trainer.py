"""Candidate training throughput: bqnn's early-stop trainer against a plain PyTorch DataLoader loop.

    python bench/trainer.py                      # CPU: the demo's networks on a Fashion-MNIST subset
    python bench/trainer.py --preset cifar       # the paper's CIFAR network (N=4, [32,64,128]) on CIFAR-shaped data
    python bench/trainer.py --preset cifar --candidate   # GPU: also one full 12-epoch CIFAR-100-sized candidate
    python bench/trainer.py --kernels            # also avg pool and batch norm alone, native vs bqnn's CPU forms
    python bench/trainer.py --set trainer.avg_pool_conv=off   # ablation: one speed option off on bqnn's side

Reference set: the paper's two example blocks and three blocks sampled at epsilon = 1 with seed 0.
Each is trained with the early-stop protocol (Adam 1e-3, batch 256, lr x 0.2 every 5 epochs, the
epoch-1 chance check, validation at the end) twice on the same model and data:
- bqnn: trainer.EarlyStopTrainer, data resident on the device, batches by index_select, no host
  synchronisation inside an epoch;
- loop: the way the paper's era wrote it: a Dataset whose __getitem__ turns one uint8 image into a
  PIL image, then into a normalized float tensor (ToTensor + Normalize), a DataLoader (shuffle,
  batch 256, 2 worker processes, pinned memory on GPUs), a copy to the device per batch and a
  loss.item() per batch for the running loss.
Prints images/s of each (training images x epochs / wall time of the candidate, the median of
--repeats runs taken in turns) and their ratio;
on a GPU also the seconds of one 12-epoch CIFAR-100-sized candidate of the residual-like block
(N=2, [32,64,128], 45,000 training images; random data when CIFAR-100 is not given), candidates
per GPU-hour and the model FLOP utilisation against --peak-tflops.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import INCEPTION_LIKE, RESIDUAL_LIKE, format_nsc
from bqnn.blocks.cost import network_cost
from bqnn.blocks.space import Space
from bqnn.config import ConfigError, load
from bqnn.data.splits import Splits, load_splits
from bqnn.nets.network import build_network
from bqnn.strategies.qtable import QTable
from bqnn.training.device import resolve_device
from bqnn.training.early_stop import EarlyStopTrainer
from bqnn.training.result import candidate_seed

PRESETS = {
    "demo": ["data.train_subset=4000", "data.val_size=1000", "data.resize=14", "network.blocks_per_stage=1",
             "network.filters=[8,16,32]", "trainer.epochs=2", "trainer.lr_step=1", "space.max_index=7"],
    "cifar": ["data.train_subset=5000", "data.val_size=1000", "network.blocks_per_stage=4",
              "network.filters=[32,64,128]", "trainer.epochs=1", "space.max_index=10"],
}
# bqnn with every speed option off: what is left is the data path
PLAIN = ["trainer.amp=off", "trainer.channels_last=off", "trainer.fused_adam=false", "trainer.avg_pool_conv=off",
         "trainer.narrow_bn_contiguous=off"]


def reference_blocks(max_index: int) -> list:
    agent = QTable(Space(max_index), seed=0)
    return [RESIDUAL_LIKE, INCEPTION_LIKE] + [agent.sample(1.0) for _ in range(3)]


def synthetic_cifar(n: int, val: int, classes: int, device: torch.device) -> Splits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + val, 3, 32, 32, generator=g)
    y = torch.randint(0, classes, (n + val,), generator=g)
    return Splits(x[:n].to(device), y[:n].to(device), x[n:].to(device), y[n:].to(device), classes,
                  (0.0,) * 3, (1.0,) * 3)


class PaperEraDataset(torch.utils.data.Dataset):
    """One uint8 HWC image at a time: PIL image, then ToTensor + Normalize, as torchvision did it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i].squeeze(-1) if self.images.shape[-1] == 1 else self.images[i])
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return (x - self.mean) / self.std, int(self.labels[i])


def to_uint8_hwc(x: torch.Tensor, mean, std) -> np.ndarray:
    """Undo the normalization of a device-resident split: the raw images the loop starts from."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    raw = (x.cpu() * s + m).clamp(0, 1).mul(255).round().to(torch.uint8)
    return raw.permute(0, 2, 3, 1).contiguous().numpy()


def loop_candidate(nsc, cfg, splits: Splits, device: torch.device, seed: int, workers: int) -> float:
    """The early-stop protocol with a DataLoader; returns seconds."""
    t = cfg.trainer
    train = PaperEraDataset(to_uint8_hwc(splits.train_x, splits.mean, splits.std), splits.train_y.cpu().numpy(),
                            splits.mean, splits.std)
    val = PaperEraDataset(to_uint8_hwc(splits.val_x, splits.mean, splits.std), splits.val_y.cpu().numpy(),
                          splits.mean, splits.std)
    pin = device.type == "cuda"
    start = time.perf_counter()
    train_loader = torch.utils.data.DataLoader(train, batch_size=t.batch_size, shuffle=True, num_workers=workers,
                                               pin_memory=pin)
    val_loader = torch.utils.data.DataLoader(val, batch_size=t.batch_size, num_workers=workers, pin_memory=pin)
    torch.manual_seed(seed)
    model = build_network(nsc, cfg.network, splits.in_channels, splits.size, splits.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, betas=t.betas, eps=t.adam_eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t.lr_step, gamma=t.lr_decay)

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        model.train()
        return 100.0 * correct / len(val)

    for epoch in range(t.epochs):
        running = 0.0
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()
        sched.step()
        if epoch == 0 and t.epochs > 1:
            evaluate()  # the chance check (no restart: the same work as bqnn's common case)
    evaluate()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bqnn_candidate(trainer: EarlyStopTrainer, nsc, seed: int) -> float:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    r = trainer.train(nsc, seed, 1)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    assert r.status == 0, r.message
    return time.perf_counter() - start


def full_candidate(device: torch.device, peak_tflops: float, data_root: str, images: int = 45000,
                   epochs: int = 12) -> None:
    """One 12-epoch CIFAR-100-sized candidate of the residual-like block, N=2, [32,64,128] (`images` and
    `epochs` smaller only to try the code path on a CPU)."""
    sets = ["network.blocks_per_stage=2", "network.filters=[32,64,128]", "data.dataset=cifar100", "data.val_size=5000",
            f"trainer.epochs={epochs}"]
    # random labels never beat chance: without the real set the epoch-1 check would restart the candidate
    sets.append(f"data.root={data_root}" if data_root else "trainer.max_restarts=0")
    cfg = load(None, sets)
    splits = load_splits(cfg.data, device) if data_root else synthetic_cifar(images, 5000, 100, device)
    trainer = EarlyStopTrainer(cfg, device, splits)
    seed = candidate_seed(0, canonical_hash(RESIDUAL_LIKE))
    bqnn_candidate(trainer, RESIDUAL_LIKE, seed)  # warm-up (cuDNN autotuning, allocator)
    seconds = bqnn_candidate(trainer, RESIDUAL_LIKE, seed)
    flops = network_cost(RESIDUAL_LIKE, cfg.network, 3, 32, 100).flops
    work = 3 * flops * len(splits.train_y) * cfg.trainer.epochs  # forward + backward ~ 3x forward
    print(f"{epochs}-epoch CIFAR-100-sized candidate (residual-like, N=2, [32,64,128], {len(splits.train_y)} images, "
          f"{'CIFAR-100' if data_root else 'random data'}): {seconds:.1f} s, {3600 / seconds:.0f} candidates per "
          f"GPU-hour ({3600 / seconds / 4.9:.0f}x the paper's 4.9), model FLOP utilisation "
          f"{100 * work / seconds / (peak_tflops * 1e12):.1f} % of {peak_tflops:g} TFLOP/s")


def layer_kernels(device: torch.device, dtype: torch.dtype | None) -> None:
    """Forward + backward of nets/cpu_kernels.py's two dual-form layers, native and as the trainer runs them on CPUs,
    channels-last, batch 256, at the demo's and the paper's CIFAR shapes."""
    from bqnn.nets.cpu_kernels import AvgPool, BatchNorm

    def timed(layer, x: torch.Tensor, g: torch.Tensor) -> float:
        ts = []
        for _ in range(25):
            t = time.perf_counter()
            layer(x).backward(g)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
        return 1e6 * float(np.median(ts[5:]))

    dtype = dtype or torch.float32
    print(f"layer forward + backward, channels-last {str(dtype).replace('torch.', '')}, batch 256, microseconds:")
    print(f"{'layer':<26} {'native':>8} {'bqnn':>8} {'ratio':>6}")
    for c, size in [(8, 14), (16, 7), (32, 4), (32, 32), (64, 16), (128, 8)]:
        x = torch.randn(256, c, size, size, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        g = torch.randn_like(x)
        pool, bn = AvgPool(3).to(device), BatchNorm(c).to(device)
        rows = []
        for name, layer, attr in [("avg pool 3x3", pool, "as_conv"), ("batch norm", bn, "narrow_contiguous")]:
            setattr(layer, attr, False)
            native = timed(layer, x, g)
            setattr(layer, attr, True)
            rows.append((name, native, timed(layer, x, g)))
        for name, native, ours in rows:
            print(f"{name + f' {c} ch {size}x{size}':<26} {native:>8.0f} {ours:>8.0f} {native / ours:>6.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="demo on CPUs, cifar on GPUs by default")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of the loop")
    p.add_argument("--set", action="append", default=[], metavar="trainer.KEY=VALUE",
                   help="override a key of bqnn's side, e.g. --set trainer.avg_pool_conv=off (repeatable)")
    p.add_argument("--kernels", action="store_true",
                   help="also time avg pool and batch norm, native vs bqnn's CPU forms")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each candidate per side (median)")
    p.add_argument("--candidate", action="store_true", help="also time one full 12-epoch CIFAR-100-sized candidate")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 peak (H100 SXM: 989)")
    p.add_argument("--cifar-root", default="", help="directory with cifar-100-python (else random data)")
    p.add_argument("--candidate-images", type=int, default=45000, help="--candidate: training images (random data)")
    p.add_argument("--candidate-epochs", type=int, default=12, help="--candidate: epochs")
    args = p.parse_args()
    device = resolve_device("auto")
    preset = args.preset or ("cifar" if device.type == "cuda" else "demo")
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    bad = [item for item in args.set if not item.startswith("trainer.")]
    if bad:
        p.error(f"--set takes trainer keys (the data are loaded once for both sides): {bad[0]}")
    try:  # bqnn's side (the data are given to it), checked before the data are read
        ours = load(None, PRESETS[preset] + args.set)
    except ConfigError as e:
        p.error(str(e))
    cfg = load(None, PRESETS[preset])
    if preset == "cifar" and not args.cifar_root:
        splits = synthetic_cifar(cfg.data.train_subset, cfg.data.val_size, 100, device)
    else:
        data = ["data.dataset=cifar100", f"data.root={args.cifar_root}"] if args.cifar_root else []
        cfg = load(None, PRESETS[preset] + data)
        splits = load_splits(cfg.data, device)
    trainer = EarlyStopTrainer(ours, device, splits)
    fp32 = EarlyStopTrainer(load(None, PRESETS[preset] + PLAIN), device, splits)
    print(f"bench/trainer.py: preset {preset} on {device} ({torch.get_num_threads()} threads), "
          f"{len(splits.train_y)} training images {tuple(splits.train_x.shape[1:])}, {cfg.trainer.epochs} epoch(s), "
          f"batch {cfg.trainer.batch_size}; bqnn amp {trainer.amp_dtype or 'off'}, channels_last "
          f"{trainer.channels_last}, avg_pool_conv {trainer.avg_pool_conv}, narrow_bn_contiguous "
          f"{trainer.narrow_bn_contiguous}; loop: DataLoader with {args.workers} workers, fp32")
    images = len(splits.train_y) * cfg.trainer.epochs
    ratios, ratios32 = [], []
    print(f"{'block':<48} {'bqnn img/s':>11} {'bqnn fp32':>10} {'loop img/s':>11} {'ratio':>6} {'fp32 ratio':>10}")
    for nsc in reference_blocks(cfg.space.max_index):
        seed = candidate_seed(0, canonical_hash(nsc))
        bqnn_candidate(trainer, nsc, seed)  # warm-up (the loop's first epoch is its own warm-up: no cache to fill)
        bqnn_candidate(fp32, nsc, seed)
        runs = [(bqnn_candidate(trainer, nsc, seed), bqnn_candidate(fp32, nsc, seed),
                 loop_candidate(nsc, cfg, splits, device, seed, args.workers)) for _ in range(args.repeats)]
        tb, t32, tl = np.median(np.array(runs), axis=0)  # interleaved: a slow spell of the machine hits all three
        ratios.append(tl / tb)
        ratios32.append(tl / t32)
        text = format_nsc(nsc)
        print(f"{text[:45] + ('...' if len(text) > 45 else ''):<48} {images / tb:>11.0f} {images / t32:>10.0f} "
              f"{images / tl:>11.0f} {tl / tb:>6.2f} {tl / t32:>10.2f}")
    def gm(r: list[float]) -> float:
        return math.exp(np.mean(np.log(r)))

    print(f"geometric mean ratio bqnn / DataLoader loop: {gm(ratios):.2f}x (min {min(ratios):.2f}x, max "
          f"{max(ratios):.2f}x); with bqnn in fp32 too (the data path alone): {gm(ratios32):.2f}x")
    if args.kernels:
        layer_kernels(device, trainer.amp_dtype)
    if args.candidate:
        full_candidate(device, args.peak_tflops, args.cifar_root, args.candidate_images, args.candidate_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
