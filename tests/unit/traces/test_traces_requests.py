"""Request trace readers: the real Azure LLM conversation trace, the native format, and located errors."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from stargate.traces.model import TraceError
from stargate.traces.requests import RequestTrace, read_requests

AZURE = Path(__file__).parents[4] / "shared" / "data" / "traces" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _write(tmp_path: Path, text: str, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _bad(trace: RequestTrace) -> list[str]:
    return [f"{b.line}: {b.message}" for b in trace.bad_rows]


def test_the_azure_conversation_trace_reads_whole_with_its_published_totals() -> None:
    """../shared/data/traces/azure-llm-2023/README.md: 19,366 requests over 3,501.7 s; 22,361,870 context and
    4,088,665 generated tokens; the first at 2023-11-16 18:15:46.68."""
    trace = read_requests(AZURE, "azure-llm")
    assert (len(trace), trace.bad_rows) == (19_366, [])
    assert trace.start == datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)
    assert round(float(trace.arrival_s[-1]), 1) == 3501.7
    assert (int(trace.prompt_tokens.sum()), int(trace.output_tokens.sum())) == (22_361_870, 4_088_665)
    # line 3: 2023-11-16 18:15:50.9951690,396,109 (seven fractional digits, read to the microsecond)
    assert (trace.arrival_s[1], trace.prompt_tokens[1], trace.output_tokens[1]) == (pytest.approx(4.314579), 396, 109)
    assert trace.arrival_s.dtype == np.float64 and trace.prompt_tokens.dtype == np.int64
    assert bool(np.all(np.diff(trace.arrival_s) >= 0)) and set(trace.service.tolist()) == {-1}


def test_azure_rows_out_of_order_are_sorted_and_counted_from_the_earliest(tmp_path: Path) -> None:
    text = AZURE_HEADER + "2023-11-16 18:00:10.5000000,10,2\n2023-11-16 18:00:00.0000000,20,3\n"
    trace = read_requests(_write(tmp_path, text), "azure-llm")
    assert trace.arrival_s.tolist() == [0.0, 10.5] and trace.prompt_tokens.tolist() == [20, 10]
    assert trace.start == datetime(2023, 11, 16, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2023-11-16 25:00:00.0000000,10,2", "TIMESTAMP: found '2023-11-16 25:00:00.0000000', expected an ISO 8601"),
        ("yesterday,10,2", "TIMESTAMP: found 'yesterday', expected an ISO 8601 date-time"),
        ("2023-11-16 18:00:00.0000000,ten,2", "ContextTokens: found 'ten', expected a whole number from 0 to 10000000"),
        ("2023-11-16 18:00:00.0000000,10,0", "GeneratedTokens: found '0', expected a whole number from 1 to 10000000"),
        ("2023-11-16 18:00:00.0000000,10", "row: found 2 fields, expected 3 (one per header column)"),
    ],
)
def test_a_bad_azure_row_is_skipped_and_located_by_line_and_column(tmp_path: Path, row: str, message: str) -> None:
    text = AZURE_HEADER + "2023-11-16 18:00:00.0000000,5,5\n" + row + "\n"
    trace = read_requests(_write(tmp_path, text), "azure-llm")
    assert len(trace) == 1
    (bad,) = _bad(trace)
    assert bad.startswith(f"3: {message}")
    with pytest.raises(TraceError) as info:
        read_requests(_write(tmp_path, text), "azure-llm", strict=True)
    assert str(info.value).startswith(f"{tmp_path / 'r.csv'}:3: {message}")


def test_a_wrong_azure_header_stops_the_read_naming_the_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(TraceError) as info:
        read_requests(_write(tmp_path, "time,ContextTokens,GeneratedTokens\n"), "azure-llm")
    assert ":1: header: missing columns TIMESTAMP" in str(info.value)
    assert "expected TIMESTAMP, ContextTokens, GeneratedTokens" in str(info.value)


def test_native_rows_with_services_read_as_columns(tmp_path: Path) -> None:
    text = "arrival_s,prompt_tokens,output_tokens,service\n2.5,100,10,code\n0,50,5,\n1,70,7,chat\n1,80,8,code\n"
    trace = read_requests(_write(tmp_path, text), "native")
    assert trace.arrival_s.tolist() == [0.0, 1.0, 1.0, 2.5]
    assert trace.prompt_tokens.tolist() == [50, 70, 80, 100] and trace.output_tokens.tolist() == [5, 7, 8, 10]
    assert trace.services == ["code", "chat"] and trace.service_lines == [2, 4]
    assert trace.service.tolist() == [-1, 1, 0, 0] and trace.start is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("-1,10,2", "arrival_s: found '-1', expected a finite number of seconds >= 0"),
        ("inf,10,2", "arrival_s: found 'inf', expected a finite number of seconds >= 0"),
        ("soon,10,2", "arrival_s: found 'soon', expected a number of seconds >= 0"),
        ("1,1.5,2", "prompt_tokens: found '1.5', expected a whole number from 0 to 10000000"),
        ("1,10,20000000", "output_tokens: found '20000000', expected a whole number from 1 to 10000000"),
        ("1,10,2,3", "row: found 4 fields, expected 3 (one per header column)"),
    ],
)
def test_a_bad_native_row_is_skipped_and_located(tmp_path: Path, row: str, message: str) -> None:
    trace = read_requests(_write(tmp_path, "arrival_s,prompt_tokens,output_tokens\n0,1,1\n" + row + "\n"), "native")
    assert len(trace) == 1 and _bad(trace) == [f"3: {message}"]


def test_a_native_header_with_an_unknown_column_stops_the_read(tmp_path: Path) -> None:
    with pytest.raises(TraceError) as info:
        read_requests(_write(tmp_path, "arrival_s,prompt_tokens,output_tokens,model\n"), "native")
    assert "header: found unknown columns model, expected only arrival_s, prompt_tokens, output_tokens, service" in str(
        info.value
    )


def test_an_empty_file_a_missing_file_and_an_unknown_format_are_located_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"r\.csv:1: the file is empty, expected a header line"):
        read_requests(_write(tmp_path, ""), "native")
    with pytest.raises(TraceError, match="cannot read the file"):
        read_requests(tmp_path / "none.csv", "native")
    with pytest.raises(TraceError, match="request format: found 'splitwise', expected one of azure-llm, native"):
        read_requests(tmp_path / "none.csv", "splitwise")


def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,\xff,1\n")
    with pytest.raises(TraceError, match=r"r\.csv:3: the file is not UTF-8 text"):
        read_requests(path, "native")
