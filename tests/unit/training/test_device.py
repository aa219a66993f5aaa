"""Which device each process trains on (training/device.py: pick_device, gpus_allocated, cpu_threads): pure
functions over what the machine and SLURM report, so the GPU rules are tested here without a GPU (issue 15)."""
import pytest

from bqnn.config import ConfigError
from bqnn.training.device import cpu_threads, gpus_allocated, pick_device


@pytest.mark.parametrize("spec", ["auto", "cuda"])
def test_auto_and_cuda_give_each_worker_of_a_node_its_own_gpu(spec):
    assert [pick_device(spec, i, 8, 8) for i in range(9)] == [f"cuda:{i % 8}" for i in range(9)]
    assert [pick_device(spec, i, 1, 1) for i in range(3)] == ["cuda:0"] * 3  # --gpus-per-task=1: one visible


def test_a_bare_cuda_index_is_kept_and_checked():
    assert pick_device("cuda:3", 5, 8, 8) == "cuda:3"
    with pytest.raises(ConfigError, match="cuda:8 does not exist: n1 has 8 CUDA device"):
        pick_device("cuda:8", 0, 8, 8, host="n1")
    with pytest.raises(ConfigError, match="cuda:0 is not available"):
        pick_device("cuda:0", 0, 0, 0)


def test_cpu_fallback_only_where_no_gpu_was_allocated():
    assert pick_device("auto", 3, 0, 0) == "cpu"  # a laptop, a CPU partition
    assert pick_device("cpu", 3, 8, 8) == "cpu"  # deliberate
    with pytest.raises(ConfigError) as e:
        pick_device("auto", 0, 0, 4, host="gpu-node-3")
    assert "SLURM allocated 4 GPU(s) on gpu-node-3 but torch can use none" in str(e.value)
    assert "trainer.device=cpu" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="cuda: no usable CUDA device"):
        pick_device("cuda", 0, 0, 0)
    with pytest.raises(ConfigError, match="train.device=cpu"):
        pick_device("auto", 0, 0, 1, key="train.device")


@pytest.mark.parametrize("env,n", [
    ({}, 0), ({"SLURM_STEP_GPUS": "0,1,2,3"}, 4), ({"SLURM_JOB_GPUS": "5"}, 1), ({"SLURM_GPUS_ON_NODE": "8"}, 8),
    ({"SLURM_STEP_GPUS": "", "SLURM_GPUS_ON_NODE": "2"}, 2), ({"SLURM_GPUS_ON_NODE": "x"}, 0),
])
def test_gpus_allocated(env, n):
    assert gpus_allocated(env) == n


def test_threads_follow_the_binding_when_there_is_one():
    assert cpu_threads(4, affinity=16, cpu_count=16) == 4  # unbound: a share of the node
    assert cpu_threads(4, affinity=6, cpu_count=64) == 6  # srun bound 6 cores to this task
    assert cpu_threads(40, affinity=16, cpu_count=16) == 1
