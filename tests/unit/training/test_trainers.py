import pytest
import torch

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import INCEPTION_LIKE, RESIDUAL_LIKE, parse
from bqnn.config import load
from bqnn.training.early_stop import EarlyStopTrainer
from bqnn.training.result import Status, candidate_seed
from bqnn.training.simulated import SimulatedTrainer, simulated_accuracy
from tests.conftest import needs_fashion

# a fixed thread count: these tests compare two trainings bit for bit (the default adapts to the machine's load,
# and another count sums some gradients in another order; training/core_share.py)
SMALL = ["data.train_subset=2000", "data.val_size=500", "data.resize=14", "network.blocks_per_stage=1",
         "network.filters=[8,16,32]", "trainer.epochs=2", "trainer.batch_size=64", "trainer.lr_step=1",
         "trainer.threads=2"]


@pytest.fixture(scope="module")
def trainer():
    return EarlyStopTrainer(load(None, SMALL), torch.device("cpu"))


@needs_fashion
def test_trainer_reaches_well_above_chance_in_seconds(trainer):
    r = trainer.train(RESIDUAL_LIKE, candidate_seed(0, canonical_hash(RESIDUAL_LIKE)), 1)
    assert r.status == Status.OK and r.epochs == 2 and r.restarts == 0
    assert r.accuracy > 50.0  # chance is 10 %
    assert r.seconds < 30


@needs_fashion
def test_same_seed_same_accuracy(trainer):
    a = trainer.train(INCEPTION_LIKE, 123, 1)
    b = trainer.train(INCEPTION_LIKE, 123, 2)
    assert a.accuracy == b.accuracy


@needs_fashion
@pytest.mark.parametrize("fault,status,text", [
    ("exception", Status.ERROR, "InjectedFault: injected exception"),
    ("nan", Status.NAN, "loss is nan in epoch 1"),
    ("oom", Status.OOM, "out of memory"),
    ("device", Status.DEVICE, "CUDA error: an illegal memory access"),  # classified from the exception's text
])
def test_failures_are_results_not_crashes(fault, status, text):
    t = EarlyStopTrainer(load(None, SMALL + [f"trainer.inject_fault={fault}", "trainer.inject_every=2"]),
                         torch.device("cpu"))
    bad = t.train(RESIDUAL_LIKE, 1, candidate_id=4)
    assert bad.status == status and text in bad.message and bad.accuracy == 0.0
    good = t.train(RESIDUAL_LIKE, 1, candidate_id=5)  # not a multiple of inject_every
    assert good.status == Status.OK


@needs_fashion
def test_a_real_nan_is_caught(monkeypatch):
    t = EarlyStopTrainer(load(None, SMALL + ["trainer.lr=1e30"]), torch.device("cpu"))
    r = t.train(RESIDUAL_LIKE, 1)
    # an absurd lr diverges in the first epoch, every seed, fp32 and bf16 (measured: seeds 0-2, lr 1e10 and 1e30):
    # a failed result, never an exception and never an OK
    assert r.status == Status.NAN and r.epochs == 1 and r.message.startswith("loss is "), r


@needs_fashion
def test_restart_when_first_epoch_is_no_better_than_chance(monkeypatch):
    t = EarlyStopTrainer(load(None, SMALL), torch.device("cpu"))
    lrs = []
    real_adam = torch.optim.Adam

    def recording_adam(params, lr, **kw):
        lrs.append(lr)
        return real_adam(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    monkeypatch.setattr(t, "evaluate", lambda model: 10.0)  # exactly chance for 10 classes
    r = t.train(RESIDUAL_LIKE, 1)
    assert r.status == Status.OK and r.restarts == 3  # at most 3 restarts, then it trains on
    assert lrs == pytest.approx([1e-3, 4e-4, 1.6e-4, 6.4e-5])


def test_simulated_trainer_is_deterministic_and_structured():
    cfg = load(None, ["trainer.kind=simulated"])
    t = SimulatedTrainer(cfg)
    a = t.train(RESIDUAL_LIKE, 1, 1)
    assert a.status == Status.OK and a.accuracy == simulated_accuracy(RESIDUAL_LIKE)
    swapped = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,3,1),(5,7,0,0,0)]")
    assert simulated_accuracy(swapped) == a.accuracy  # equal blocks, equal accuracy
    pools = parse("[(1,4,0,0,0),(2,2,1,1,0),(3,3,1,2,0),(4,7,0,0,0)]")
    assert simulated_accuracy(pools) < a.accuracy - 10
    f = SimulatedTrainer(load(None, ["trainer.kind=simulated", "trainer.inject_fault=oom", "trainer.inject_every=3"]))
    assert f.train(RESIDUAL_LIKE, 1, 3).status == Status.OOM and f.train(RESIDUAL_LIKE, 1, 4).status == Status.OK


@needs_fashion
def test_fused_adam_trains_like_the_loop_adam():
    """trainer.fused_adam changes how fast a step runs, not what it computes (fp32, contiguous, same seed)."""
    base = SMALL + ["trainer.amp=off", "trainer.channels_last=off"]
    fused = EarlyStopTrainer(load(None, base), torch.device("cpu"))
    loop = EarlyStopTrainer(load(None, base + ["trainer.fused_adam=false"]), torch.device("cpu"), fused.splits)
    assert fused.fused_adam and not loop.fused_adam
    a, b = fused.train(RESIDUAL_LIKE, 7, 1), loop.train(RESIDUAL_LIKE, 7, 1)
    assert a.status == b.status == Status.OK and a.accuracy > 50.0
    assert abs(a.accuracy - b.accuracy) <= 1.0


