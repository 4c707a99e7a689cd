"""No input makes a reader crash: garbage gives TraceError (whole file) or bad rows, never another exception."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from trace_helpers import OPENB_HEADER, PHILLY_HEADER

from stargate.traces import FORMATS, TraceError, read_trace

NATIVE_HEADER = "id,submit_s,duration_s,gpus,queue\n"
CASES = [("philly", ".csv"), ("alibaba-openb", ".csv"), ("native", ".csv"), ("native", ".jsonl")]


def _read(path: Path, fmt: str, *, strict: bool = False) -> str:
    """Read and summarise the outcome: 'error: <message>' or 'jobs=<n> bad=<n>'."""
    try:
        trace = read_trace(path, fmt, strict=strict)
    except TraceError as error:
        return f"error: {error}"
    return f"jobs={len(trace.jobs)} bad={len(trace.bad_rows)}"


@pytest.mark.parametrize(("fmt", "suffix"), CASES)
def test_binary_junk_is_a_located_error(tmp_path: Path, fmt: str, suffix: str) -> None:
    """Bytes that are not UTF-8: TraceError naming the first such line."""
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"fine first line\n\xff\xfe\x00\x9c garbage\n")
    outcome = _read(path, fmt)
    assert outcome.startswith(f"error: {path}:2: the file is not UTF-8 text")


@pytest.mark.parametrize(("fmt", "suffix"), CASES)
def test_empty_and_missing_files(tmp_path: Path, fmt: str, suffix: str) -> None:
    """Empty CSV: an error at line 1 (no header); empty JSONL: no jobs. Missing file or a directory: an error."""
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    expected = "jobs=0 bad=0" if suffix == ".jsonl" else f"error: {empty}:1: the file is empty"
    assert _read(empty, fmt).startswith(expected)
    missing = tmp_path / f"missing{suffix}"
    assert _read(missing, fmt) == f"error: {missing}: cannot read the file: No such file or directory"
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    assert _read(folder, fmt).startswith(f"error: {folder}: cannot read the file")


@pytest.mark.parametrize(
    ("fmt", "header"), [("philly", PHILLY_HEADER), ("alibaba-openb", OPENB_HEADER), ("native", NATIVE_HEADER)]
)
def test_header_only_is_an_empty_trace(tmp_path: Path, fmt: str, header: str) -> None:
    """A header and no rows: a valid trace with no jobs."""
    path = tmp_path / "h.csv"
    path.write_text(header, encoding="utf-8")
    assert _read(path, fmt, strict=True) == "jobs=0 bad=0"


@pytest.mark.parametrize("fmt", ["philly", "alibaba-openb", "native"])
def test_wrong_header_names_what_is_missing(tmp_path: Path, fmt: str) -> None:
    """Another format's header (or none): an error at line 1 listing the missing columns."""
    path = tmp_path / "w.csv"
    path.write_text("2017-10-09 07:01:55,66.0,1,66.0,11cb48\n", encoding="utf-8")
    outcome = _read(path, fmt)
    assert outcome.startswith(f"error: {path}:1: header: missing columns ")


