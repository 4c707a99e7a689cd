"""The Philly reader on the real trace (82,247 jobs) and on small malformed files."""

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from trace_helpers import PHILLY_CSV, PHILLY_HEADER, bad_lines, read_text

from stargate.traces import Trace, TraceError, read_trace

PHILLY_DATA_ROWS = 82_247


@pytest.fixture(scope="module")
def philly() -> Trace:
    """The whole Philly trace, read once for this module."""
    return read_trace(PHILLY_CSV, "philly")


def test_every_data_row_is_accounted_for(philly: Trace) -> None:
    """jobs + skipped + bad rows == the file's data rows, and every one of them is a valid job."""
    lines = PHILLY_CSV.read_text(encoding="utf-8").splitlines()
    data_rows = sum(1 for line in lines[1:] if line.strip())
    assert data_rows == PHILLY_DATA_ROWS
    assert len(philly.jobs) + sum(philly.skipped.values()) + len(philly.bad_rows) == data_rows
    assert len(philly.jobs) == PHILLY_DATA_ROWS
    assert philly.bad_rows == []
    assert philly.skipped == Counter()


def test_start_is_the_earliest_timestamp_in_utc(philly: Trace) -> None:
    """The file is not sorted; submit_s counts from its earliest timestamp, naive times taken as UTC."""
    assert philly.start == datetime(2017, 9, 4, 10, 30, 41, tzinfo=UTC)
    assert philly.jobs[0].submit_s == 0.0
    last = datetime(2017, 12, 22, 8, 2, 11, tzinfo=UTC)
    assert philly.jobs[-1].submit_s == (last - philly.start).total_seconds()


def test_jobs_are_sorted_with_unique_ids_that_name_the_data_row(philly: Trace) -> None:
    """Sorted by submit_s; ids philly-<data row>; the first data row of the file is philly-000001."""
    submits = [job.submit_s for job in philly.jobs]
    assert submits == sorted(submits)
    ids = {job.id for job in philly.jobs}
    assert len(ids) == PHILLY_DATA_ROWS
    first = next(job for job in philly.jobs if job.id == "philly-000001")
    # line 2 of the file: 2017-10-09 07:01:55,66.0,1,66.0,11cb48
    assert (first.duration_s, first.gpus, first.queue, first.kind) == (66.0, 1, "vc-11cb48", "batch")
    assert philly.start is not None
    assert first.submit_s == (datetime(2017, 10, 9, 7, 1, 55, tzinfo=UTC) - philly.start).total_seconds()


def test_gpu_mix_and_queues_match_the_published_shape(philly: Trace) -> None:
    """GPU counts and the largest VCs as in ../shared/data/traces/philly/README.md."""
    gpus = Counter(job.gpus for job in philly.jobs)
    assert gpus[1] == 76_627
    assert (gpus[2], gpus[4], gpus[8], gpus[16], gpus[32], gpus[64], gpus[128]) == (1818, 1870, 1643, 199, 67, 6, 3)
    queues = Counter(job.queue for job in philly.jobs)
    assert queues["vc-6214e9"] == 41_226
    assert queues["vc-11cb48"] == 16_091
    assert max(job.duration_s for job in philly.jobs) == 4_628_226.0


def test_kind_is_train_for_multi_gpu_jobs_and_nothing_is_declared(philly: Trace) -> None:
    """kind train when gpus > 1 else batch; no estimate, priority or constraint comes from Philly."""
    assert all(job.kind == ("train" if job.gpus > 1 else "batch") for job in philly.jobs)
    assert all(job.estimated_duration_s is None and job.priority_class is None for job in philly.jobs)
    assert all(job.preemptible and job.gpu_models == () for job in philly.jobs)


