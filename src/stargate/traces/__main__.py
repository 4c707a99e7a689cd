"""``python -m stargate.traces``: check a trace file, or write a resampled trace in the native format.

    python -m stargate.traces check ../shared/data/traces/philly/philly.csv --format philly
    python -m stargate.traces resample ../shared/data/traces/philly/philly.csv --format philly \\
        --jobs 1000000 --seed 1 --out philly-1m.csv

Bad input (an unreadable trace, a bad option) prints a located message on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stargate.traces import FORMATS, Trace, TraceError, read_trace, resample, write_native

INPUT_ERROR = 2
"""Exit code for bad input: the trace file or an option."""

SHOWN_BAD_ROWS = 10
"""How many bad rows ``check`` prints (all are counted)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code (0: done, 1: ``check`` found bad rows, 2: bad input)."""
    args = _parser().parse_args(argv)
    try:
        trace = read_trace(Path(args.path), args.format, strict=args.strict)
        if args.command == "check":
            return _check(trace)
        return _resample(trace, args)
    except TraceError as error:
        print(f"error: {error}", file=sys.stderr)
        return INPUT_ERROR
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return INPUT_ERROR


def _parser() -> argparse.ArgumentParser:
    """The command-line grammar (argparse exits with code 2 on a malformed option)."""
    parser = argparse.ArgumentParser(prog="python -m stargate.traces", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in (("check", "read a trace and report its jobs, skips and bad rows"),
                          ("resample", "write a resampled trace (docs/reference/trace-formats.md)")):  # fmt: skip
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("path", help="trace file")
        command.add_argument("--format", required=True, choices=FORMATS, help="trace format")
        command.add_argument("--strict", action="store_true", help="fail on the first bad row")
        if name == "resample":
            command.add_argument("--jobs", type=int, required=True, help="jobs in the new trace")
            command.add_argument("--seed", type=int, required=True, help="random seed (>= 0)")
            command.add_argument("--span-s", type=float, default=None, help="span of the arrivals, s")
            command.add_argument("--out", required=True, help="output file, .csv or .jsonl")
    return parser


def _check(trace: Trace) -> int:
    """Print what was read; exit code 1 when there are bad rows."""
    print(_summary(trace))
    for bad in trace.bad_rows[:SHOWN_BAD_ROWS]:
        print(f"  {bad}")
    if len(trace.bad_rows) > SHOWN_BAD_ROWS:
        print(f"  ... and {len(trace.bad_rows) - SHOWN_BAD_ROWS:,} more bad rows")
    return 1 if trace.bad_rows else 0


def _resample(trace: Trace, args: argparse.Namespace) -> int:
    """Resample and write the new trace."""
    if args.seed < 0:
        raise ValueError(f"--seed: found {args.seed}, expected a whole number >= 0")
    result = resample(trace, args.jobs, seed=args.seed, span_s=args.span_s)
    write_native(result, Path(args.out))
    span = result.jobs[-1].submit_s
    print(f"wrote {len(result.jobs):,} jobs to {args.out} (span {span:,.0f} s, seed {args.seed})")
    return 0


def _summary(trace: Trace) -> str:
    """One line: jobs, skipped by reason, bad rows, notes."""
    skipped = ", ".join(f"{reason} {count:,}" for reason, count in sorted(trace.skipped.items())) or "none"
    notes = ", ".join(f"{reason} {count:,}" for reason, count in sorted(trace.notes.items())) or "none"
    start = trace.start.isoformat() if trace.start else "not given"
    return (
        f"{trace.source}: {len(trace.jobs):,} jobs; skipped: {skipped}; bad rows: {len(trace.bad_rows):,}; "
        f"notes: {notes}; start: {start}"
    )


if __name__ == "__main__":
    sys.exit(main())
