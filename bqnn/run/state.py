"""A search's whole state, as one typed record whose fields say where search.h5 keeps them.

Used by rank 0's loop (run/master.py makes one with `snapshot`, restores from one), the checkpoint (run/checkpoint.py
writes and reads every field by its declared place, so a new field is one line here plus its default, which is
what older files read as) and the report. Layout (docs/hdf5.md):

    /                 attrs: format, schema_version, config (JSON), versions (JSON), strategy, max_index,
                      iteration (next to run), iterations_total, next_id, elapsed and master_cpu (seconds, all
                      runs), runs, updated (ISO time), world_size
    /candidates       one row per candidate (run/candidates.py: `Candidate`), resizable
    /cache            hash (S16), id: the candidate whose result answers each block hash
    /inflight         id, iteration, nsc, epsilon: proposed and not finished at save time
    /strategy         the strategy's arrays (Q-table, replay memory, ...); attrs: RNG states (JSON), ...
    /utilization      rank, busy, idle (seconds) per worker rank
    /iteration_sizes  candidates proposed in each iteration so far (PNAS rounds differ in size)
No torch, no MPI.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np

from ..blocks.code import empty_codes
from .candidates import candidate_dtype


@dataclass(frozen=True)
class Attr:
    """Kept as the root attribute `name`. A file of a schema before `since` lacks it and reads its default; one
    of `since` or later without it is damaged."""

    name: str
    since: int = 1


@dataclass(frozen=True)
class Data:
    """Kept as the dataset at `path`; `rows`: resizable and chunked (the candidate table grows every save). `since`
    as for Attr."""

    path: str
    rows: bool = False
    since: int = 1


def _empty(dtype: str) -> Any:
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass
class SearchState:
    config_json: Annotated[str, Attr("config")]
    max_index: Annotated[int, Attr("max_index")]
    strategy: Annotated[str, Attr("strategy")]
    iteration: Annotated[int, Attr("iteration")] = 0  # next iteration to run (all earlier ones are complete)
    iterations_total: Annotated[int, Attr("iterations_total")] = 0
    next_id: Annotated[int, Attr("next_id")] = 0
    elapsed: Annotated[float, Attr("elapsed")] = 0.0
    master_cpu: Annotated[float, Attr("master_cpu", since=2)] = 0.0  # CPU seconds used by rank 0 itself (all runs)
    runs: Annotated[int, Attr("runs")] = 0
    world_size: Annotated[int, Attr("world_size")] = 1
    # rows of candidate_dtype (__post_init__ gives an empty table its layout)
    candidates: Annotated[np.ndarray, Data("candidates", rows=True)] = field(default_factory=lambda: np.zeros(0))
    cache_hash: Annotated[np.ndarray, Data("cache/hash")] = _empty("S16")
    cache_id: Annotated[np.ndarray, Data("cache/id")] = _empty("i8")
    inflight_id: Annotated[np.ndarray, Data("inflight/id")] = _empty("i8")
    inflight_iteration: Annotated[np.ndarray, Data("inflight/iteration")] = _empty("i4")
    inflight_epsilon: Annotated[np.ndarray, Data("inflight/epsilon")] = _empty("f8")
    inflight_nsc: Annotated[np.ndarray, Data("inflight/nsc")] = field(default_factory=lambda: empty_codes(0))
    util_rank: Annotated[np.ndarray, Data("utilization/rank")] = _empty("i4")
    util_busy: Annotated[np.ndarray, Data("utilization/busy")] = _empty("f8")
    util_idle: Annotated[np.ndarray, Data("utilization/idle")] = _empty("f8")
    iteration_sizes: Annotated[np.ndarray, Data("iteration_sizes", since=2)] = _empty("i8")  # per iteration
    strategy_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # /strategy's datasets
    strategy_attrs: dict[str, Any] = field(default_factory=dict)  # /strategy's attributes

    def __post_init__(self) -> None:  # empty tables get the layout that max_index gives them
        if self.candidates.dtype.names is None and not len(self.candidates):
            self.candidates = np.zeros(0, candidate_dtype(self.max_index))
        if not len(self.inflight_nsc) and self.inflight_nsc.shape[1] != self.max_index:
            self.inflight_nsc = empty_codes(self.max_index)


@functools.cache
def layout() -> tuple[tuple[str, Attr | Data], ...]:
    """(field name, where search.h5 keeps it) of every attribute and dataset field of SearchState."""
    hints = typing.get_type_hints(SearchState, include_extras=True)
    out = []
    for f in dataclasses.fields(SearchState):
        where = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, Attr | Data)]
        if where:
            out.append((f.name, where[0]))
    return tuple(out)


def arrays(state: SearchState) -> list[np.ndarray]:
    """Every array the state holds (its datasets and the strategy's)."""
    return [getattr(state, name) for name, where in layout() if isinstance(where, Data)] + \
        list(state.strategy_arrays.values())
