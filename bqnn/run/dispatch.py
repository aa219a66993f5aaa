"""When blocks are proposed and when the strategy observes them: the two dispatch modes of rank 0's loop
(`search.dispatch`).

Used by run/master.py, which asks its policy at the four points of the loop:

    policy = DISPATCH[cfg.search.dispatch]()
    policy.propose(loop)              # put candidates in flight
    policy.finished(loop, done)       # after a wait that returned results, before they are recorded
    policy.recorded(loop, task)       # a candidate's record is in the table
    policy.completing(loop, it)       # all of iteration `it` is in, before the strategy ends it

"batch" (the paper's): an iteration is proposed whole once the one before is complete, and the strategy observes
its candidates in candidate-id order when all are in, whatever order they finished in, so the search does not
depend on which worker is fastest. "async": a block is proposed whenever a worker would otherwise idle, from
whatever iteration comes next and with the Q-table as it is then, and observed as its result arrives; workers
never wait for an iteration's slowest candidate (docs/choices.md). No torch.
"""
from __future__ import annotations

from typing import Protocol

from ..blocks.code import NSC
from ..strategies import Strategy
from .executor import Done, Executor, Task
from .iterations import Iterations


class Master(Protocol):
    """What a dispatch policy uses of the loop (run/master.py)."""

    strategy: Strategy
    executor: Executor
    iterations: Iterations
    iteration: int
    next_id: int
    n: int
    total: int

    def new_task(self, nsc: NSC, iteration: int, epsilon: float, cid: int | None = None) -> Task: ...

    def dispatch(self, task: Task) -> None: ...

    def observe(self, cid: int) -> None: ...


class Batch:
    def propose(self, loop: Master) -> None:
        if len(loop.iterations) == loop.iteration:  # the current iteration is not proposed yet
            it = loop.iteration
            epsilon = loop.strategy.epsilon(it)
            blocks = loop.strategy.propose(it, loop.n)
            loop.iterations.open(len(blocks))
            for nsc in blocks:
                loop.dispatch(loop.new_task(nsc, it, epsilon))

    def finished(self, loop: Master, done: list[Done]) -> None:
        pass

    def recorded(self, loop: Master, task: Task) -> None:
        pass

    def completing(self, loop: Master, it: int) -> None:
        for cid in loop.iterations.ids(it):  # in candidate-id order, whatever the completion order
            loop.observe(cid)


class Async:
    def propose(self, loop: Master) -> None:
        while loop.executor.idle_slots() > 0:  # fixed-size iterations (config.check)
            if loop.iterations.full(loop.next_id):
                if len(loop.iterations) == loop.total:
                    return
                loop.iterations.open(loop.n)
            it = len(loop.iterations) - 1
            (nsc,) = loop.strategy.propose(it, 1)
            loop.dispatch(loop.new_task(nsc, it, loop.strategy.epsilon(it)))

    def finished(self, loop: Master, done: list[Done]) -> None:
        if done:  # feed the workers that just finished before the Q-updates: they would otherwise wait for them
            self.propose(loop)

    def recorded(self, loop: Master, task: Task) -> None:
        loop.observe(task.id)  # the Q-update as the result arrives

    def completing(self, loop: Master, it: int) -> None:
        pass


DISPATCH: dict[str, type[Batch] | type[Async]] = {"batch": Batch, "async": Async}
