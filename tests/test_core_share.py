"""Torch threads follow the cores other processes leave free (pipelines.core_share)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest
import torch

from pipelines.core_share import (
    CoreShare,
    busy_cpu_seconds,
    follow_free_cores,
    stop_following,
    threads_for,
)

STAT = "cpu  100 20 30 400 50 6 7 8 0 0\ncpu0 50 10 15 200 25 3 3 4 0 0\nintr 1 2 3\n"


def test_busy_seconds_count_every_counter_but_idle_and_iowait() -> None:
    busy = 100 + 20 + 30 + 6 + 7 + 8  # user nice system irq softirq steal
    assert busy_cpu_seconds(STAT) == pytest.approx(busy / os.sysconf("SC_CLK_TCK"))


@pytest.mark.parametrize(
    ("budget", "others", "expected"),
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 3.0, 1), (8, 2.2, 6), (1, 0, 1)],
)
def test_threads_are_the_cores_others_leave_at_least_one(
    budget: int, others: float, expected: int
) -> None:
    assert threads_for(budget, others) == expected


def test_the_estimate_subtracts_this_process_and_smooths() -> None:
    share = CoreShare(budget=2)
    assert share.observe(0.0, 0.0, 0.0) == 2  # no reading yet: the whole budget
    # 1 s: the machine was busy 1.8 core-seconds, 0.8 of them this process's: others kept 1
    assert share.observe(1.0, 1.8, 0.8) == 2  # running estimate 0.5: not yet half
    assert share.others_busy == pytest.approx(0.5)
    assert share.observe(2.0, 3.6, 1.6) == 1  # 0.75
    assert share.observe(3.0, 4.4, 2.4) == 2  # others idle this second: 0.375
    assert share.others_busy == pytest.approx(0.375)


@pytest.fixture
def free_alarm() -> Iterator[None]:
    """SIGALRM at its default and no timer (pytest-timeout may hold both), restored after."""
    handler = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    timer = signal.setitimer(signal.ITIMER_REAL, 0, 0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, *timer)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_follow_installs_a_timer_and_stop_removes_it(free_alarm: None) -> None:
    share = follow_free_cores(2, period=0.05)
    assert share is not None
    assert signal.getitimer(signal.ITIMER_REAL)[1] == pytest.approx(0.05)
    first = share.last
    time.sleep(0.2)  # a few readings, in this thread, between bytecodes
    assert share.last is not None and share.last[0] > first[0]
    assert 1 <= torch.get_num_threads() <= 2
    stop_following()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_a_single_core_or_a_taken_timer_changes_nothing(free_alarm: None) -> None:
    assert follow_free_cores(1) is None
    signal.signal(signal.SIGALRM, lambda *_: None)
    assert follow_free_cores(4) is None
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
