"""Plain wording for validation errors: what was found (the input) and what was expected (from the field's type).

The expected side is derived from the model's own annotations and constraints, so a field ``gpus: int = Field(gt=0)``
reads "an integer greater than 0" whatever went wrong with it (wrong type or out of bounds).
"""

import difflib
import re
import types
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from stargate.domain.base import DateRange, MaxBytes, Printable, Unit, visible
from stargate.domain.executors import AbsolutePath, DnsLabel, DnsName, EnvName, Gres, HttpAddress, Word
from stargate.domain.ids import ID_PATTERN

_NOUNS = {
    "GpuModel": "GPU model",
    "RightOfFirstRefusal": "right-of-first-refusal clause",
    "Exclusivity": "exclusivity clause",
    "PriorityClass": "priority class",
    "JobSpec": "job spec",
    "MarketOptions": "market section",
    "LocalExecutorConfig": "local executor",
    "RayExecutorConfig": "Ray executor",
    "SlurmExecutorConfig": "Slurm executor",
    "KubernetesExecutorConfig": "Kubernetes executor",
    "ExecutorHealth": "executor health section",
}
_ID_WORDS = "an id (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"
_MAX_FOUND = 60


def _pattern(annotated: Any) -> str:
    return str(next(m.pattern for m in get_args(annotated)[1:] if getattr(m, "pattern", None)))


_PATTERN_WORDS = {
    ID_PATTERN: _ID_WORDS,
    _pattern(EnvName): "the name of an environment variable (upper-case letters, digits and '_', not starting with a "
    "digit, at most 128 characters) whose value the server reads; never the secret itself",
    _pattern(HttpAddress): "an http:// or https:// address with a host (and a port from 1 to 65535), optionally a "
    "path; no query, no credentials (user:password@: give a token with token_env)",
    _pattern(Word): "a name (letters, digits, '.', '_', '/', ':', '@' or '-', starting with a letter or digit, at "
    "most 253 characters)",
    _pattern(AbsolutePath): "an absolute file path, starting with '/' (no control characters, no '..' part, at most "
    "4,096 characters)",
    _pattern(DnsLabel): "a DNS label (1 to 63 lower-case letters, digits or '-', starting and ending with a letter or "
    "digit)",
    _pattern(DnsName): "a DNS name (1 to 253 lower-case letters, digits, '-' or '.', starting and ending with a "
    "letter or digit)",
    _pattern(Gres): "a GRES name, optionally with its type ('gpu', 'gpu:a100'), never a count: each job's GPUs per "
    "node are added",
}


def noun(model: type[BaseModel]) -> str:
    """A model's name in words, e.g. 'right-of-first-refusal clause' for RightOfFirstRefusal."""
    name = model.__name__
    return _NOUNS.get(name, re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower())


def article(word: str) -> str:
    """The word with 'a' or 'an' in front."""
    return f"{'an' if word[:1].lower() in 'aeio' else 'a'} {word}"


def found_text(value: Any) -> str:
    """An input value as shown after "found": strings quoted, containers named, long text shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= _MAX_FOUND else value[: _MAX_FOUND - 1] + "…"
        return f"'{visible(text)}'"
    if isinstance(value, int) and abs(value) >= 10**_MAX_DIGITS:
        return f"an integer of {len(str(abs(value)))} digits"
    text = str(value)
    return text if len(text) <= _MAX_FOUND else text[: _MAX_FOUND - 1] + "…"


_MAX_DIGITS = 24


def resolve(model: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[Any, list[Any]] | None:
    """The annotation and constraint metadata of the field at ``loc`` inside ``model``, or None if not a field."""
    tp: Any = model
    meta: list[Any] = []
    for part in loc:
        tp, meta, _ = _unwrap(tp, meta)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str) and part in tp.model_fields:
            info = tp.model_fields[part]
            tp, meta = info.annotation, list(info.metadata)
        elif get_origin(tp) is list and isinstance(part, int):
            tp, meta = get_args(tp)[0], []
        elif get_origin(tp) is dict and isinstance(part, str):
            tp, meta = get_args(tp)[1], []
        else:
            return None
    return tp, meta


def owner_model(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (used for unknown keys)."""
    if not loc[:-1]:
        return model
    found = resolve(model, loc[:-1])
    if found is None:
        return None
    tp, _, _ = _unwrap(*found)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def expected_text(tp: Any, meta: list[Any]) -> str:
    """What a value of type ``tp`` with constraints ``meta`` must be, in words."""
    tp, meta, nullable = _unwrap(tp, meta)
    return _base_text(tp, meta) + (", or null" if nullable else "")


