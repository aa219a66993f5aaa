"""The configuration schema: every section and key as a frozen dataclass field with its default, and the range
of every number.

Used through `bqnn.config` (the face of this package): `Config` is a search's configuration, `TrainJobConfig`
`python -m bqnn.train`'s. Each numeric key has a `Range` in RANGES (tests/unit/test_config.py holds that every
one has); bqnn/config/loading.py checks values against them as it reads a job file or an override. A leaf:
imports nothing else of bqnn (the paper's constants that are defaults here, `MAX_INDEX` and `PAPER_SCHEDULE`,
are defined here and used by the block code and the strategies).
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Literal

MAX_INDEX = 23  # the paper's largest layer index of a block code (terminal included)

# Table 2 of the CVPR paper: (epsilon, iterations); 178 iterations in all.
PAPER_SCHEDULE: tuple[tuple[float, int], ...] = (
    (1.0, 95), (0.9, 7), (0.8, 7), (0.7, 7), (0.6, 10), (0.5, 10), (0.4, 10), (0.3, 10), (0.2, 10), (0.1, 12),
)

# The strategies `search.strategy` may name; bqnn.strategies registers one class under each
# (tests/unit/strategies hold the two lists equal).
STRATEGY_NAMES = ("qlearning", "random", "pnas", "exhaustive", "evolution")


class ConfigError(ValueError):
    """A bad job file or override; the message names the key."""


@dataclass(frozen=True)
class SearchConfig:
    strategy: str = "qlearning"  # qlearning | random | pnas | exhaustive | evolution
    seed: int = 0
    blocks_per_iteration: int = 64  # the paper's mini-batch of blocks
    schedule: tuple[tuple[float, int], ...] = PAPER_SCHEDULE  # [[epsilon, iterations], ...] (Table 2)
    alpha: float = 0.01  # Q-learning rate
    gamma: float = 1.0  # discount
    q_init: float | None = None  # Q of unvisited pairs; unset: mean reward of the first iteration
    # the reward of every transition but the last (docs/choices.md, "Update rules"): "shaped" r_T / T (CVPR eq. 6),
    # "zero" (MetaQNN), "accuracy" r_T at every layer (AAAI eq. 2). Job files may still say shaped_reward = true|false
    intermediate_reward: Literal["shaped", "zero", "accuracy"] = "shaped"
    # when Q learns: "result+replay" each new result updates Q once as it is observed, and replay_samples remembered
    # blocks are replayed after each iteration (AAAI: 64 + 128); "replay" new results only enter the replay memory,
    # and the replay_samples updates after each iteration are all (CVPR sec. 4.2: 64 per iteration)
    updates: Literal["result+replay", "replay"] = "result+replay"
    replay_samples: int = 64  # blocks replayed after each iteration (CVPR: 64, AAAI: 128)
    # how a random (exploring) action is drawn (docs/choices.md, "Exploration"): "uniform" over every legal action,
    # or "by_type": the layer type first (the terminal is one type), then its kernel, then its predecessors
    explore: Literal["uniform", "by_type"] = "uniform"
    dispatch: Literal["batch", "async"] = "batch"  # MPI: Q-update per iteration, or as results arrive
    checkpoint_interval: float = 1.0  # the longest a finished result waits before it is in search.h5, s
    progress_interval: float = 60.0  # within a long iteration, a progress line at least this often, s
    status_interval: float = 2.0  # DIR/status.json (the live status) is replaced this often, s
    # a task training longer than this (seconds) means its worker is hung: the job checkpoints and ends (exit 75)
    # so that it can be requeued. 0: 10 x the longest training so far, at least 600 s (none before a result)
    task_deadline: float = 0.0


@dataclass(frozen=True)
class LimitsConfig:
    """BlockQNN-L: budgets for the whole network as configured in [network]."""

    params: int = 0  # parameter budget (0: none); the paper's BlockQNN-L: 10,000,000
    flops: int = 0  # FLOPs-per-image budget (0: none)
    adaptive_blocks: bool = True  # N adapts: the largest N <= network.blocks_per_stage that fits


@dataclass(frozen=True)
class PNASConfig:
    """search.strategy = "pnas": progressive growth with a learned predictor (Liu et al., ECCV 2018)."""

    beam: int = 64  # K: blocks trained per round after the first
    max_size: int = 10  # layers (start identity included, terminal not) of the largest blocks
    ensemble: int = 5  # MLPs in the predictor's ensemble
    hidden: int = 64  # units of each MLP's two hidden layers
    fit_steps: int = 300  # full-batch Adam steps per MLP per refit
    fit_lr: float = 0.005


@dataclass(frozen=True)
class EvolutionConfig:
    """search.strategy = "evolution": regularized (aging) evolution (Real et al., AAAI 2019)."""

    population: int = 20  # P: living blocks; the first P proposals are random
    sample: int = 5  # S: blocks drawn for each tournament (at most P)


MAX_RUNGS = 8  # pruning.rungs: at most this many (search.h5 and the RESULT message hold that many accuracies)


@dataclass(frozen=True)
class PruningConfig:
    """Stop candidates that are clearly losing (docs/choices.md, "Pruning"). Off by default and in the paper jobs.

    After each rung (an epoch count), a training candidate's validation accuracy is compared on rank 0 with the
    accuracies earlier candidates had at that rung; it is stopped when below the rule's quantile of them."""

    rule: Literal["none", "median", "halving"] = "none"  # halving: stop unless in the best 1/reduction
    rungs: tuple[int, ...] = (1, 3, 6)  # epochs after which a candidate reports; each below trainer.epochs
    quantile: float = 0.5  # median rule: stop below this quantile of the rung's accuracies
    reduction: float = 3.0  # halving rule: keep the best 1/reduction at every rung (quantile 1 - 1/reduction)
    min_candidates: int = 16  # a rung stops nothing until this many candidates have reached it
    reward: Literal["rung", "failure"] = "rung"  # a stopped candidate's reward: from its rung accuracy, or a failure's
    # measure and record the rung accuracies with rule = "none" too (learning curves; the landscape table)
    record: bool = False


