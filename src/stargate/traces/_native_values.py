"""Field parsers of the native format: one per column, for CSV text and for JSON values, with located messages."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from stargate.traces._rows import (
    epoch_seconds,
    gpu_count,
    name_list,
    non_negative,
    positive,
    problem,
    signed,
    text_field,
    utc,
)
from stargate.traces.model import JOB_KINDS, MAX_GPUS

__all__ = ["CSV_PARSERS", "JSON_PARSERS", "problem", "utc"]

_KINDS = ", ".join(JOB_KINDS)


def _kind(text: str, column: str) -> str:
    """A job kind."""
    value = text.strip()
    if value not in JOB_KINDS:
        raise problem(column, text, f"one of {_KINDS}")
    return value


def _boolean(text: str, column: str) -> bool:
    """``true`` or ``false`` (any case)."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise problem(column, text, "true or false")
    return value == "true"


CSV_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "id": text_field,
    "submit_s": non_negative,
    "submit_time": epoch_seconds,
    "duration_s": positive,
    "gpus": gpu_count,
    "queue": text_field,
    "gpu_models": name_list,
    "priority_class": text_field,
    "preemptible": _boolean,
    "checkpoint_interval_s": positive,
    "allowed_providers": name_list,
    "allowed_regions": name_list,
    "kind": _kind,
    "estimated_duration_s": positive,
    "user": text_field,
    "name": text_field,
}
"""column → parser of its (non-blank) CSV text."""


def _json_text(value: Any, column: str) -> str:
    """A non-empty string (surrounding spaces removed)."""
    if not isinstance(value, str) or not value.strip():
        raise problem(column, value, "a non-empty string")
    return value.strip()


def _json_number(value: Any, column: str) -> float:
    """A finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem(column, value, "a number")
    try:
        number = float(value)
    except OverflowError:
        raise problem(column, value, "a finite number") from None
    if not math.isfinite(number):
        raise problem(column, value, "a finite number")
    return number


def _json_non_negative(value: Any, column: str) -> float:
    """A finite number >= 0."""
    return signed(_json_number(value, column), value, column, strictly=False)


def _json_positive(value: Any, column: str) -> float:
    """A finite number > 0."""
    return signed(_json_number(value, column), value, column, strictly=True)


def _json_gpus(value: Any, column: str) -> int:
    """A whole number from 1 to MAX_GPUS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GPUS:
        raise problem(column, value, f"a whole number from 1 to {MAX_GPUS}")
    return value


def _json_names(value: Any, column: str) -> tuple[str, ...]:
    """A list of non-empty names without '|' (the CSV separator)."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise problem(column, value, "a list of non-empty strings")
    names = tuple(item.strip() for item in value)
    if any("|" in name for name in names):
        raise problem(column, value, "names without '|'")
    return names


def _json_bool(value: Any, column: str) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise problem(column, value, "true or false")
    return value


def _json_kind(value: Any, column: str) -> str:
    """A job kind."""
    if not isinstance(value, str) or value.strip() not in JOB_KINDS:
        raise problem(column, value, f"one of {_KINDS}")
    return value.strip()


def _json_time(value: Any, column: str) -> float:
    """An ISO 8601 date-time string, as epoch seconds."""
    return epoch_seconds(_json_text(value, column), column)


JSON_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "id": _json_text,
    "submit_s": _json_non_negative,
    "submit_time": _json_time,
    "duration_s": _json_positive,
    "gpus": _json_gpus,
    "queue": _json_text,
    "gpu_models": _json_names,
    "priority_class": _json_text,
    "preemptible": _json_bool,
    "checkpoint_interval_s": _json_positive,
    "allowed_providers": _json_names,
    "allowed_regions": _json_names,
    "kind": _json_kind,
    "estimated_duration_s": _json_positive,
    "user": _json_text,
    "name": _json_text,
}
"""key → parser of its (non-null) JSON value."""
