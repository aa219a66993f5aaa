"""Block search with Q-learning (or random search, or PNAS), as one process or an MPI job.

    python -m bqnn.search --config jobs/demo.toml --out runs/demo
    python -m bqnn.search --config jobs/cifar100_paper.toml --out $SCRATCH/run1 --set data.root=$DATA
    mpiexec -n 9 python -m bqnn.search --config JOB --out DIR      # rank 0 + 8 workers
    srun -n 33 python -m bqnn.search --config JOB --out DIR        # the paper's 32 GPUs

Running the same command on a DIR that holds search.h5 resumes the search where
it stopped (`--config` may then be left out: the stored config is used). A resume
whose config changes a key that defines the search is refused, naming the keys;
only runtime keys (config.RUNTIME_KEYS: device, threads, dispatch, checkpoint
interval, ...) may change. SIGTERM or SIGUSR1 (what `sbatch --signal` sends)
writes a checkpoint and exits 143; SIGINT exits 130. Bad input (unknown config
key, missing dataset, corrupt checkpoint) is one line on stderr and exit 2; an
existing checkpoint is never overwritten by a fresh search. One search at a time writes a directory: a
second one on the same DIR exits 2 at once, naming the holder (run/lock.py); the lock of a search that
was killed, or of an earlier run of a requeued SLURM job, is broken with a note.

Progress: one line per iteration with epsilon, mean and best reward of the
iteration, candidates done/total, repeats, failures, elapsed time and ETA.
Results: DIR/search.h5 (docs/hdf5.md); `python -m bqnn.report DIR` summarizes it.

Roles are decided once, in `main`: ranks >= 1 run mpi/worker.py; rank 0 (or the one process) runs the loop
of run/master.py with an executor. Rank 0 and simulated workers never import torch.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .signals import StopFlag, hold, ignore

if TYPE_CHECKING:
    from .config import Config
    from .run import checkpoint
    from .run.executor import Executor
    from .run.master import Master

# Everything else is imported inside the functions: run as a program, this module holds stop signals
# (signals.hold) before numpy, h5py and MPI load, so a SIGTERM during start-up still exits 143.

PROG = "bqnn.search"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bqnn.search", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="TOML job file (jobs/*.toml); optional when resuming")
    p.add_argument("--out", required=True, help="output directory; holds search.h5")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set trainer.epochs=2")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[Config, checkpoint.SearchState | None, str | None]:
    """The config to run and the state to resume from (None for a new search)."""
    from .config import RUNTIME_KEYS, ConfigError, diff, from_json, load
    from .run import checkpoint
    from .run.invariants import check_state

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if not checkpoint.exists(out):
        if not args.config:
            raise ConfigError(f"--config is required: {out} holds no search.h5 to resume")
        return load(args.config, args.set), None, None
    state, used, warning = checkpoint.load(out, check=check_state)
    stored = from_json(state.config_json)
    cfg = load(args.config, args.set) if args.config else load(None, args.set, base=stored)
    changed = [k for k in diff(stored, cfg) if k not in RUNTIME_KEYS]
    if changed:
        raise ConfigError(f"refusing to resume {out}: the config differs from the stored one in "
                          f"{', '.join(changed)} (use another --out for a new search)")
    return cfg, state, warning


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .blocks.code import NSCError
    from .config import ConfigError, load
    from .landscape.table import TableError
    from .mpi.launch import env_rank, launch_mismatch, world, world_size  # roles are decided once, here
    from .run import checkpoint
    from .run.lock import LockError, OutputLock

    comm = world()
    problem = launch_mismatch(world_size(comm), os.environ)
    if problem:  # every task would run a search of its own: all stop, task 0 says why
        return _fail(problem) if env_rank() == 0 else 2
    if comm is not None and comm.Get_rank() != 0:
        from .mpi.worker import run_worker

        return int(run_worker(comm))
    lock = OutputLock(Path(args.out))
    try:
        if not args.out.strip():
            raise ConfigError("--out must name a directory")
        if args.config and not checkpoint.exists(args.out):
            fresh = load(args.config, args.set)  # a new search's config is checked before its directory is made
            if fresh.trainer.kind == "real" and (comm is None or comm.Get_size() == 1):
                from .training.device import resolve_device

                resolve_device(fresh.trainer.device)  # this process trains: its device must exist
        lock.acquire()  # one writer per directory, before anything is read or written there
        checkpoint.check_replaceable(args.out)
        cfg, state, warning = resolve(args)
        if cfg.trainer.kind == "table":  # the table must be there and be this search's, before any worker starts
            from .training.table import TableTrainer

            TableTrainer(cfg)
    except (ConfigError, checkpoint.CheckpointError, checkpoint.CheckpointWriteError, NSCError, LockError,
            TableError, ValueError) as e:
        lock.abandon()
        if comm is not None:
            from .mpi.manager import abort_workers

            abort_workers(comm)
        return _fail(str(e))
    try:
        for note in (lock.broke, warning):
            if note:
                print(note if note.startswith("warning") else f"note: {note}", file=sys.stderr, flush=True)
        return run_master(cfg, args.out, state, comm, main_is_bad=warning is not None)
    finally:
        if checkpoint.exists(args.out):
            lock.release()
        else:  # nothing was written: leave no directory this search made
            lock.abandon()


def run_master(cfg: Config, out: str, state: checkpoint.SearchState | None, comm: Any,
               main_is_bad: bool = False) -> int:
    stop = StopFlag()
    stop.install()
    try:
        return _run_master(cfg, out, state, comm, stop, main_is_bad)
    finally:
        stop.restore()


def _start(cfg: Config, out: str, state: checkpoint.SearchState | None, comm: Any, stop: StopFlag,
           main_is_bad: bool) -> tuple[Executor, Master, str] | int:
    """The executor (this process, or the workers), the pruning rule both share, and the loop; or the exit code
    after one line saying why they could not start."""
    from .config import ConfigError
    from .data.errors import DataError
    from .landscape.table import TableError
    from .run.executor import InlineExecutor
    from .run.master import Master
    from .run.pruning import Pruner

    pruner = Pruner(cfg.pruning, asynchronous=cfg.search.dispatch == "async")
    decide = pruner.decide if pruner.enabled else None
    executor: Executor | None = None
    try:
        if comm is None or comm.Get_size() == 1:
            from .training.factory import make_trainer

            trainer, where = make_trainer(cfg)
            executor = InlineExecutor(trainer, stop, decide)
        else:
            from .mpi.manager import BindingError, MPIExecutor

            try:
                executor = MPIExecutor(comm, cfg, stop, decide)
            except BindingError as e:  # every worker has stopped already: nothing to release
                return _fail(str(e))
            where = f"{comm.Get_size() - 1} workers, {cfg.search.dispatch} dispatch"
        return executor, Master(cfg, out, executor, stop, state=state, main_is_bad=main_is_bad, pruner=pruner), where
    except (DataError, ConfigError, TableError, ValueError) as e:
        if executor is not None:
            executor.shutdown(2)
        elif comm is not None and comm.Get_size() > 1:
            from .mpi.manager import abort_workers

            abort_workers(comm)
        return _fail(str(e))


def _banner(cfg: Config, master: Master, executor: Executor, where: str, out: str, resumed: bool) -> None:
    from .blocks import budget

    total = master.strategy.planned_candidates(master.n)
    shape = (f"{master.total} iterations x {master.n} blocks" if master.strategy.fixed_size
             else f"{master.total} rounds")
    print(f"bqnn search: {master.strategy.name}, {shape} ({total} candidates), world size {executor.world_size} "
          f"({where}), output {out}"
          + (f", limits: {budget.describe(cfg.limits)}" if budget.active(cfg.limits) else ""),
          flush=True)
    if resumed:
        inflight = len(master.resume_inflight)
        print(f"resuming at iteration {min(master.iteration + 1, master.total)}/{master.total} (run "
              f"{master.clock.runs}): the {len(master.records)} candidates recorded are kept"
              + (f"; {inflight} were training when it stopped and start again" if inflight else ""), flush=True)


def _run_master(cfg: Config, out: str, state: checkpoint.SearchState | None, comm: Any, stop: StopFlag,
                main_is_bad: bool) -> int:
    from .run import checkpoint
    from .run.executor import LOST_EXIT_CODE, LostWorker, WorkerStartupError

    started = _start(cfg, out, state, comm, stop, main_is_bad)
    if isinstance(started, int):
        return started
    executor, master, where = started
    _banner(cfg, master, executor, where, out, state is not None)
    code = 2
    try:
        code = master.run()
    except WorkerStartupError as e:
        code = _fail(str(e))
        if state is None and not len(master.records):  # nothing trained: no checkpoint that a fixed rerun resumes
            checkpoint.discard(out)
    except LostWorker as e:  # hung, silent or broken: checkpoint what is done and end, so the job runs again
        master.save()
        _fail(f"{e}; checkpoint written, {len(master.records)} candidates done: run the same command to resume "
              f"(slurm/search.sbatch requeues itself on exit {LOST_EXIT_CODE})")
        code = LOST_EXIT_CODE
    except checkpoint.CheckpointWriteError as e:  # nothing is lost: search.h5 and its .bak are the last good ones
        if checkpoint.exists(out):
            _fail(f"{e}; the last checkpoint is kept")
        else:  # a new search checkpoints before it trains: nothing was trained
            _fail(f"{e}; no checkpoint was written and nothing was trained: free some space and run the same command")
        code = stop.exit_code or 2
        global _HDF5_FAILED
        _HDF5_FAILED = True
    finally:
        executor.shutdown(code)
    return code


# A write that HDF5 itself failed can leave its library state broken, and the interpreter's exit may then crash:
# once everything is released, the process ends without that exit.
_HDF5_FAILED = False

if __name__ == "__main__":
    hold()
    exit_status = main()
    ignore()  # the state is saved: a late stop signal must not turn the exit code into a kill by signal
    if _HDF5_FAILED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_status)
    sys.exit(exit_status)
