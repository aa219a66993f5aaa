"""The binding plan (mpi/binding.py) over the layouts a cluster produces (issue 15): which GPU each worker
takes, and the verdict: a GPU with two workers is refused (unless shared deliberately), an idle one warned."""
import pytest

from bqnn.mpi.binding import Seen, plan_binding


def gpus(host, n, first=0):
    return tuple(f"{host}-g{i}" for i in range(first, first + n))


def all_visible(tasks_per_node, gpus_per_node=8):
    """srun's tasks spread over nodes as given, rank 0 first, every task seeing all its node's GPUs."""
    seen, rank = [], 0
    for n, count in enumerate(tasks_per_node):
        host = f"n{n}"
        for _ in range(count):
            seen.append(Seen(rank, host, gpus(host, gpus_per_node)))
            rank += 1
    return seen


def used(plan, seen):
    by_rank = {s.rank: s for s in seen}
    return sorted((by_rank[r].host, by_rank[r].visible[int(d.split(":")[1])])
                  for r, d in plan.devices.items() if d != "cpu")


def test_one_node_eight_workers_each_its_own_gpu():
    seen = [Seen(0, "n0", ())] + [Seen(r, "n0", gpus("n0", 8)) for r in range(1, 9)]
    plan = plan_binding(seen)
    assert [plan.devices[r] for r in range(1, 9)] == [f"cuda:{i}" for i in range(8)]
    assert len(set(used(plan, seen))) == 8 and not plan.errors and not plan.warnings
    assert plan.slots[8] == (7, 8) and len(plan.table) == 8


def test_the_papers_9_8_8_8_layout_is_clean():
    plan = plan_binding(all_visible([9, 8, 8, 8]))
    assert not plan.errors and not plan.warnings  # rank 0 sees n0's GPUs, which its 8 workers use
    assert len(set(used(plan, all_visible([9, 8, 8, 8])))) == 32


def test_8_9_8_8_doubles_one_gpu_and_idles_another():
    plan = plan_binding(all_visible([8, 9, 8, 8]))
    assert plan.errors == ["GPU n1-g0 on n1 has 2 workers (ranks 8, 16): the task layout does not match the GPUs "
                           "(docs/gpu.md); set trainer.share_gpus=true to share GPUs deliberately (e.g. under MPS)"]
    assert "GPU n0-g7 on n0 has no worker: it is allocated and idle (docs/gpu.md)" in plan.warnings


def test_16_15_1_1_under_packing():
    plan = plan_binding(all_visible([16, 15, 1, 1]))
    assert len(plan.errors) == 7 + 7  # n0 and n1: 15 workers on 8 GPUs each, seven GPUs with two
    idle = [w for w in plan.warnings if "no worker" in w]
    assert len(idle) == 7 + 7  # n2 and n3: one worker, seven idle GPUs each
    shared = plan_binding(all_visible([16, 15, 1, 1]), share=True)
    assert not shared.errors and sum("shared, as trainer.share_gpus asks" in w for w in shared.warnings) == 14


def test_per_socket_binding_indexes_workers_within_their_socket():
    """--gpu-bind=closest: a socket's tasks see its 4 GPUs. 3 tasks on socket 0, 5 on socket 1 (uneven): a
    node-wide index (3..7 mod 4) would put two of socket 1's workers on one GPU and leave one idle."""
    seen = [Seen(0, "n0", ())]
    seen += [Seen(r, "n0", gpus("n0", 4, 0)) for r in range(1, 4)]
    seen += [Seen(r, "n0", gpus("n0", 4, 4)) for r in range(4, 9)]
    plan = plan_binding(seen)
    assert [plan.devices[r] for r in range(1, 9)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1", "cuda:2",
                                                      "cuda:3", "cuda:0"]
    assert plan.errors == ["GPU n0-g4 on n0 has 2 workers (ranks 4, 8): the task layout does not match the GPUs "
                           "(docs/gpu.md); set trainer.share_gpus=true to share GPUs deliberately (e.g. under MPS)"]
    assert plan.warnings == ["GPU n0-g3 on n0 has no worker: it is allocated and idle (docs/gpu.md)"]
    even = [Seen(0, "n0", ())] + [Seen(r, "n0", gpus("n0", 4, 0 if r <= 4 else 4)) for r in range(1, 9)]
    assert not plan_binding(even).errors and not plan_binding(even).warnings


def test_one_gpu_per_task():
    """--gpus-per-task=1: every task sees exactly its own GPU (rank 0 too: one GPU wasted, said)."""
    seen = [Seen(r, f"n{r // 8}", (f"uuid-{r}",)) for r in range(33)]
    plan = plan_binding(seen)
    assert set(plan.devices.values()) == {"cuda:0"} and not plan.errors
    assert plan.warnings == ["rank 0 on n0 holds 1 GPU(s) no worker can use (uuid-0): give it none (docs/gpu.md)"]


@pytest.mark.parametrize("workers", [1, 4, 9])
def test_cpu_workers_get_slots_and_no_verdict(workers):
    seen = [Seen(r, "n0", ()) for r in range(workers + 1)]
    plan = plan_binding(seen)
    assert plan.slots == {r: (r - 1, workers) for r in range(1, workers + 1)}
    assert set(plan.devices.values()) == {"cpu"} and not plan.errors and not plan.warnings


def test_an_explicit_device_is_planned_as_the_workers_will_use_it():
    seen = all_visible([9])
    assert set(plan_binding(seen, spec="cpu").devices.values()) == {"cpu"}
    assert not plan_binding(seen, spec="cpu").errors
    pinned = plan_binding(seen, spec="cuda:0")  # every worker on GPU 0: refused, and the other seven idle
    assert set(pinned.devices.values()) == {"cuda:0"} and len(pinned.errors) == 1 and "8 workers" in pinned.errors[0]
    assert sum("no worker" in w for w in pinned.warnings) == 7
    assert plan_binding(seen, spec="cuda").devices == plan_binding(seen).devices