def test_malformed_rows_are_reported_with_line_and_column(tmp_path: Path) -> None:
    """Each broken row becomes one bad row naming its line, column, what was found and what was expected."""
    text = PHILLY_HEADER + (
        "2017-10-09 07:01:55,66.0,1,66.0,a\n"  # 2 good
        "yesterday,66.0,1,66.0,a\n"  # 3
        "2017-10-09 07:01:55,-5,1,-5,a\n"  # 4
        "2017-10-09 07:01:55,nan,1,nan,a\n"  # 5
        "2017-10-09 07:01:55,inf,1,inf,a\n"  # 6
        "2017-10-09 07:01:55,66.0,-2,66.0,a\n"  # 7
        "2017-10-09 07:01:55,66.0,1.5,66.0,a\n"  # 8
        "2017-10-09 07:01:55,66.0,1,66.0\n"  # 9 (a field short)
        "2017-10-09 07:01:55,66.0,1,66.0,\n"  # 10 (no cluster)
        "2017-10-09 07:01:55,1e400,1,1,a\n"  # 11
        "2017-10-09 07:01:55,66.0,99999999999999999999,1,a\n"  # 12
        "2017-10-09 07:02:00,0.0,1,0.0,a\n"  # 13: skipped, not bad
    )
    trace = read_text(tmp_path, "p.csv", text, "philly")
    assert len(trace.jobs) == 1
    assert trace.skipped == Counter({"zero_duration": 1})
    assert bad_lines(trace) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    messages = [bad.message for bad in trace.bad_rows]
    assert messages[0].startswith("timestamp: found 'yesterday', expected an ISO 8601 date-time")
    assert messages[1] == "duration: found '-5', expected a number >= 0"
    assert messages[2] == "duration: found 'nan', expected a finite number"
    assert messages[4] == "num_gpus: found '-2', expected a whole number from 1 to 1000000"
    assert messages[6] == "row: found 4 fields, expected 5 (one per header column)"
    assert messages[7] == "cluster: found '', expected a non-empty value"
    assert all(bad.file == str(tmp_path / "p.csv") for bad in trace.bad_rows)
    assert str(trace.bad_rows[0]).startswith(f"{tmp_path / 'p.csv'}:3: timestamp: ")


def test_blank_lines_and_column_order_do_not_matter(tmp_path: Path) -> None:
    """Columns are read by name; blank lines (at the end or between rows) are neither jobs nor bad rows."""
    text = "cluster,num_gpus,timestamp,duration\n\nb,2,2017-01-01 00:00:10,5\n\n a ,1,2017-01-01T00:00:00,7.5\n\n"
    trace = read_text(tmp_path, "p.csv", text, "philly")
    assert trace.bad_rows == []
    assert [(job.id, job.submit_s, job.queue, job.gpus) for job in trace.jobs] == [
        ("philly-000002", 0.0, "vc-a", 1),
        ("philly-000001", 10.0, "vc-b", 2),
    ]


def test_strict_mode_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    """--strict: TraceError carrying the first bad row, with its location."""
    text = PHILLY_HEADER + "2017-10-09 07:01:55,66.0,1,66.0,a\n2017-10-09 07:01:55,x,1,1,a\n2017-10-09,y,1,1,a\n"
    with pytest.raises(TraceError) as caught:
        read_text(tmp_path, "p.csv", text, "philly", strict=True)
    assert caught.value.bad_row.line == 3
    assert caught.value.bad_row.message == "duration: found 'x', expected a number"


def test_a_missing_column_is_a_header_error(tmp_path: Path) -> None:
    """A wrong header fails at line 1, naming the missing columns."""
    with pytest.raises(TraceError) as caught:
        read_text(tmp_path, "p.csv", "timestamp,duration,gpus,cluster\n", "philly")
    assert caught.value.bad_row.line == 1
    assert "missing columns num_gpus" in caught.value.bad_row.message


def test_a_timestamp_with_a_zone_is_converted_to_utc(tmp_path: Path) -> None:
    """An ISO 8601 offset is honoured; naive times are UTC."""
    text = PHILLY_HEADER + "2017-01-01 02:00:00+02:00,5,1,5,a\n2017-01-01 00:30:00,5,1,5,a\n"
    trace = read_text(tmp_path, "p.csv", text, "philly")
    assert trace.start == datetime(2017, 1, 1, 0, 0, tzinfo=UTC)
    assert [job.submit_s for job in trace.jobs] == [0.0, 1800.0]
