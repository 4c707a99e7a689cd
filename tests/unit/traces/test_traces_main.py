"""``python -m stargate.traces``: check and resample, with exit codes and no tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest
from trace_helpers import OPENB_PODS, PHILLY_HEADER, PROJECT_ROOT, write

from stargate.traces import read_trace
from stargate.traces.__main__ import main


def test_check_prints_counts_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """A clean trace: one summary line, exit code 0."""
    assert main(["check", str(OPENB_PODS), "--format", "alibaba-openb"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{OPENB_PODS}: 238 jobs; skipped: cpu_only 42, never_scheduled 20; bad rows: 0; "
        "notes: shared_gpu_counted_whole 161; start: not given\n"
    )


def test_check_lists_bad_rows_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad rows: the first ten printed with their location, the rest counted; exit code 1."""
    rows = "".join(f"2017-01-01 00:00:{second:02d},-1,1,-1,a\n" for second in range(12))
    path = write(tmp_path, "p.csv", PHILLY_HEADER + rows)
    assert main(["check", str(path), "--format", "philly"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("0 jobs; skipped: none; bad rows: 12; notes: none; start: not given")
    assert lines[1] == f"  {path}:2: duration: found '-1', expected a number >= 0"
    assert lines[-1] == "  ... and 2 more bad rows"


def test_strict_and_unreadable_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--strict on a bad row, a missing file, a bad suffix: a located message on stderr, exit code 2."""
    path = write(tmp_path, "p.csv", PHILLY_HEADER + "2017-01-01 00:00:00,x,1,1,a\n")
    assert main(["check", str(path), "--format", "philly", "--strict"]) == 2
    assert capsys.readouterr().err == f"error: {path}:2: duration: found 'x', expected a number\n"
    assert main(["check", str(tmp_path / "none.csv"), "--format", "philly"]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    args = ["resample", str(OPENB_PODS), "--format", "alibaba-openb", "--jobs", "5", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "x.txt")]) == 2
    assert "expected .csv or .jsonl" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_resample_writes_a_native_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The written file reads back as the requested number of jobs."""
    out = tmp_path / "r.jsonl"
    args = ["resample", str(OPENB_PODS), "--format", "alibaba-openb", "--jobs", "500", "--seed", "3", "--out", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"wrote 500 jobs to {out} (span ")
    trace = read_trace(out, "native", strict=True)
    assert len(trace.jobs) == 500


def test_runs_as_a_module_without_traceback(tmp_path: Path) -> None:
    """The real entry point: a bad option exits 2 with usage, no Python traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "stargate.traces", "check", "x.csv", "--format", "helios"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'helios'" in result.stderr
    assert "Traceback" not in result.stderr
