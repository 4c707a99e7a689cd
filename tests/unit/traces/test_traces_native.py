"""The native format: reading CSV and JSONL, header and row errors, submit_time, and the write → read round trip."""

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_helpers import bad_lines, read_text, write
from trace_strategies import traces

from stargate.traces import Trace, TraceError, TraceJob, native, read_trace, write_native

FULL_HEADER = (
    "id,submit_s,duration_s,gpus,queue,gpu_models,priority_class,preemptible,checkpoint_interval_s,"
    "allowed_providers,allowed_regions,kind,estimated_duration_s\n"
)


def test_csv_with_every_column(tmp_path: Path) -> None:
    """Every column maps to its field; empty optional fields take the defaults."""
    text = FULL_HEADER + (
        "a,10,3600,8,research,H100-SXM|H200,high,false,600,azure|oci,eastus,train,4000\nb,0,60,1,ops,,,,,,,,\n"
    )
    trace = read_text(tmp_path, "t.csv", text, "native")
    assert trace.bad_rows == []
    assert trace.jobs == [
        TraceJob("b", 0.0, 60.0, 1, "ops"),
        TraceJob(
            "a", 10.0, 3600.0, 8, "research", ("H100-SXM", "H200"), "high", False, 600.0, ("azure", "oci"),
            ("eastus",), "train", 4000.0,
        ),
    ]  # fmt: skip


def test_csv_with_only_the_required_columns(tmp_path: Path) -> None:
    """Optional columns may be left out entirely."""
    trace = read_text(tmp_path, "t.csv", "queue,gpus,duration_s,submit_s,id\nq,2,5.5,1.25,x\n", "native")
    assert trace.jobs == [TraceJob("x", 1.25, 5.5, 2, "q")]


def test_user_and_name_are_read_from_csv_and_jsonl(tmp_path: Path) -> None:
    """``user`` and ``name`` (optional, text) group learned run-time estimates; a plain row keeps them too."""
    csv_trace = read_text(
        tmp_path, "t.csv", "id,submit_s,duration_s,gpus,queue,user,name\na,0,60,1,q,ann,train\n", "native"
    )
    jsonl = '{"id":"a","submit_s":0,"duration_s":60,"gpus":1,"queue":"q","user":"ann","name":"train"}\n'
    json_trace = read_text(tmp_path, "t.jsonl", jsonl, "native")
    for trace in (csv_trace, json_trace):
        assert trace.bad_rows == []
        assert trace.jobs == [TraceJob("a", 0.0, 60.0, 1, "q", user="ann", name="train")]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("id,submit_s,duration_s,gpus,queue,colour\n", "header: found unknown columns colour"),
        ("id,submit_s,duration_s,queue\n", "header: missing columns gpus"),
        ("id,duration_s,gpus,queue\n", "header: found neither, expected exactly one of submit_s, submit_time"),
        ("id,submit_s,submit_time,duration_s,gpus,queue\n", "header: found submit_s and submit_time"),
        ("id,submit_s,duration_s,gpus,queue,id\n", "header: found duplicate columns id"),
    ],
)
def test_csv_header_errors(tmp_path: Path, header: str, expected: str) -> None:
    """Unknown, missing, duplicate columns and the submit rule fail at line 1."""
    with pytest.raises(TraceError) as caught:
        read_text(tmp_path, "t.csv", header + "a,1,1,1,q,x\n", "native")
    assert caught.value.bad_row.line == 1
    assert caught.value.bad_row.message.startswith(expected)


def test_csv_bad_rows(tmp_path: Path) -> None:
    """Each malformed field is a bad row at its line; good rows around it still come through."""
    rows = [
        "ok,0,10,1,q,,,,,,,,",  # 2
        "neg,-1,10,1,q,,,,,,,,",  # 3
        "zero,0,0,1,q,,,,,,,,",  # 4
        "gpus,0,10,0,q,,,,,,,,",  # 5
        "kind,0,10,1,q,,,,,,,serving,",  # 6
        "bool,0,10,1,q,,,maybe,,,,,",  # 7
        "ckpt,0,10,1,q,,,,-3,,,,",  # 8
        "ok,0,10,1,q,,,,,,,,",  # 9 duplicate id
        ",0,10,1,q,,,,,,,,",  # 10 no id
        "models,0,10,1,q,A||B,,,,,,,",  # 11
        "width,0,10,1,q",  # 12
        "queue,0,10,1, ,,,,,,,,",  # 13
        "ok2,5,10,2,q,,,TRUE,,,,batch,",  # 14 good (true in any case)
    ]
    trace = read_text(tmp_path, "t.csv", FULL_HEADER + "\n".join(rows) + "\n", "native")
    assert [job.id for job in trace.jobs] == ["ok", "ok2"]
    assert bad_lines(trace) == list(range(3, 14))
    messages = {bad.line: bad.message for bad in trace.bad_rows}
    assert messages[3] == "submit_s: found '-1', expected a number >= 0"
    assert messages[4] == "duration_s: found '0', expected a number > 0"
    assert messages[5] == "gpus: found '0', expected a whole number from 1 to 1000000"
    assert messages[6] == "kind: found 'serving', expected one of train, serve, batch"
    assert messages[7] == "preemptible: found 'maybe', expected true or false"
    assert messages[9] == "id: found 'ok', expected an id not used by an earlier row"
    assert messages[10] == "id: found '', expected a value (this column is required)"
    assert messages[12] == "row: found 5 fields, expected 13 (one per header column)"


