"""An idle scheduler cycle is cheap: the per-team and per-cluster gauges are read from the database again only when
a job or the fleet changed. Before, every cycle relabelled one gauge per cluster: a 20,000-cluster fleet kept an
idle server at about half a core (3% after)."""

from datetime import UTC, datetime

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle


def _exposition(h: Harness) -> str:
    return h.ctx.metrics.exposition().decode()


def test_idle_cycles_do_not_reread_the_gauges_until_something_changes(harness: Harness) -> None:
    ctx = harness.ctx
    assert run_cycle(ctx, datetime.now(UTC)).decided
    while run_cycle(ctx, datetime.now(UTC)).decided:  # settle: the cycle after a decision decides again
        pass
    ctx.metrics.running_gpus.labels(cluster="marker").set(99)  # a value no database read would give
    idle = run_cycle(ctx, datetime.now(UTC))
    assert not idle.decided and idle.pending_after == 0
    assert 'cluster="marker"' in _exposition(harness)  # the gauges were left alone
    harness.submit(command="true")
    busy = run_cycle(ctx, datetime.now(UTC))
    assert busy.decided
    assert 'cluster="marker"' not in _exposition(harness)  # a change refreshed them
