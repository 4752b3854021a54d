"""Share the machine's cores with other busy processes: torch threads follow the free cores.

Torch's OpenMP threads spin while they wait for each other. When two processes each run as
many threads as the machine has cores, a thread that the OS descheduled holds up its siblings
for a whole time slice at every parallel region, and small networks run thousands of parallel
regions a second: two ``zoo demo`` on 2 cores slowed each other down 35-40 times, not 2 (and a
2-thread process beside a 1-thread one about 3 times, measured on this machine). Passive waiting
(``OMP_WAIT_POLICY``) cures the fight but makes a process alone 2-3 times slower.

So the CLI samples, once a second (a ``SIGALRM`` timer, whose handler runs in the main thread,
between two Python bytecodes, where ``torch.set_num_threads`` takes effect and no parallel
region is open), how many cores the *other* processes kept busy (``/proc/stat`` less this
process's own CPU time) and sets torch's threads to the cores left, between 1 and the budget
(``--threads`` or the CPU affinity). Alone, a process keeps all its cores; two side by side settle
at about half each. A thread count that changes with the load changes the order of floating-point
sums, so ``--threads N`` turns this off and pins N. Linux only (``/proc/stat``); elsewhere, and
when the timer is taken, nothing changes.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC_STAT = Path("/proc/stat")
IDLE_FIELDS = (3, 4)  # idle, iowait in the "cpu" line's counters (after the label)
SMOOTHING = 0.5  # weight of the newest reading in the running estimate of others' busy cores


def busy_cpu_seconds(stat: str) -> float:
    """Seconds of CPU time spent busy on all cores, from the text of ``/proc/stat``."""
    counters = [int(v) for v in stat.split("\n", 1)[0].split()[1:]]
    busy = sum(v for i, v in enumerate(counters[:8]) if i not in IDLE_FIELDS)
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system seconds of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def threads_for(budget: int, others_busy: float) -> int:
    """The torch threads to use when other processes keep ``others_busy`` cores busy: the
    cores of ``budget`` they leave, at least 1."""
    return max(1, min(budget, round(budget - others_busy)))


@dataclass
class CoreShare:
    """The running estimate of the cores other processes keep busy, and the threads that
    leave. ``observe`` takes one reading (wall, machine-busy and own CPU seconds)."""

    budget: int
    others_busy: float = 0.0
    last: tuple[float, float, float] | None = field(default=None, repr=False)

    def observe(self, wall: float, busy: float, own: float) -> int:
        if self.last is not None:
            dt = wall - self.last[0]
            if dt > 0:
                reading = max(0.0, ((busy - self.last[1]) - (own - self.last[2])) / dt)
                self.others_busy += SMOOTHING * (reading - self.others_busy)
        self.last = (wall, busy, own)
        return threads_for(self.budget, self.others_busy)


def follow_free_cores(budget: int, period: float = 1.0) -> CoreShare | None:
    """Start adjusting torch's threads to the free cores every ``period`` seconds (see the
    module docstring). None (and nothing started) where ``/proc/stat`` is missing, the budget
    is a single core, or ``SIGALRM`` already has a handler."""
    if budget < 2 or not PROC_STAT.exists():
        return None
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return None
    import torch

    share = CoreShare(budget)
    share.observe(time.monotonic(), busy_cpu_seconds(PROC_STAT.read_text()), own_cpu_seconds())

    def adjust(signum: int, frame: object) -> None:
        try:
            stat = PROC_STAT.read_text()
        except OSError:
            return
        threads = share.observe(time.monotonic(), busy_cpu_seconds(stat), own_cpu_seconds())
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    signal.signal(signal.SIGALRM, adjust)
    signal.setitimer(signal.ITIMER_REAL, period, period)
    return share


def stop_following() -> None:
    """Stop the timer and restore the default ``SIGALRM`` handling."""
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
