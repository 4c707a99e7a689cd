"""Running the scheduler loop in a test until something holds: :func:`cycle_until` runs real cycles at the wall
clock (the harness's scheduler thread is off), so the local executor's runs start, end and are reaped between them.

Imported as ``integration.server.cycle_support`` (see stargate_harness.py for why a module of its own).
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle

TIMEOUT_S = 15.0


def cycle_until(h: Harness, done: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Run a scheduler cycle every 0.05 s until ``done()`` holds; fail after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout_s:g} s"
        run_cycle(h.ctx, datetime.now(UTC))
        time.sleep(0.05)