@needs_fashion
def test_cpu_kernels_train_like_the_native_ones():
    """trainer.avg_pool_conv and trainer.narrow_bn_contiguous (auto: on for CPUs) change how a step is
    computed, not what: a block with average pooling and 8-channel batch norms, bf16 channels-last, same seed."""
    block = parse("[(1,3,3,0,0),(2,1,3,1,0),(3,3,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]")
    base = SMALL + ["trainer.amp=bf16", "trainer.channels_last=on"]
    fast = EarlyStopTrainer(load(None, base), torch.device("cpu"))
    native = EarlyStopTrainer(load(None, base + ["trainer.avg_pool_conv=off", "trainer.narrow_bn_contiguous=off"]),
                              torch.device("cpu"), fast.splits)
    assert fast.avg_pool_conv and fast.narrow_bn_contiguous
    assert not native.avg_pool_conv and not native.narrow_bn_contiguous
    a, b = fast.train(block, 7, 1), native.train(block, 7, 1)
    assert a.status == b.status == Status.OK and a.accuracy > 30.0  # chance: 10
    assert abs(a.accuracy - b.accuracy) <= 1.0


def test_both_trainers_have_the_trainer_protocols_signature():
    import inspect

    from bqnn.training.result import Trainer

    want = inspect.signature(Trainer.train)
    for cls in (EarlyStopTrainer, SimulatedTrainer):
        got = inspect.signature(cls.train)
        assert list(got.parameters) == list(want.parameters), cls
        assert [p.default for p in got.parameters.values()] == [p.default for p in want.parameters.values()], cls


@needs_fashion
def test_a_retry_of_a_transient_fault_trains_normally():
    """The faults a retry exists for strike the first attempt only (training/faults.attempt, set by the worker
    from the task): the real trainer's second attempt at candidate 4 trains."""
    from bqnn.training import faults

    t = EarlyStopTrainer(load(None, SMALL + ["trainer.inject_fault=oom", "trainer.inject_every=2"]),
                         torch.device("cpu"))
    assert t.train(RESIDUAL_LIKE, 1, candidate_id=4).status == Status.OOM
    token = faults.attempt.set(1)
    try:
        assert t.train(RESIDUAL_LIKE, 1, candidate_id=4).status == Status.OK
    finally:
        faults.attempt.reset(token)


@pytest.mark.parametrize("text,fatal", [
    ("CUDA error: an illegal memory access was encountered", True),
    ("RuntimeError: CUDA error: device-side assert triggered", True),
    ("CUDA error: uncorrectable ECC error encountered", True),
    ("CUDA error: unspecified launch failure", True),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", False),
    ("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)", False),
])
def test_device_faults_are_told_from_candidate_faults(text, fatal):
    from bqnn.training.result import is_device_fault

    assert is_device_fault(text) is fatal


@needs_fashion
def test_the_deterministic_option_runs_every_kernel_and_changes_nothing_on_a_cpu():
    """trainer.deterministic: torch's deterministic-only mode (an operation without a deterministic kernel would
    raise); on a CPU the numbers are the same as without it."""
    plain = EarlyStopTrainer(load(None, SMALL), torch.device("cpu"))
    a = plain.train(RESIDUAL_LIKE, 3, candidate_id=1)
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        strict = EarlyStopTrainer(load(None, SMALL + ["trainer.deterministic=true"]), torch.device("cpu"),
                                  plain.splits)
        assert torch.are_deterministic_algorithms_enabled()
        b = strict.train(RESIDUAL_LIKE, 3, candidate_id=1)
    finally:
        torch.use_deterministic_algorithms(False)
    assert b.status == Status.OK and b.accuracy == a.accuracy


def test_simulated_learning_curves_rise_to_the_final_accuracy_and_rank_blocks_imperfectly_early():
    """Groundwork for pruning (issue 17): per-epoch curves of the simulated trainer."""
    import random

    from bqnn.blocks.space import Space
    from bqnn.training.simulated import simulated_curve

    blocks = list(Space(5, True).blocks())
    sample = random.Random(3).sample(blocks, 200)
    curves = [simulated_curve(b, 12) for b in sample]
    for b, c in zip(sample, curves, strict=True):
        assert len(c) == 12 and c[-1] == simulated_accuracy(b) and c == simulated_curve(b, 12)
        assert c[0] < c[-1] and all(1.0 <= a <= 99.0 for a in c)
    rank = lambda xs: {i: r for r, i in enumerate(sorted(range(len(xs)), key=xs.__getitem__))}  # noqa: E731

    def spearman(e):
        early, final = rank([c[e] for c in curves]), rank([c[-1] for c in curves])
        n = len(curves)
        return 1 - 6 * sum((early[i] - final[i]) ** 2 for i in range(n)) / (n * (n * n - 1))

    assert 0.3 < spearman(0) < spearman(5) < 1.0  # informative early, more so later, never perfect
    assert simulated_curve(sample[0], 0) == []
