"""A reader that goes away (``stargate fleet validate bad.yaml 2>&1 | head -1``): the command stops quietly and exits
141 (128 + SIGPIPE, as a shell reports a Unix tool stopped by it), never 0, so a ``set -o pipefail`` step fails."""

import subprocess
import sys
from pathlib import Path

import pytest

from stargate.cli import EXIT_BROKEN_PIPE, _pacified


def _bad_fleet(tmp_path: Path, clusters: int) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nclusters:\n" + "".join(f"  - id: c{i}\n    site: nowhere\n" for i in range(clusters)))
    return path


def _first_line_then_close(args: list[str]) -> tuple[bytes, int]:
    """Run ``stargate ARGS`` with stdout and stderr into one pipe, read one line and close it, as ``head -1``."""
    proc = subprocess.Popen([sys.executable, "-m", "stargate", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    return first, proc.wait(timeout=120)


def test_a_closed_pipe_is_exit_141_not_0(tmp_path: Path) -> None:
    first, code = _first_line_then_close(["fleet", "validate", str(_bad_fleet(tmp_path, 3000))])
    assert first.startswith(str(tmp_path / "bad.yaml").encode() + b":")  # the problems were being written
    assert code == EXIT_BROKEN_PIPE == 141


def test_a_command_that_ends_before_the_reader_goes_keeps_its_own_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stargate", "fleet", "validate", str(_bad_fleet(tmp_path, 1))],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 2 and b"problem" in result.stderr


@pytest.mark.parametrize(("name", "pacified"), [("PacifyFlushWrapper", True), ("TextIOWrapper", False)])
def test_the_wrapper_typer_puts_on_a_broken_stdout_is_recognised(name: str, pacified: bool) -> None:
    assert _pacified(type(name, (), {})()) is pacified