@dataclass(frozen=True)
class SpaceConfig:
    max_index: int = MAX_INDEX  # largest layer index, terminal included
    start_identity: bool = True  # layer 1 is (1,4,0,0,0)
    # pcc: the convolution is one layer, ReLU -> Conv -> BN (Table 1); separate: ReLU, batch norm and a plain
    # convolution are layer types of their own (CVPR Fig. 9, AAAI Fig. 3: the papers' ablation)
    layers: Literal["pcc", "separate"] = "pcc"


@dataclass(frozen=True)
class NetworkConfig:
    framework: Literal["cifar", "imagenet"] = "cifar"
    blocks_per_stage: int = 4  # N
    filters: tuple[int, ...] = (32, 64, 128)  # one width per stage; "more filters": [80,160,320]


@dataclass(frozen=True)
class RewardConfig:
    preset: Literal["cvpr", "aaai", "accuracy"] = "cvpr"  # (mu, rho) = (1, 8), (1/2, 1/2), (0, 0)
    mu: float | None = None  # FLOPs weight; unset: the preset's
    rho: float | None = None  # density weight; unset: the preset's
    flops_unit: float = 1e9  # FLOPs are divided by this before the log (GFLOPs)
    failure_accuracy: float = 0.0  # accuracy (percent) credited to a failed candidate


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["fashion-mnist", "cifar10", "cifar100", "imagefolder"] = "fashion-mnist"
    root: str = ""  # directory; empty: /usr/share/datasets/fashion-mnist for fashion-mnist
    val_size: int = 5000  # held out from the training set; the test set is never used by the search
    train_subset: int = 0  # use this many training images (0: all that remain after validation)
    resize: int = 0  # resize images to this side once, at load (0: keep; imagefolder: 0 streams from disk)
    split_seed: int = 0  # seed of the validation split and subset
    normalize: bool = True  # per-channel mean/std of the training split
    workers: int = 4  # imagefolder: processes decoding images
    crop: int = 224  # imagefolder streamed: side of the training and test crops
    scale: tuple[int, int] = (256, 480)  # imagefolder streamed: training images' shorter side, drawn uniformly
    test_resize: int = 256  # imagefolder streamed: test images' shorter side before the center crop


