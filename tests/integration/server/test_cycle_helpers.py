"""The scheduler loop's helpers: executor calls on worker threads keep their order and count their errors; the
garbage collector paused during a cycle is always enabled again."""

import functools
import gc
import threading

import pytest

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.execute import Call, Executed, call_all
from stargate.server.scheduling.loop import collector_paused


def test_calls_on_threads_keep_their_order_and_count_their_errors(harness: Harness) -> None:
    seen: set[str] = set()

    def answer(n: int) -> int:
        seen.add(threading.current_thread().name)
        if n % 7 == 3:
            raise RuntimeError(f"call {n} failed")
        return n * n

    calls = [Call("local", "submit", functools.partial(answer, n)) for n in range(40)]
    out = Executed()
    answers = call_all(harness.ctx, calls, out)
    shown = [(ok, str(v) if not ok else v) for ok, v in answers]  # a failed call answers with its exception
    assert shown == [(False, f"call {n} failed") if n % 7 == 3 else (True, n * n) for n in range(40)]
    assert out.errors == 6 and seen == {"stargate-executor"}


def test_the_collector_is_enabled_again_after_a_cycle_even_one_that_raised() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the cycle failed")
    assert gc.isenabled()