def test_submit_time_sets_the_start(tmp_path: Path) -> None:
    """With submit_time, the trace starts at the earliest one and submit_s counts from it."""
    text = "id,submit_time,duration_s,gpus,queue\nb,2026-01-01T01:00:00+01:00,5,1,q\na,2026-01-01 00:30:00,5,1,q\n"
    trace = read_text(tmp_path, "t.csv", text, "native")
    assert trace.start == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert [(job.id, job.submit_s) for job in trace.jobs] == [("b", 0.0), ("a", 1800.0)]


def test_jsonl_reading(tmp_path: Path) -> None:
    """One object per line; null means the default; lists for names; blank lines skipped."""
    lines = [
        {"id": "a", "submit_s": 5, "duration_s": 10, "gpus": 4, "queue": "q", "gpu_models": ["H100-SXM"]},
        {"id": "b", "submit_s": 0, "duration_s": 1.5, "gpus": 1, "queue": "q", "kind": "serve", "priority_class": None},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    trace = read_text(tmp_path, "t.jsonl", text, "native")
    assert trace.jobs == [
        TraceJob("b", 0.0, 1.5, 1, "q", kind="serve"),
        TraceJob("a", 5.0, 10.0, 4, "q", ("H100-SXM",)),
    ]


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    """Not JSON, not an object, unknown or missing keys, wrong types: bad rows at their lines."""
    good = {"id": "a", "submit_s": 0, "duration_s": 1, "gpus": 1, "queue": "q"}
    lines = [
        json.dumps(good),  # 1
        "{not json",  # 2
        "[1, 2]",  # 3
        json.dumps({**good, "id": "b", "colour": "red"}),  # 4
        json.dumps({"id": "c", "submit_s": 0, "gpus": 1, "queue": "q"}),  # 5 no duration
        json.dumps({**good, "id": "d", "gpus": True}),  # 6
        json.dumps({**good, "id": "e", "gpus": 2.0}),  # 7
        json.dumps({**good, "id": "f", "duration_s": "10"}),  # 8
        json.dumps({**good, "id": "g", "submit_time": "2026-01-01"}),  # 9 both submit keys
        '{"id": "h", "submit_s": 1e999, "duration_s": 1, "gpus": 1, "queue": "q"}',  # 10 infinite
        json.dumps({**good, "id": "i", "gpu_models": "H100"}),  # 11
        json.dumps({**good, "id": None}),  # 12 null required
        json.dumps({"id": "j", "submit_time": "2026-01-01", "duration_s": 1, "gpus": 1, "queue": "q"}),  # 13
    ]
    trace = read_text(tmp_path, "t.jsonl", "\n".join(lines) + "\n", "native")
    assert [job.id for job in trace.jobs] == ["a"]
    assert bad_lines(trace) == list(range(2, 14))
    messages = {bad.line: bad.message for bad in trace.bad_rows}
    assert messages[2] == "line: found '{not json', expected one JSON object"
    assert messages[4].startswith("keys: found unknown colour, expected only id, submit_s")
    assert messages[6] == "gpus: found True, expected a whole number from 1 to 1000000"
    assert messages[8] == "duration_s: found '10', expected a number"
    assert messages[10] == "submit_s: found inf, expected a finite number"
    assert messages[13] == "submit_time: found submit_time, expected submit_s like the earlier rows (one per file)"


def test_unknown_suffix_is_an_error(tmp_path: Path) -> None:
    """The suffix chooses CSV or JSONL; anything else is refused before reading."""
    path = write(tmp_path, "t.txt", "id\n")
    with pytest.raises(TraceError, match=r"expected \.csv or \.jsonl"):
        read_trace(path, "native")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace=traces())