@dataclass(frozen=True)
class TrainerConfig:
    kind: Literal["real", "simulated", "table"] = "real"  # table: answered from a landscape table (trainer.table)
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3  # Adam
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_decay: float = 0.2  # lr x lr_decay every lr_step epochs
    lr_step: int = 5
    restart_lr_factor: float = 0.4  # epoch-1 accuracy <= chance: lr x this, restart
    max_restarts: int = 3
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # torch intra-op threads; 0 on a CPU: per candidate, the cores of the task's share that other processes leave
    # free (training/core_share.py); N fixes the count (bit-exact reruns need a fixed count)
    threads: int = 0
    share_gpus: bool = False  # allow two workers on one GPU (deliberate, e.g. under MPS); else refused at start-up
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto: bf16 autocast on GPUs with bf16 and CPUs with native bf16
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto: on for CUDA, and on CPUs when bf16 is on
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest convolution algorithms (CUDA only)
    # bit-exact reruns: deterministic kernels only, no autotuning (slower on GPUs); on CPUs it also fixes the
    # thread count at the task's share
    deterministic: bool = False
    fused_adam: bool = True  # Adam's update as one fused kernel over all parameters (CPU and CUDA)
    avg_pool_conv: Literal["auto", "on", "off"] = "auto"  # average pooling as a depthwise convolution; auto: on CPUs
    # channels-last batch norm of < 16 channels on a contiguous copy; auto: on CPUs
    narrow_bn_contiguous: Literal["auto", "on", "off"] = "auto"
    inject_fault: Literal["none", "exception", "nan", "oom", "device", "hang"] = "none"  # testing: candidates fail
    inject_every: int = 0  # ... every candidate whose id is a multiple of this (0: never)
    sim_seconds: float = 0.0  # simulated trainer: median training time per candidate
    sim_sigma: float = 0.0  # simulated trainer: lognormal spread of that time
    table: str = ""  # table trainer: the landscape table file (bench/data/landscape.h5; docs/landscape.md)
    table_time_scale: float = 0.0  # table trainer: sleep the training's recorded seconds x this (0: answer at once)


