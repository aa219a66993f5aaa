"""Which candidates each iteration holds: iteration i is the candidate ids starts[i] .. starts[i] + sizes[i] - 1, in
proposal order. Iterations have the strategy's size (`search.blocks_per_iteration`), or their own (PNAS's rounds,
an exhaustive search's last one).

Used by rank 0's loop (run/master.py) and its dispatch policies (run/dispatch.py); kept in search.h5 as
/iteration_sizes. No torch.
"""
from __future__ import annotations

import numpy as np


class Iterations:
    def __init__(self, sizes: list[int] | None = None) -> None:
        self.starts: list[int] = []
        self.sizes: list[int] = []
        for size in sizes or []:
            self.open(size)

    def __len__(self) -> int:
        """Iterations proposed so far (the last may still be filling, in async dispatch)."""
        return len(self.sizes)

    def open(self, size: int) -> None:
        """The next iteration, of `size` candidates, right after the ones before."""
        self.starts.append(self.starts[-1] + self.sizes[-1] if self.sizes else 0)
        self.sizes.append(size)

    def ids(self, it: int) -> range:
        return range(self.starts[it], self.starts[it] + self.sizes[it])

    def first_id(self, it: int, otherwise: int) -> int:
        """The first candidate id of iteration `it`, or `otherwise` if it has not been proposed."""
        return self.starts[it] if it < len(self.starts) else otherwise

    def full(self, next_id: int) -> bool:
        """Every candidate of the newest iteration has an id (true when there is none)."""
        return not self.sizes or next_id == self.starts[-1] + self.sizes[-1]

    def array(self) -> np.ndarray:
        return np.array(self.sizes, dtype=np.int64)
