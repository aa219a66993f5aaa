"""Which GPU each worker takes, decided from what every rank sees, and whether the layout wastes or doubles GPUs.

Used at start-up by launch.bind (every rank calls it; all get the same answer):

    plan = plan_binding([Seen(rank, host, visible_gpu_uuids), ...], share=False)
    plan.slots[rank]      # (index among the workers on its host that see the same GPUs, workers on the host)
    plan.table            # lines rank 0 prints: rank, host, device, GPU
    plan.errors           # a GPU with two workers (refused unless trainer.share_gpus): one line each
    plan.warnings         # a GPU no worker uses, rank 0 holding GPUs

A worker's device is `cuda:(slot mod len(visible))`, where slot counts only the workers on the same host that
see the same devices: right for all GPUs visible (the node-wide index), for one GPU per task
(`--gpus-per-task=1`: each sees one, slot 0) and for per-socket binding (`--gpu-bind=closest`: each socket's
tasks see its GPUs). A pure function (no MPI, no torch), so every layout is tested without a cluster.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Seen:
    rank: int
    host: str
    visible: tuple[str, ...]  # UUIDs of the GPUs this process can use, in device order; () on CPUs


@dataclass
class Plan:
    slots: dict[int, tuple[int, int]] = field(default_factory=dict)  # worker rank -> (slot, workers on host)
    hosts: dict[int, str] = field(default_factory=dict)  # every rank -> its host
    devices: dict[int, str] = field(default_factory=dict)  # worker rank -> "cuda:K" or "cpu"
    table: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _ranks(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks))


def plan_binding(seen: list[Seen], share: bool = False, spec: str = "auto") -> Plan:
    """Rank 0 trains nothing; every other rank is a worker. `spec` is trainer.device: `auto` and `cuda` as
    above, `cpu` puts every worker on the CPU, `cuda:K` every worker on its host's K-th visible GPU."""
    plan = Plan(hosts={s.rank: s.host for s in seen})
    workers = sorted((s for s in seen if s.rank != 0), key=lambda s: s.rank)
    per_host: dict[str, int] = defaultdict(int)
    for s in workers:
        per_host[s.host] += 1
    groups: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
    users: dict[tuple[str, str], list[int]] = defaultdict(list)  # (host, GPU) -> worker ranks on it
    for s in workers:
        slot = groups[(s.host, s.visible)]
        groups[(s.host, s.visible)] += 1
        plan.slots[s.rank] = (slot, per_host[s.host])
        fixed = spec.startswith("cuda:") and spec[5:].isdigit()
        if s.visible and spec != "cpu" and (not fixed or int(spec[5:]) < len(s.visible)):
            k = int(spec[5:]) if fixed else slot % len(s.visible)
            plan.devices[s.rank] = f"cuda:{k}"
            users[(s.host, s.visible[k])].append(s.rank)
            plan.table.append(f"  rank {s.rank:>4}  {s.host}  cuda:{k}  GPU {s.visible[k]}")
        else:
            plan.devices[s.rank] = "cpu"
            plan.table.append(f"  rank {s.rank:>4}  {s.host}  cpu")
    for (host, gpu), ranks in sorted(users.items()):
        if len(ranks) > 1:
            text = f"GPU {gpu} on {host} has {len(ranks)} workers (ranks {_ranks(ranks)})"
            if share:
                plan.warnings.append(f"{text}: shared, as trainer.share_gpus asks")
            else:
                plan.errors.append(f"{text}: the task layout does not match the GPUs (docs/gpu.md); set "
                                   f"trainer.share_gpus=true to share GPUs deliberately (e.g. under MPS)")
    seen_gpus = {(s.host, g) for s in workers for g in s.visible}
    for host, gpu in sorted(seen_gpus - set(users)):
        plan.warnings.append(f"GPU {gpu} on {host} has no worker: it is allocated and idle (docs/gpu.md)")
    for s in seen:  # rank 0 trains nothing: GPUs only it can see are wasted (--gpus-per-task=1 gives it one)
        alone = [g for g in s.visible if (s.host, g) not in seen_gpus] if s.rank == 0 else []
        if alone:
            plan.warnings.append(f"rank 0 on {s.host} holds {len(alone)} GPU(s) no worker can use "
                                 f"({_ranks(alone)}): give it none (docs/gpu.md)")
    return plan