@pytest.mark.parametrize(
    ("fmt", "header", "row"),
    [
        ("philly", PHILLY_HEADER, "2017-10-09 07:01:55,{value},1,1,a"),
        ("philly", PHILLY_HEADER, "2017-10-09 07:01:55,5,{value},1,a"),
        ("alibaba-openb", OPENB_HEADER, "p,1,1,{value},1000,,LS,Running,0,10,1"),
        ("alibaba-openb", OPENB_HEADER, "p,1,1,1,1000,,LS,Running,{value},10,1"),
        ("native", NATIVE_HEADER, "a,{value},1,1,q"),
        ("native", NATIVE_HEADER, "a,1,1,{value},q"),
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-4", "1e999", "9" * 5000, "", "0x10", "１"])
def test_odd_numbers_are_bad_rows(tmp_path: Path, fmt: str, header: str, row: str, value: str) -> None:
    """NaN, infinities, negatives, huge numbers, empty, hex: one bad row each, never a crash."""
    path = tmp_path / "n.csv"
    path.write_text(header + row.format(value=value) + "\n", encoding="utf-8")
    assert _read(path, fmt) in ("jobs=0 bad=1", "jobs=1 bad=0")
    if value in ("nan", "inf", "-inf", "-4", "1e999", "", "0x10"):
        assert _read(path, fmt) == "jobs=0 bad=1"


def test_an_oversized_field_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    """The csv module's field size limit: that row is bad, the next one is read."""
    path = tmp_path / "big.csv"
    path.write_text(NATIVE_HEADER + "a," + "9" * 200_000 + ",1,1,q\nb,0,1,1,q\n", encoding="utf-8")
    trace = read_trace(path, "native")
    assert [job.id for job in trace.jobs] == ["b"]
    assert [bad.line for bad in trace.bad_rows] == [2]
    assert "field larger than field limit" in trace.bad_rows[0].message


def test_an_unknown_format_is_an_error(tmp_path: Path) -> None:
    """The format name is checked before the file is opened."""
    with pytest.raises(
        TraceError, match=r"trace format: found 'helios', expected one of philly, alibaba-openb, native"
    ):
        read_trace(tmp_path / "x.csv", "helios")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), fmt_index=st.integers(0, 3))
def test_arbitrary_bytes_never_crash(tmp_path: Path, data: bytes, fmt_index: int) -> None:
    """Any bytes, any format: a Trace or a TraceError; strict mode likewise."""
    fmt, suffix = CASES[fmt_index]
    assert fmt in FORMATS
    path = tmp_path / f"any{suffix}"
    path.write_bytes(data)
    assert _read(path, fmt).startswith(("error: ", "jobs="))
    assert _read(path, fmt, strict=True).startswith(("error: ", "jobs="))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(st.text(max_size=12), max_size=14), max_size=6),
    fmt=st.sampled_from(["philly", "alibaba-openb", "native"]),
)
def test_arbitrary_rows_under_a_valid_header_never_crash(tmp_path: Path, rows: list[list[str]], fmt: str) -> None:
    """A valid header then arbitrary fields: every non-blank row is a job, a skip or a bad row."""
    header = {"philly": PHILLY_HEADER, "alibaba-openb": OPENB_HEADER, "native": NATIVE_HEADER}[fmt]
    body = "".join(",".join(field.replace("\r", "") for field in row) + "\n" for row in rows)
    path = tmp_path / "rows.csv"
    path.write_text(header + body, encoding="utf-8")
    try:
        trace = read_trace(path, fmt)
    except TraceError as error:  # only a reading error may stop the file, e.g. a stray quote making one huge field
        assert error.bad_row.file == str(path)
        return
    assert all(bad.line >= 2 for bad in trace.bad_rows)


_OFFSETS = st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moments=st.lists(st.datetimes(timezones=st.none() | _OFFSETS), min_size=1, max_size=4))
@example(moments=[datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))])
@example(moments=[datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))), datetime(2017, 1, 1)])
def test_any_iso_time_is_a_job_or_a_bad_row(tmp_path: Path, moments: list[datetime]) -> None:
    """Philly timestamps and native submit_time: any ISO 8601 time, even one pushed past year 1 or 9999 by its
    offset, gives a job (submit_s >= 0) or a bad row, never another exception."""
    philly = tmp_path / "p.csv"
    philly.write_text(PHILLY_HEADER + "".join(f"{moment.isoformat()},5,1,5,a\n" for moment in moments), "utf-8")
    native = tmp_path / "n.csv"
    rows = "".join(f"j{number},{moment.isoformat()},5,1,q\n" for number, moment in enumerate(moments))
    native.write_text("id,submit_time,duration_s,gpus,queue\n" + rows, "utf-8")
    for path, fmt in ((philly, "philly"), (native, "native")):
        trace = read_trace(path, fmt)
        assert len(trace.jobs) + len(trace.bad_rows) == len(moments)
        assert all(job.submit_s >= 0 for job in trace.jobs)
        assert (trace.start is None) == (not trace.jobs)
