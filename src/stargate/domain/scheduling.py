"""How the fleet is scheduled: the policy and its settings, as ``stargate simulate --policy/--set`` name them.

The fleet file's ``scheduling:`` section is what the server decides with (unless ``stargate up --policy/--set`` says
otherwise) and what ``stargate simulate`` replays with by default, so what you simulate is what you deploy. Which
policies and settings exist, and their ranges, is the engine's to say (``stargate.engine.scheduling``); the domain
checks each setting's name and the kind of its value, one located line per bad setting.
"""

import math
import re
import reprlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import InitErrorDetails

from stargate.domain.base import Model, Real, visible
from stargate.domain.ids import ID_PATTERN, Id
from stargate.domain.limits import MAX_SMALL_LIST

SettingValue = Annotated[bool, Strict()] | Annotated[int, Strict()] | Real | Literal["inf"] | None
"""A policy setting's value: true/false, a number, 'inf' (no limit) or null."""

SETTING_VALUES = "true, false, a number, 'inf' or null"
"""What a setting's value may be, in words."""

SETTING_NAMES = (
    "a setting name (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"
)
"""What a setting's name may be, in words."""

_ID = re.compile(ID_PATTERN)
_MAX_SHOWN = 60
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 30, 30, 30


def shown(value: Any) -> str:
    """A setting's value (or name) as an error shows it: short, every non-printable character escaped, with its kind
    when it is a container (``[1, 2] (a list)``)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"
        return f"'{visible(text)}'"
    if isinstance(value, float):
        return str(value)  # a YAML float keeps its text
    try:
        text = _REPR.repr(value)
    except ValueError:  # an integer of more digits than Python writes out
        text = "an integer of more than 4,300 digits"
    text = visible(text)
    text = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
    kind = "a list" if isinstance(value, list | tuple) else "a mapping" if isinstance(value, Mapping) else None
    return f"{text} ({kind})" if kind else text


def setting_value(value: Any) -> bool | int | float | str | None:
    """``value`` as a setting holds it, or ValueError 'found X, expected Y'. Infinity (YAML's ``.inf``) becomes the
    string 'inf', so a fleet's canonical JSON stays strict JSON."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value == math.inf:
            return "inf"
        if math.isfinite(value):
            return float(value)
    if value == "inf":
        return "inf"
    raise ValueError(f"found {shown(value)}, expected {SETTING_VALUES}")


def _settings(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The settings mapping checked setting by setting: one error per bad setting, located at its name."""
    if not isinstance(value, Mapping):
        raise ValueError(f"found {shown(value)}, expected a mapping of setting names to {SETTING_VALUES}")
    if len(value) > MAX_SMALL_LIST:
        raise ValueError(f"found a mapping of {len(value):,} settings, expected at most {MAX_SMALL_LIST:,} settings")
    out: dict[str, Any] = {}
    errors: list[InitErrorDetails] = []
    for key, raw in value.items():
        name = key if isinstance(key, str) else str(key)
        try:
            if not isinstance(key, str):
                raise ValueError(f"found {shown(key)} (not text), expected {SETTING_NAMES}")
            if not _ID.fullmatch(key):
                raise ValueError(f"found {shown(key)}, expected {SETTING_NAMES}")
            out[key] = setting_value(raw)
        except ValueError as exc:
            errors.append(InitErrorDetails(type="value_error", loc=(name,), input=raw, ctx={"error": exc}))
    if errors:
        raise ValidationError.from_exception_data("settings", errors)
    return handler(out)


class Scheduling(Model):
    """The scheduling policy and its settings."""

    policy: Id = Field(
        default="gittins",
        description="Policy name: gittins (default; attained service, preempts), las, stargate, srtf or fifo.",
    )
    settings: Annotated[dict[Id, SettingValue], WrapValidator(_settings)] = Field(
        default_factory=dict,
        max_length=MAX_SMALL_LIST,
        description="Policy settings by name, e.g. {runtime_weight: 2, burst_after_s: 3600}; 'inf' for no limit.",
    )
