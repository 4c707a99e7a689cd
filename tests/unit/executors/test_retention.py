"""The retention rule: which executor records may go (job final, its run ended, both at least the retention ago,
nothing the engine says is going), the setting's values, and run names read back."""

from datetime import UTC, datetime, timedelta

import pytest

from stargate.executors.base import RunRecord
from stargate.executors.retention import (
    DEFAULT_RETENTION_S,
    KEEP_ACTIVE,
    KEEP_LIVE,
    KEEP_RECENT,
    KEEP_RUN,
    KEEP_UNKNOWN,
    JobFacts,
    describe,
    expired,
    parse_retention,
    run_of,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def record(job: str = "j-000001", attempt: int = 1, what: str = "log", active: bool = False) -> RunRecord:
    return RunRecord(job, attempt, f"{what}/{job}-a{attempt}", active)


def ended(ago: timedelta, runs: dict[int, timedelta | None] | None = None) -> JobFacts:
    """A final job that ended ``ago`` before NOW, with its runs ended so long before NOW (None: not ended)."""
    given = {1: ago} if runs is None else runs
    return JobFacts(True, NOW - ago, {a: None if t is None else NOW - t for a, t in given.items()})


def test_a_record_goes_once_its_job_and_run_ended_at_least_the_retention_ago() -> None:
    facts = {"j-000001": ended(WEEK), "j-000002": ended(WEEK - timedelta(seconds=1))}
    verdict = expired([record("j-000001"), record("j-000002")], facts, NOW, WEEK.total_seconds())
    assert verdict.expired == [record("j-000001")]  # exactly the retention ago: goes; a second less: kept
    assert verdict.kept == {KEEP_RECENT: 1}


@pytest.mark.parametrize(
    ("given", "facts", "why"),
    [
        (record(active=True), ended(timedelta(days=30)), KEEP_ACTIVE),  # the engine says it still runs
        (record(), None, KEEP_UNKNOWN),  # another database's job, or one this database never had
        (record(), JobFacts(False, None, {1: NOW - timedelta(days=30)}), KEEP_LIVE),  # requeued: may run again
        (record(), ended(timedelta(days=30), {1: None}), KEEP_RUN),  # an orphan the reap step still has to stop
        (record(), ended(timedelta(days=30), {1: timedelta(hours=1)}), KEEP_RECENT),  # its run ended late
        (record(), JobFacts(True, None, {}), KEEP_RECENT),  # final without a time: cannot tell how old
    ],
)
def test_a_record_is_kept_while_anything_may_still_need_it(given: RunRecord, facts: JobFacts | None, why: str) -> None:
    verdict = expired([given], {} if facts is None else {given.job_id: facts}, NOW, WEEK.total_seconds())
    assert verdict.expired == [] and verdict.kept == {why: 1}


def test_an_attempt_without_a_run_goes_with_its_job_and_other_attempts_keep_their_own_state() -> None:
    facts = {"j-000001": ended(timedelta(days=9), {1: timedelta(days=20), 2: None})}
    records = [record(attempt=1), record(attempt=2), record(attempt=3, what="withdrawn")]
    verdict = expired(records, facts, NOW, WEEK.total_seconds())
    assert verdict.expired == [record(attempt=1), record(attempt=3, what="withdrawn")]
    assert verdict.kept == {KEEP_RUN: 1}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 604_800.0),
        ("36h", 129_600.0),
        ("2w", 1_209_600.0),
        ("3600", 3_600.0),
        (" 90M ", 5_400.0),
        ("never", None),
    ],
)
def test_the_setting_reads_durations_and_never(text: str, seconds: float | None) -> None:
    assert parse_retention(text) == seconds


def test_less_than_an_hour_is_refused_saying_why() -> None:
    with pytest.raises(
        ValueError, match=r"^STARGATE_RUN_RETENTION: found '30m' \(30 minutes\), shorter than 1 hour: a"
    ):
        parse_retention("30m")


@pytest.mark.parametrize("text", ["0", "0s", "59m", "-1d", "7 days", "1e9", "3651d", "inf", ""])
def test_a_bad_setting_is_a_located_error_saying_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_retention(text, "STARGATE_RUN_RETENTION")
    message = str(caught.value)
    assert message.startswith("STARGATE_RUN_RETENTION: found '") and "expected a duration from 1h to 3650d" in message
    assert "\n" not in message


def test_retentions_read_in_words() -> None:
    assert describe(DEFAULT_RETENTION_S) == "7 days"
    assert [describe(s) for s in (86_400, 129_600, 3_600, 5_400, 90.5, None)] == [
        "1 day",
        "36 hours",
        "1 hour",
        "90 minutes",
        "90 s",
        "never pruned",
    ]


def test_run_names_read_back_only_for_this_installation() -> None:
    prefix = "sg-0123abcd-"
    assert run_of("sg-0123abcd-j-000123-a2", prefix) == ("j-000123", 2)
    assert run_of("sg-0123abcd-my-a-job-a10", prefix) == ("my-a-job", 10)
    for other in ("sg-ffffffff-j-000123-a2", "sg-0123abcd-j-000123", "sg-0123abcd--a1", "sg-0123abcd-j-1-ax", "x"):
        assert run_of(other, prefix) is None
