"""How long executors keep what they wrote for a run after its job ended, and which of their records may go now.

Pure: no I/O, no clock. Every executor lists what it keeps of its runs as :class:`~stargate.executors.base.RunRecord`
items (record files, withdrawn markers, logs, the engine's finished jobs; see :meth:`Executor.records`); the
server's housekeeping step (:mod:`stargate.server.scheduling.housekeeping`) reads what the database says of their
jobs, and :func:`expired` picks the ones to remove (:meth:`Executor.prune`). A record goes only when all of these
hold:

- the engine does not say the run is still going (:attr:`RunRecord.active`);
- its job is in the database and final (succeeded, failed, cancelled): a record of a live job may still be needed
  to submit it once (``jobs/``), to refuse a late submit (``withdrawn``), or to find and stop its run;
- the run of that attempt, when the database has one, is marked ended: an orphaned run the scheduler still has to
  stop, or to watch after its engine's outage (it may be found to have completed its job), keeps all its records;
- the job ended (and the run ended) at least the retention ago: ``STARGATE_RUN_RETENTION``, 7 days by default, at
  least :data:`MIN_RETENTION_S` (1 hour) so a log stays readable while its job is recent and a submit or stop still
  on its way (bounded by the executors' timeouts, seconds) never meets a removed marker.

A record whose job the database does not know (another database's, or a job id that does not parse) is kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from stargate.executors.base import RunRecord

RETENTION_ENV = "STARGATE_RUN_RETENTION"
DAY_S = 86_400.0
DEFAULT_RETENTION_S = 7 * DAY_S
"""How long a finished run's records and logs are kept after its job ended by default, s (7 days)."""
MIN_RETENTION_S = 3_600.0
"""The shortest retention allowed, s (1 hour): the log of a job that just ended stays readable, and a submit, find
or stop of one of its runs still on its way never finds its records gone."""
MAX_RETENTION_S = 3_650 * DAY_S
"""The longest retention allowed short of ``never``, s (3650 days)."""
NEVER = "never"
"""The value that turns pruning off (records are kept for ever, as before retention existed)."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": DAY_S, "w": 7 * DAY_S}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def parse_retention(text: str, where: str = RETENTION_ENV) -> float | None:
    """Seconds in ``text`` (``7d``, ``36h``, ``90m``, ``3600``, ``2w``; ``never``: None); ValueError naming
    ``where``, what was found and what is expected."""
    raw = text.strip().lower()
    expected = (
        f"a duration from 1h to 3650d such as 12h, 7d or 2w (a bare number is seconds), or '{NEVER}' to keep "
        "every run's records"
    )
    if raw == NEVER:
        return None
    found = _DURATION.match(raw)
    if found is None:
        raise ValueError(f"{where}: found '{text.strip()[:40]}'; expected {expected}")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    shown = f"{where}: found '{text.strip()[:40]}' ({describe(seconds)})"
    if seconds < MIN_RETENTION_S:
        raise ValueError(
            f"{shown}, shorter than 1 hour: a job's log must stay readable while the job is recent; expected {expected}"
        )
    if not math.isfinite(seconds) or seconds > MAX_RETENTION_S:
        raise ValueError(f"{shown}; expected {expected}")
    return seconds


def describe(seconds: float | None) -> str:
    """A retention in words: ``7 days``, ``36 hours``, ``90 minutes``, ``1 day``; ``never pruned`` for None."""
    if seconds is None:
        return "never pruned"
    if not math.isfinite(seconds):
        return f"{seconds} s"
    for unit, size in (("day", DAY_S), ("hour", 3_600.0), ("minute", 60.0)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count:,} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:,.0f} s"


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the database says of one job, as :func:`expired` needs it."""

    final: bool
    """The job is succeeded, failed or cancelled: it never runs again."""
    finished_at: datetime | None
    """When it became final (None: not final, or not recorded)."""
    runs: Mapping[int, datetime | None] = field(default_factory=dict)
    """Its runs by attempt: when each was marked ended (None: not ended yet)."""


KEEP_ACTIVE = "still going on the engine"
KEEP_UNKNOWN = "job not in the database"
KEEP_LIVE = "job not final"
KEEP_RUN = "run not ended"
KEEP_RECENT = "ended less than the retention ago"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`expired` decided: the records to remove, and how many of the others are kept for each reason."""

    expired: list[RunRecord]
    kept: Counter[str]


def expired(records: Iterable[RunRecord], facts: Mapping[str, JobFacts], now: datetime, retention_s: float) -> Verdict:
    """The ``records`` that may be removed at ``now`` (see the module's rules) given ``facts`` by public job id and
    ``retention_s`` seconds of retention; the others counted by why they are kept."""
    gone: list[RunRecord] = []
    kept: Counter[str] = Counter()
    for record in records:
        why = _kept(record, facts.get(record.job_id), now, retention_s)
        if why is None:
            gone.append(record)
        else:
            kept[why] += 1
    return Verdict(gone, kept)


def _kept(record: RunRecord, job: JobFacts | None, now: datetime, retention_s: float) -> str | None:
    """Why ``record`` is kept, or None when it may go."""
    if record.active:
        return KEEP_ACTIVE
    if job is None:
        return KEEP_UNKNOWN
    if not job.final:
        return KEEP_LIVE
    if record.attempt in job.runs and job.runs[record.attempt] is None:
        return KEEP_RUN
    times = [t for t in (job.finished_at, job.runs.get(record.attempt)) if t is not None]
    if not times or (now - max(times)).total_seconds() < retention_s:
        return KEEP_RECENT
    return None


def run_of(name: str, prefix: str) -> tuple[str, int] | None:
    """(job id, attempt) of a run name ``<prefix><job id>-a<attempt>`` (the name every executor gives a run, with
    ``prefix`` ``sg-<installation8>-``); None for a name of another installation or of no run."""
    if not name.startswith(prefix):
        return None
    job_id, sep, attempt = name[len(prefix) :].rpartition("-a")
    if not sep or not job_id or not attempt.isascii() or not attempt.isdigit() or len(attempt) > 9:
        return None
    return job_id, int(attempt)