def error_words(model: type[BaseModel], err: ErrorDetails) -> tuple[str, str]:
    """(found, expected) for one pydantic error raised while validating ``model``."""
    loc = tuple(err["loc"])
    if err["type"] == "missing":
        return "nothing (the key is missing)", f"a value: {_field_text(model, loc, err)}"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{visible(str(loc[-1]))[:_MAX_FOUND]}'", unknown_key_expected(
            str(loc[-1]), owner_model(model, loc)
        )
    own = _own_words(err)
    if own is not None:
        return own
    found = err.get("input")
    if isinstance(found, str) and _has_pattern(model, loc, EnvName):
        hidden = "a value that is not an upper-case environment variable name (not shown: it may be a secret)"
        return hidden, _field_text(model, loc, err)
    if isinstance(found, str) and _has_pattern(model, loc, HttpAddress) and _credentials(found):
        hidden = "an address holding credentials before '@' (not shown: they may be secret)"
        return hidden, _field_text(model, loc, err)
    if err["type"] == "too_long" and isinstance(found, list | dict):
        count = len(found)
        return f"{'a list' if isinstance(found, list) else 'a mapping'} of {count:,} entries", _field_text(
            model, loc, err
        )
    return found_text(found), _field_text(model, loc, err)


def _has_pattern(model: type[BaseModel], loc: tuple[str | int, ...], annotated: object) -> bool:
    """True for a field of the constrained string type ``annotated`` (``EnvName``: the name of a variable holding a
    secret, whose wrong value is not echoed; ``HttpAddress``)."""
    found = resolve(model, loc)
    return found is not None and _constraint(_unwrap(*found)[1], "pattern") == _pattern(annotated)


def _credentials(address: str) -> bool:
    """Whether an address has something before an '@' in its host part (``http://user:password@host``)."""
    rest = address.split("://", 1)[-1]
    return "@" in rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def plain_error_words(err: ErrorDetails) -> tuple[str, str]:
    """(found, expected) for a pydantic error without its model (e.g. an API body): pydantic's own wording."""
    loc = tuple(err["loc"])
    if err["type"] == "missing":
        return "nothing (the key is missing)", "a value"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{visible(str(loc[-1]))[:_MAX_FOUND]}'", "only the documented keys"
    own = _own_words(err)
    if own is not None:
        return own
    found = err.get("input")
    if err["type"] == "too_long" and isinstance(found, list | dict):
        kind = "a list" if isinstance(found, list) else "a mapping"
        return f"{kind} of {len(found):,} entries", _pydantic_text(err)
    return found_text(found), _pydantic_text(err)


def _own_words(err: ErrorDetails) -> tuple[str, str] | None:
    """(found, expected) from a validator whose message already reads ``found X, expected Y``."""
    if err["type"] != "value_error":
        return None
    message = str(err.get("ctx", {}).get("error", ""))
    if not message.startswith("found ") or ", expected " not in message:
        return None
    found, _, expected = message.removeprefix("found ").partition(", expected ")
    return found, expected


def unknown_key_expected(key: str, model: type[BaseModel] | None) -> str:
    """Expected wording for an unknown key: the closest known key, or the list of known keys."""
    if model is None:
        return "a known key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"a known key of {article(noun(model))}; did you mean '{close[0]}'?"
    return f"one of the keys of {article(noun(model))}: {', '.join(known)}"


def _field_text(model: type[BaseModel], loc: tuple[str | int, ...], err: ErrorDetails) -> str:
    found = resolve(model, loc)
    if found is None:
        return _pydantic_text(err)
    return expected_text(*found)


