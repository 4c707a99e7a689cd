"""Shared helpers for the trace reader tests: data paths, writing small files, reading them back."""

from pathlib import Path

from stargate.traces import Trace, read_trace

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DATA = PROJECT_ROOT.parent / "shared" / "data" / "traces"
PHILLY_CSV = DATA / "philly" / "philly.csv"
OPENB_PODS = DATA / "alibaba-openb" / "synthetic_pod_list.csv"

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
OPENB_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read_text(tmp_path: Path, name: str, text: str, fmt: str, *, strict: bool = False) -> Trace:
    """Write ``text`` to a file and read it as ``fmt``."""
    return read_trace(write(tmp_path, name, text), fmt, strict=strict)


def bad_lines(trace: Trace) -> list[int]:
    """The line numbers of the trace's bad rows, in order."""
    return [bad.line for bad in trace.bad_rows]
