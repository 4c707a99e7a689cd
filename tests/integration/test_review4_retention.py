"""Fourth review of the retention of executor records (STARGATE_RUN_RETENTION, the housekeeping pass, the local
executor's records() and prune()) with the real local executor and a real server state.

Each defect began as a strict xfail (now fixed); plain tests cover attacks that held: a job planting symbolic links
and unreadable directories in its working directory, odd values of STARGATE_RUN_RETENTION, the clock going backwards.
"""

import os
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from integration.server.cycle_support import cycle_until
from integration.server.stargate_harness import Harness
from stargate.server.limits import SettingsError
from stargate.server.scheduling import housekeeping
from stargate.server.settings import Settings
from stargate.store import JobRow, RunRow, parse_job_id

WEEK_S = 7 * 86_400.0
TIMEOUT_S = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def _status(h: Harness, job: object) -> str:
    return str(h.client.get(f"/api/v1/jobs/{job}", headers=h.headers()).json()["status"])


def _until(h: Harness, done: Callable[[], bool]) -> None:
    cycle_until(h, done, TIMEOUT_S)


def _live_runs(h: Harness) -> list[RunRow]:
    with h.ctx.db.read() as session:
        return list(session.scalars(select(RunRow).where(RunRow.ended.is_(False))))


def _finished(h: Harness, *jobs: object) -> None:
    """Wait until every job is final and its runs are marked ended, then make them end 10 days ago."""
    _until(h, lambda: all(_status(h, j) in ("succeeded", "failed") for j in jobs) and not _live_runs(h))
    for job in jobs:
        row = parse_job_id(str(job))
        by = timedelta(days=10)
        with h.ctx.db.write() as session:
            found = session.get(JobRow, row)
            assert found is not None and found.finished_at is not None
            session.execute(update(JobRow).where(JobRow.id == row).values(finished_at=found.finished_at - by))
            for run in session.scalars(select(RunRow).where(RunRow.job_id == row)):
                assert run.ended_at is not None
                session.execute(update(RunRow).where(RunRow.id == run.id).values(ended_at=run.ended_at - by))


def _records(h: Harness) -> list[str]:
    return sorted(r.what for r in h.ctx.executor("local").records())


def _python(code: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


DEEP = "import os\nfor _ in range(700):\n    os.mkdir('d')\n    os.chdir('d')\n"
"""A job's command: 700 nested directories in its working directory (any job may do this)."""


def test_a_deep_directory_tree_left_by_one_job_does_not_stop_the_pruning_of_others(harness: Harness) -> None:
    deep = harness.submit(command=_python(DEEP))["id"]
    later = harness.submit(command="echo later")["id"]
    _finished(harness, deep, later)
    assert len(_records(harness)) == 4
    done = housekeeping.prune_pass(harness.ctx, _now(), WEEK_S)
    (local,) = done.executors
    left = _records(harness)
    assert not any(str(later) in what for what in left), (left, local)  # the later job's working directory
    again = housekeeping.prune_pass(harness.ctx, _now(), WEEK_S)
    assert _records(harness) == [], (again.executors[0], _records(harness))


def test_links_and_locked_directories_a_job_leaves_never_lead_the_pass_outside(
    harness: Harness, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "keep.txt").write_text("mine", encoding="utf-8")
    (outside / "file.txt").write_text("mine too", encoding="utf-8")
    code = (
        "import os\n"
        f"os.symlink({str(outside / 'dir')!r}, 'to_dir')\n"
        f"os.symlink({str(outside / 'file.txt')!r}, 'to_file')\n"
        f"os.symlink({str(outside)!r}, 'to_root', target_is_directory=True)\n"
        "os.makedirs('locked/inner')\n"
        f"os.symlink({str(outside / 'dir')!r}, 'locked/inner/link')\n"
        "open('locked/inner/f', 'w').write('x')\n"
        "os.chmod('locked/inner', 0)\n"
        "os.chmod('locked', 0)\n"
        "os.mkfifo('fifo')\n"
        f"os.link({str(outside / 'file.txt')!r}, 'hard')\n"
    )
    job = harness.submit(command=_python(code))["id"]
    _finished(harness, job)
    assert _status(harness, job) == "succeeded"
    done = housekeeping.prune_pass(harness.ctx, _now(), WEEK_S)
    assert done.removed == 2 and done.executors[0].problems == (), done.executors[0]
    assert _records(harness) == []
    assert (outside / "dir" / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert (outside / "file.txt").read_text(encoding="utf-8") == "mine too"
    logs = harness.client.get(f"/api/v1/jobs/{job}/logs", headers=harness.headers())
    assert logs.status_code == 410 and "was pruned 7 days after the job ended" in logs.json()["detail"]


def test_a_pass_with_a_clock_gone_back_removes_nothing(harness: Harness) -> None:
    job = harness.submit(command="echo x")["id"]
    _finished(harness, job)
    done = housekeeping.prune_pass(harness.ctx, _now() - timedelta(days=30), WEEK_S)
    assert done.removed == 0 and done.executors[0].kept == {"ended less than the retention ago": 2}
    assert len(_records(harness)) == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3_600.0),
        ("  7d ", 7 * 86_400.0),
        ("3600", 3_600.0),
        ("60m", 3_600.0),
        ("3650d", 3_650 * 86_400.0),
        ("NEVER", None),
        ("never", None),
    ],
)
def test_retention_values_just_inside_the_range_are_taken(text: str, seconds: float | None) -> None:
    assert Settings.from_env({"STARGATE_RUN_RETENTION": text}).run_retention_s == seconds


@pytest.mark.parametrize(
    "text", ["0", "-1d", "1e9d", "3599", "59m", "3651d", "3650.5d", "7 d", "7days", "nan", "inf", "9" * 400, "1h1"]
)
def test_retention_values_outside_the_range_are_one_located_line(text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"STARGATE_RUN_RETENTION": text})
    message = str(caught.value)
    assert message.startswith("STARGATE_RUN_RETENTION: found '") and "\n" not in message
    assert len(message) < 400


def test_the_state_directory_holds_no_stray_files_after_pruning(harness: Harness) -> None:
    job = harness.submit(command="echo y")["id"]
    _finished(harness, job)
    before = {p for p in harness.ctx.settings.home.rglob("*") if str(job) in str(p)}
    assert before
    housekeeping.prune_pass(harness.ctx, _now(), WEEK_S)
    after = {p for p in harness.ctx.settings.home.rglob("*") if str(job) in p.name or f"/{job}/" in str(p)}
    assert after == set(), sorted(map(str, after))
    assert os.path.isdir(harness.ctx.settings.home)
