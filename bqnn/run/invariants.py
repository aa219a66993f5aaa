"""What a search state read from search.h5 must hold before a search resumes from it.

Used by `python -m bqnn.search` as the check of `checkpoint.load(out, check=check_state)`: a state that
breaks one of these raises CheckpointError naming it, and the search falls back to search.h5.bak (or stops
with one line when both are bad). The checksums catch damage to the bytes; these catch a state that is
whole but wrong (written by a bug, edited by hand, or damaged where no checksum looks):

- the stored config parses to the schema and is valid;
- ids: every candidate id and in-flight id is one of 0 .. next_id - 1, each exactly once;
- iterations: 0 <= iteration <= iterations_total; the iteration sizes sum to next_id, and every candidate of
  a completed iteration is finished (none in flight);
- every stored code (candidates, in flight) is a valid code of the config's space (`space.layers`);
  statuses are known; rewards, accuracies and
  densities are finite;
- the strategy's arrays and attributes restore into a fresh strategy of the stored config (Q-table and replay
  shapes, RNG states, ...).
No torch, no MPI.
"""
from __future__ import annotations

import numpy as np

from ..blocks.code import NSCError, from_array
from ..blocks.space import spaces_of
from ..config import ConfigError, from_json
from ..strategies import make_strategy
from ..training.result import Status
from .checkpoint import CheckpointError, SearchState


def check_state(state: SearchState) -> None:
    """Raise CheckpointError naming the first broken invariant of `state`."""
    try:
        cfg = from_json(state.config_json)
    except (ConfigError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"its stored config is not valid ({e})") from None
    c, n = state.candidates, state.next_id
    ids = np.concatenate([c["id"], state.inflight_id]).astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise CheckpointError("a candidate id appears twice")
    if n < 0 or len(ids) != n or (n and (ids.min() < 0 or ids.max() >= n)):
        raise CheckpointError(f"next_id is {n}, but the candidates and those in flight are {len(ids)} with ids "
                              f"{int(ids.min()) if len(ids) else '-'}..{int(ids.max()) if len(ids) else '-'}")
    if not 0 <= state.iteration <= state.iterations_total:
        raise CheckpointError(f"iteration {state.iteration} is outside 0..{state.iterations_total}")
    sizes = state.iteration_sizes
    if len(sizes):
        if int(sizes.sum()) != n or (sizes < 0).any() or state.iteration > len(sizes):
            raise CheckpointError(f"the iteration sizes ({int(sizes.sum())} candidates in {len(sizes)} iterations) "
                                  f"do not match next_id {n} and iteration {state.iteration}")
        done = int(sizes[: state.iteration].sum())
        if (state.inflight_id < done).any():
            raise CheckpointError(f"candidates of completed iterations (ids below {done}) are still in flight")
    if not np.isin(c["status"], [int(s) for s in Status]).all():
        raise CheckpointError("a candidate has an unknown status")
    for name in ("reward", "accuracy", "density", "epsilon"):
        if not np.isfinite(c[name]).all():
            raise CheckpointError(f"a candidate's {name} is not finite")
    for where, codes in (("candidate", c["nsc"]), ("in-flight candidate", state.inflight_nsc)):
        for i, code in enumerate(codes):
            try:
                nsc = from_array(code, state.max_index)
            except NSCError as e:
                raise CheckpointError(f"{where} {i} has an invalid code ({e})") from None
            if cfg.space.layers not in spaces_of(nsc):
                raise CheckpointError(f"{where} {i} has a code outside the search's space "
                                      f"(space.layers = {cfg.space.layers!r})")
    try:
        make_strategy(cfg).load_state(state.strategy_arrays, state.strategy_attrs)
    except Exception as e:  # whatever the strategy's own reading raises: the state does not restore
        raise CheckpointError(f"the {state.strategy} strategy's state does not restore "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
