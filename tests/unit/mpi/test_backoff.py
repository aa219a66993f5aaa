"""The one probe-and-nap schedule of every MPI wait (mpi/backoff.py), and precise naps."""
import ctypes
import sys

import pytest

from bqnn.mpi.backoff import FIRST_NAP, HOT_NAP, IDLE_NAP, Backoff, next_nap, precise_naps


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is a Linux setting")
def test_precise_naps_sets_a_1ns_timer_slack():
    assert precise_naps()
    assert ctypes.CDLL(None).prctl(30, 0, 0, 0, 0) == 1  # PR_GET_TIMERSLACK: this process's slack in ns


def test_naps_stay_short_in_the_window_then_grow_to_the_idle_nap():
    nap, naps = FIRST_NAP, []
    for waited in [0.0] * 5:
        nap = next_nap(nap, waited, window=0.002)
        naps.append(nap)
    assert naps == [HOT_NAP] * 5
    for _ in range(20):
        nap = next_nap(nap, 1.0, window=0.002)
    assert nap == IDLE_NAP


def test_backoff_naps_short_after_traffic_then_doubles_to_its_cap_and_resets(monkeypatch):
    slept = []
    monkeypatch.setattr("bqnn.mpi.backoff.time.sleep", slept.append)
    clock = [100.0]
    monkeypatch.setattr("bqnn.mpi.backoff.time.perf_counter", lambda: clock[0])
    wait = Backoff(first=1e-4, hot=2e-4, idle=1.6e-3, window=0.5)
    for _ in range(3):  # within the window after the last traffic: never above `hot`
        wait.nap(since=100.0)
    clock[0] = 101.0  # a second later: doubling up to `idle`
    for _ in range(5):
        wait.nap(since=100.0)
    assert slept == [1e-4, 2e-4, 2e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 1.6e-3]
    wait.reset()
    wait.nap(since=101.0)
    assert slept[-1] == 1e-4