@dataclass(frozen=True)
class Config:
    search: SearchConfig = field(default_factory=SearchConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pnas: PNASConfig = field(default_factory=PNASConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass(frozen=True)
class FinalTrainConfig:
    """One network trained to convergence (python -m bqnn.train); presets in training/final.PROTOCOLS."""

    protocol: Literal["verify", "paper-verify", "cifar-final", "imagenet-final"] = "verify"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1  # SGD
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (15, 23)  # epochs after which lr is divided by 1/gamma
    gamma: float = 0.1
    crop_padding: int = 4  # random crop of the original size from the zero-padded image (0: none)
    flip: bool = True  # random horizontal flip
    eval_batch_size: int = 1024
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    sync_bn: bool = True  # data-parallel on GPUs: batch norm over the global batch (SyncBatchNorm; GPU only)
    # speed options as in [trainer] (training/device.py): auto = bf16 autocast and channels-last where bf16 runs
    # in hardware (GPUs from compute capability 8.0, CPUs with AVX512-BF16/AMX), cuDNN autotuning on GPUs
    amp: Literal["auto", "off", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    cudnn_benchmark: bool = True
    deterministic: bool = False  # as trainer.deterministic


@dataclass(frozen=True)
class TrainJobConfig:
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: FinalTrainConfig = field(default_factory=FinalTrainConfig)


SECTIONS: dict[str, type] = typing.get_type_hints(Config)


@dataclass(frozen=True)
class Range:
    """The values a number may take: [lo, hi], either end open."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo:,}, {self.hi:,}{')' if self.hi_open else ']'}"

    def violation(self, value: float) -> str | None:
        """What is wrong with `value`, or None if it is within the range."""
        if value < self.lo or (self.lo_open and value == self.lo):
            return f"must be {'above' if self.lo_open else 'at least'} {self.lo}"
        if value > self.hi or (self.hi_open and value == self.hi):
            return f"must be {'below' if self.hi_open else 'at most'} {self.hi}"
        return None


I64 = 2**63 - 1
INF = float("inf")  # no upper bound beyond being finite (a huge learning rate diverges: a failed candidate)
BIG_BATCH = 1 << 20
# Every numeric key's range (a tuple-valued key: each element's). Integers stored in search.h5 or sent over
# MPI stay within their dtypes (blocks per stage int16, restarts int8, epochs int16).
RANGES: dict[str, Range] = {
    "search.seed": Range(0, I64), "search.blocks_per_iteration": Range(1, 100_000),
    "search.alpha": Range(0.0, 1.0, lo_open=True), "search.gamma": Range(0.0, 1.0),
    "search.q_init": Range(-1e9, 1e9), "search.replay_samples": Range(0, 1_000_000),
    "search.checkpoint_interval": Range(0.0, 86_400.0), "search.progress_interval": Range(1.0, 86_400.0),
    "search.status_interval": Range(0.1, 3600.0),
    "search.task_deadline": Range(0.0, 31_536_000.0),
    "limits.params": Range(0, 2**62), "limits.flops": Range(0, 2**62),
    "pnas.beam": Range(1, 100_000), "pnas.max_size": Range(1, 30), "pnas.ensemble": Range(1, 100),
    "pnas.hidden": Range(1, 4096), "pnas.fit_steps": Range(1, 1_000_000), "pnas.fit_lr": Range(0.0, 10.0, lo_open=True),
    "evolution.population": Range(1, 1_000_000), "evolution.sample": Range(1, 1_000_000),
    "space.max_index": Range(2, 31),
    "pruning.rungs": Range(1, 10_000), "pruning.quantile": Range(0.0, 1.0, lo_open=True, hi_open=True),
    "pruning.reduction": Range(1.0, 1e6, lo_open=True), "pruning.min_candidates": Range(1, 10**9),
    "network.blocks_per_stage": Range(1, 64), "network.filters": Range(1, 65_536),
    "reward.mu": Range(0.0, 1e6), "reward.rho": Range(0.0, 1e6), "reward.flops_unit": Range(0.0, 1e30, lo_open=True),
    "reward.failure_accuracy": Range(0.0, 100.0),
    "data.val_size": Range(0, 10**9), "data.train_subset": Range(0, 10**9), "data.resize": Range(0, 4096),
    "data.split_seed": Range(0, I64), "data.workers": Range(0, 1024), "data.crop": Range(1, 4096),
    "data.scale": Range(1, 4096), "data.test_resize": Range(1, 4096),
    "trainer.epochs": Range(1, 10_000), "trainer.batch_size": Range(1, BIG_BATCH),
    "trainer.lr": Range(0.0, INF, lo_open=True, hi_open=True), "trainer.betas": Range(0.0, 1.0, hi_open=True),
    "trainer.adam_eps": Range(0.0, 1.0, lo_open=True), "trainer.lr_decay": Range(0.0, 10.0, lo_open=True),
    "trainer.lr_step": Range(1, 10_000), "trainer.restart_lr_factor": Range(0.0, 10.0, lo_open=True),
    "trainer.max_restarts": Range(0, 100), "trainer.eval_batch_size": Range(1, BIG_BATCH),
    "trainer.threads": Range(0, 4096), "trainer.inject_every": Range(0, 2**31 - 1),
    "trainer.sim_seconds": Range(0.0, 86_400.0), "trainer.sim_sigma": Range(0.0, 10.0),
    "trainer.table_time_scale": Range(0.0, 1000.0),
    "train.epochs": Range(1, 100_000), "train.batch_size": Range(1, BIG_BATCH),
    "train.lr": Range(0.0, INF, lo_open=True, hi_open=True),
    "train.momentum": Range(0.0, 1.0, hi_open=True), "train.weight_decay": Range(0.0, 1.0),
    "train.milestones": Range(1, 100_000), "train.gamma": Range(0.0, 1.0, lo_open=True),
    "train.crop_padding": Range(0, 256), "train.eval_batch_size": Range(1, BIG_BATCH), "train.seed": Range(0, I64),
    "train.threads": Range(0, 4096),
}
MAX_ITERATIONS = 1_000_000  # the whole schedule
# trainer.device and train.device: which devices may be named (whether one exists is checked where it is used)
DEVICE = re.compile(r"auto|cpu|cuda|cuda:[0-9]{1,3}")

# Keys that may change when a search is resumed: they change how, where or how fast
# candidates are trained, not which blocks are proposed or what they score.
# trainer.amp is not one: bf16 moves early-stop accuracies by 0.35 points on average, up to 1.3
# (bench/precision.py), so the precision is part of a search's identity (docs/choices.md, "Precision").
RUNTIME_KEYS = frozenset({
    "search.checkpoint_interval", "search.progress_interval", "search.status_interval", "search.task_deadline",
    "trainer.device",
    "trainer.threads", "trainer.share_gpus",
    "trainer.channels_last", "trainer.cudnn_benchmark", "trainer.fused_adam", "trainer.avg_pool_conv",
    "trainer.narrow_bn_contiguous", "trainer.deterministic",
    "trainer.eval_batch_size", "trainer.sim_seconds", "trainer.sim_sigma", "trainer.table_time_scale",
})
