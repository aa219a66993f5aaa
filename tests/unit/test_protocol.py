import ctypes
import sys

import pytest

from bqnn.protocol import FIRST_NAP, HOT_NAP, IDLE_NAP, next_nap, precise_naps


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
