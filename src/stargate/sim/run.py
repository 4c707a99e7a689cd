"""Run one simulation end to end and report it: the summary metrics plus wall time, speed and memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from stargate.domain import Fleet
from stargate.engine import get_policy
from stargate.engine.scheduling import settings_of
from stargate.sim.metrics import summarize
from stargate.sim.money import ledger_of, money_block
from stargate.sim.simulator import SimConfig, Simulator, TraceJobLike


def epoch_for(fleet: Fleet, start: datetime | None = None) -> datetime:
    """Trace time 0: ``start`` when given, else the fleet's ``as_of`` date (midnight UTC), else 1970-01-01."""
    if start is not None:
        return start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    day = fleet.as_of or date(1970, 1, 1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_simulation(
    fleet: Fleet,
    jobs: Sequence[TraceJobLike],
    config: SimConfig,
    *,
    start: datetime | None = None,
    trim_jobs: int = 0,
) -> tuple[dict[str, Any], Simulator]:
    """Simulate ``jobs`` on ``fleet`` and return the JSON summary (see docs/reference/cli-simulate.md)."""
    t0 = time.perf_counter()
    sim = Simulator(fleet, jobs, config, epoch_for(fleet, start))
    state = sim.run_all()
    wall = time.perf_counter() - t0
    out = summarize(state, sim.index, trim_jobs)
    settings = settings_of(sim.policy)
    defaults = settings_of(get_policy(sim.policy.name))
    out["policy"] = sim.policy.name
    out["settings"] = dict(sorted(settings.items()))
    out["changed"] = {k: v for k, v in sorted(settings.items()) if defaults.get(k) != v}
    out["seed"] = config.seed
    out["wall_s"] = round(wall, 3)
    # Speeds count what the run actually processed: a run stopped by until_s settled only some of the jobs.
    out["events_per_s"] = round(state.events / wall, 1) if wall > 0 else 0.0
    out["jobs_per_s"] = round(sim.settled / wall, 1) if wall > 0 else 0.0
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["procurement"] = procurement_block(sim)
    return out, sim


def procurement_block(sim: Simulator) -> dict[str, Any]:
    """The ``procurement`` block of the summary: what procurement did and what the run spent (cli-simulate.md)."""
    config, proc, st = sim.config, sim.proc, sim.state
    if sim.procurement is not None:
        why = "on"
    elif not config.procurement:
        why = "off (--no-procurement)"
    else:
        why = "off: the fleet has no procurement.pressure section"
    block: dict[str, Any] = {
        "enabled": sim.procurement is not None,
        "status": why,
        "rofr": config.rofr,
        "holder_match_probability": proc.match_probability,
        "holder_response_days": proc.response_days,
    }
    block.update(proc.summary(st.end_s, log=config.record_log))
    ledger = ledger_of(sim.runs, sim.jobs, sim.fleet, sim.index)
    usable = [a for i, a in enumerate(sim.arrival) if i not in st.rejected]  # an out-of-range time has no date
    first = min(usable) if usable else 0.0
    block.update(money_block(ledger, sim.fleet, sim.index, first, st.end_s, proc.book.budget()))
    return block