def _pydantic_text(err: ErrorDetails) -> str:
    msg = err["msg"]
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def _unwrap(tp: Any, meta: list[Any]) -> tuple[Any, list[Any], bool]:
    """Strip Annotated (collecting its constraints) and Optional; return (type, constraints, nullable)."""
    meta = list(meta)
    nullable = False
    while True:
        if get_origin(tp) is Annotated:
            args = get_args(tp)
            tp = args[0]
            meta += [m for a in args[1:] for m in (getattr(a, "metadata", None) or [a])]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            nullable = True
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp, meta, nullable


def _constraint(meta: list[Any], name: str) -> Any:
    for m in meta:
        value = getattr(m, name, None)
        if value is not None:
            return value
    return None


def _bounds(meta: list[Any]) -> str:
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    parts = [f"{w} {_number(_constraint(meta, k))}" for k, w in words.items() if _constraint(meta, k) is not None]
    return " and ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _base_text(tp: Any, meta: list[Any]) -> str:
    if tp is bool:
        return "true or false"
    if tp in (int, float, Decimal):
        return _numeric_text(tp, meta)
    if tp is str:
        return _string_text(meta)
    if tp is datetime:
        return "a date-time as YYYY-MM-DDTHH:MM:SS (ISO 8601)" + _range_text(meta)
    if tp is date:
        return "a date as YYYY-MM-DD (ISO 8601)" + _range_text(meta)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(f"'{m.value}'" for m in tp)
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(f"'{v}'" for v in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        required = [n for n, f in tp.model_fields.items() if f.is_required()]
        return f"a mapping describing {article(noun(tp))} (required keys: {', '.join(required) or 'none'})"
    longest = _constraint(meta, "max_length")
    most = f" (at most {longest:,})" if longest is not None else ""
    if get_origin(tp) is list:
        return f"a list of {_plural(get_args(tp)[0])}{most}"
    if get_origin(tp) is dict:
        return f"a mapping of strings to strings{most}"
    return f"a value of type {getattr(tp, '__name__', tp)}"


def _range_text(meta: list[Any]) -> str:
    span = next((m for m in meta if isinstance(m, DateRange)), None)
    return "" if span is None else " " + span.words()


def _numeric_text(tp: Any, meta: list[Any]) -> str:
    text = "an integer" if tp is int else "a number"
    bounds = _bounds(meta)
    if bounds:
        text += f" {bounds}"
    places = _constraint(meta, "decimal_places")
    if tp is Decimal and places is not None:
        text += f" with at most {places} decimal places"
    unit = next((m.symbol for m in meta if isinstance(m, Unit)), None)
    if unit is not None:
        text += f" ({unit})"
    return text


def _string_text(meta: list[Any]) -> str:
    pattern = _constraint(meta, "pattern")
    if pattern in _PATTERN_WORDS:
        return _PATTERN_WORDS[pattern]
    longest = _constraint(meta, "max_length")
    if pattern is not None:
        return f"a string matching {pattern}" + ("" if longest is None else f" of at most {longest:,} characters")
    printable = next((m for m in meta if isinstance(m, Printable)), None)
    text = "a string" if printable is None else printable.words(detail=False)
    if _constraint(meta, "min_length") == 1:
        text = "a non-empty string" if printable is None else "non-empty " + text
    text = text if longest is None else f"{text} of at most {longest:,} characters"
    size = next((m for m in meta if isinstance(m, MaxBytes)), None)
    if size is not None:
        text += f", at most {size.limit:,} bytes of UTF-8"
    return text


def _plural(tp: Any) -> str:
    tp, meta, _ = _unwrap(tp, [])
    members = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else ()
    if members and all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
        words = [article(noun(m)) for m in members]
        return "mappings, each describing " + ", ".join(words[:-1]) + " or " + words[-1]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        word = noun(tp)
        if word.endswith("series"):
            return word
        return word + "es" if word.endswith("s") else word + "s"
    return "ids" if _constraint(meta, "pattern") == ID_PATTERN else "strings"