def test_write_then_read_gives_equal_jobs(tmp_path: Path, trace: Trace) -> None:
    """read_trace(write_native(x)).jobs == x.jobs, for CSV and JSONL, floats exact."""
    for name in ("round.csv", "round.jsonl"):
        path = tmp_path / name
        write_native(trace, path)
        again = read_trace(path, "native", strict=True)
        assert again.jobs == trace.jobs
        assert again.bad_rows == []
        assert again.skipped == Counter()


def test_write_refuses_an_unknown_suffix_and_leaves_nothing(tmp_path: Path) -> None:
    """No partial or temporary file is left behind when writing fails."""
    trace = Trace(jobs=[TraceJob("a", 0.0, 1.0, 1, "q")], start=None, skipped=Counter(), bad_rows=[], source="x")
    with pytest.raises(ValueError, match=r"expected \.csv or \.jsonl"):
        write_native(trace, tmp_path / "t.parquet")
    with pytest.raises(FileNotFoundError):
        write_native(trace, tmp_path / "missing-dir" / "t.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    """Writing over a file replaces it; no temporary file remains."""
    path = write(tmp_path, "t.csv", "old contents\n")
    trace = Trace(jobs=[TraceJob("a", 0.0, 1.0, 1, "q")], start=None, skipped=Counter(), bad_rows=[], source="x")
    write_native(trace, path)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    assert read_trace(path, "native").jobs == trace.jobs


_ODD_VALUES: st.SearchStrategy[object] = st.sampled_from(
    [0, -1, "", " x ", None, True, 2.5, 10**400, 1e308, [], "train", "x"]
)
_KEYS = ["id", "submit_s", "duration_s", "gpus", "queue", "kind", "preemptible", "gpu_models", "submit_time"]


@st.composite
def _odd_records(draw: st.DrawFn) -> dict[str, object]:
    """A plain record with up to three keys given odd values or removed (most often a required one)."""
    record: dict[str, object] = {"id": "a", "submit_s": 0, "duration_s": 1.5, "gpus": 1, "queue": "q"}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(_KEYS[:5]) | st.sampled_from(_KEYS))
        if draw(st.booleans()):
            record.pop(key, None)
        else:
            record[key] = draw(_ODD_VALUES)
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(_odd_records(), min_size=1, max_size=4),
    around=st.lists(st.sampled_from(["", "", "", " ", "\t", " x", "{}", "]", "\r"]), min_size=8, max_size=8),
)
def test_jsonl_fast_path_agrees_with_the_full_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: list[dict[str, object]], around: list[str]
) -> None:
    """Plain records take a fast path; with it switched off, every line gives the same job or the same bad row.

    Lines may have text before or after the object (spaces, a stray value, a carriage return).
    """
    path = tmp_path / "odd.jsonl"
    lines = []
    for number, record in enumerate(records):
        if record.get("id") == "a":
            record["id"] = f"r{number}"
        lines.append(around[2 * number] + json.dumps(record) + around[2 * number + 1] + "\n")
    path.write_text("".join(lines), encoding="utf-8", newline="")
    fast = read_trace(path, "native")
    with monkeypatch.context() as patch:
        patch.setattr(native, "_json_fast", lambda record, builder: False)  # every line through _json_row
        checked = read_trace(path, "native")
    assert fast.jobs == checked.jobs
    assert fast.bad_rows == checked.bad_rows


_ODD_FIELDS = st.sampled_from(
    ["", " ", "x", " x ", "0", "-1", "1", "2.5", "nan", "1e999", "true", "FALSE", "train", "a|b"]
)


_PLAIN_ROW = ["a", "0", "1", "1", "q", "", "", "", "", "", "", "", ""]


@st.composite
def _odd_rows(draw: st.DrawFn) -> list[str]:
    """A plain row with up to three fields replaced by odd values (most often a required one)."""
    row = list(_PLAIN_ROW)
    for _ in range(draw(st.integers(0, 3))):
        row[draw(st.integers(0, 4) | st.integers(0, 12))] = draw(_ODD_FIELDS)
    return row


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_odd_rows(), max_size=6))
def test_csv_fast_path_agrees_with_the_full_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[list[str]]
) -> None:
    """Plain rows take a fast path; with it switched off, every row gives the same job or the same bad row."""
    path = tmp_path / "odd.csv"
    lines = [",".join([f"r{number}" if row[0] == "a" else row[0], *row[1:]]) for number, row in enumerate(rows)]
    path.write_text(FULL_HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    fast = read_trace(path, "native")
    with monkeypatch.context() as patch:
        patch.setattr(native._CsvLayout, "fast", False)
        checked = read_trace(path, "native")
    assert fast.jobs == checked.jobs
    assert fast.bad_rows == checked.bad_rows
