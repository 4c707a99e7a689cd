"""Shared pydantic configuration, exact quantities (money, power) and the strict value types of the domain models.

Numbers are strict: a boolean is not a number, a string is not a count, and no number is infinite or NaN. Text is
printable: no control characters and no characters that reorder or hide text (see :func:`text_problem`). Dates lie
in 1970–2200. Every bound is a constant in :mod:`stargate.domain.limits`.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    StringConstraints,
)
from pydantic_core import core_schema

from stargate.domain.limits import (
    MAX_DATE,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_USD,
    MAX_USD_PER_GPU_HOUR,
    MIN_DATE,
)


@dataclass(frozen=True, slots=True)
class Unit:
    """Field metadata: the unit of a number, shown in messages (e.g. 'GPUs', 'MW')."""

    symbol: str


# -- text -------------------------------------------------------------------------------------------------------
HIDDEN_CHARACTERS = frozenset(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0x200B, 0xFEFF, 0x2028, 0x2029]
)
"""Refused in every text: bidirectional embeddings, overrides, isolates and marks (they make text display other
than it reads), zero-width space and byte-order mark (invisible), line and paragraph separators. Zero-width joiner
and non-joiner (U+200D, U+200C) are allowed: scripts such as Persian and Hindi and emoji sequences need them."""


def visible(value: object) -> str:
    """``value`` as text with every control, hidden, bidirectional and other non-printable character but the space
    shown as a Python escape (``\\x1b``, ``\\u202e``); printable text (any script, emoji) is unchanged. For echoing
    untrusted text in messages and on terminals."""
    text = str(value)
    if text.isprintable():  # the common case, at C speed (HIDDEN_CHARACTERS are all non-printable)
        return text
    return "".join(
        ch if ch == " " or (ch.isprintable() and ord(ch) not in HIDDEN_CHARACTERS) else ascii(ch)[1:-1] for ch in text
    )


def _character_words(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")


def text_problem(value: str, *, multiline: bool = False, controls: bool = False, hidden: bool = False) -> str | None:
    """What makes ``value`` unacceptable text, or None.

    Always refused: NUL and lone surrogates. Refused unless allowed: control characters (``multiline`` allows tab
    and newline, ``controls`` allows all but NUL) and :data:`HIDDEN_CHARACTERS` (``hidden`` allows them).
    """
    if value.isprintable():  # the common case, at C speed: no control, format, separator or surrogate
        return None
    for i, ch in enumerate(value):
        if ch == "\x00":
            return f"a NUL character (U+0000) at character {i + 1}"
        category = unicodedata.category(ch)
        bad = category == "Cs" or (ord(ch) in HIDDEN_CHARACTERS and not hidden)
        if category == "Cc" and not controls:
            bad = bad or not (multiline and ch in "\t\n\r")
        if bad:
            return f"the character {_character_words(ch)} at character {i + 1}"
    return None


@dataclass(frozen=True, slots=True)
class Printable:
    """Field metadata that refuses control and hidden characters (see :func:`text_problem`)."""

    multiline: bool = False
    """Tab and newline are allowed (free text such as a description)."""
    controls: bool = False
    """Every control character but NUL is allowed (a shell command: what the shell accepts)."""
    hidden: bool = False
    """Hidden and bidirectional characters are allowed (data nobody reads on screen, e.g. an environment value)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The wrapped schema followed by the check."""
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: str) -> str:
        """``value`` unchanged, or ValueError naming the offending character."""
        problem = text_problem(value, multiline=self.multiline, controls=self.controls, hidden=self.hidden)
        if problem is not None:
            raise ValueError(f"found {problem}, expected {self.words()}")
        return value

    def words(self, detail: bool = True) -> str:
        """What the field accepts, in words (with ``detail``, what is refused)."""
        if self.controls and self.hidden:
            return "text without NUL characters"
        if self.controls:
            return "text without NUL or bidirectional-override characters"
        if self.multiline:
            short = "printable text"
            return (
                f"{short} (tab and newline allowed; no other control or bidirectional-override characters)"
                if detail
                else short
            )
        short = "printable text on one line"
        return f"{short} (no control or bidirectional-override characters)" if detail else short


@dataclass(frozen=True, slots=True)
class MaxBytes:
    """Field metadata: at most ``limit`` bytes once encoded as UTF-8 (what the operating system counts)."""

    limit: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The wrapped schema followed by the size check."""
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: str) -> str:
        """``value`` unchanged when it is small enough."""
        if len(value) * 4 > self.limit:  # a character is at most 4 bytes: only long text needs encoding
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > self.limit:
                raise ValueError(f"found {size:,} bytes, expected at most {self.limit:,} bytes of UTF-8")
        return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS), Printable()]
"""A non-empty one-line display name or label, at most 200 characters."""

OptionalText = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), Printable(multiline=True)]
"""Free text (a description, a citation), possibly empty, at most 10,000 characters; newlines allowed."""


# -- dates ------------------------------------------------------------------------------------------------------
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""A calendar date as ISO 8601 writes it: YYYY-MM-DD."""


@dataclass(frozen=True, slots=True)
class DateRange:
    """Field metadata for dates and date-times: text or a date only (never a number), between 1970 and 2200."""

    first: date = MIN_DATE
    last: date = MAX_DATE
    day_only: bool = False
    """Only a calendar date written ``YYYY-MM-DD`` (pydantic alone would take ``2025-01-01T00:00:00Z`` as a date)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The wrapped schema, with a number refused before it and the range checked after it."""
        inner = core_schema.no_info_after_validator_function(self.check, handler(source))
        return core_schema.no_info_before_validator_function(self.not_a_number, inner)

    def words(self) -> str:
        """The range in words."""
        return f"from {self.first.isoformat()} to {self.last.isoformat()}"

    def not_a_number(self, value: Any) -> Any:
        """``value`` unchanged unless it is a number or a boolean (a date is written as text)."""
        if isinstance(value, bool | int | float | Decimal):
            raise ValueError(f"found the number {value!r}, expected an ISO 8601 date {self.words()}")
        if self.day_only and (
            isinstance(value, datetime) or (isinstance(value, str) and not _DAY.fullmatch(value.strip()))
        ):
            raise ValueError(f"found {str(value)!r}, expected a date written YYYY-MM-DD {self.words()}")
        return value

    def check(self, value: date) -> date:
        """``value`` unchanged when inside the range."""
        day = value.astimezone(UTC).date() if isinstance(value, datetime) and value.tzinfo else value
        if isinstance(day, datetime):
            day = day.date()
        if not self.first <= day <= self.last:
            raise ValueError(f"found {value.isoformat()}, expected a date {self.words()}")
        return value


Day = Annotated[date, DateRange(day_only=True)]
"""A calendar date (ISO 8601 text) from 1970-01-01 to 2200-12-31."""

Instant = Annotated[datetime, DateRange()]
"""A date-time (ISO 8601 text) from 1970-01-01 to 2200-12-31."""


# -- numbers ----------------------------------------------------------------------------------------------------
Count = Annotated[int, Strict()]
"""An integer (never a boolean, a float or a string)."""

GpuCount = Annotated[int, Strict(), Unit("GPUs")]
"""A number of GPUs."""

Real = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number (an integer or a float; never a boolean or a string)."""

Megawatts = Annotated[float, Strict(), AllowInfNan(False), Unit("MW")]
"""A finite power, MW."""

Seconds = Annotated[float, Strict(), AllowInfNan(False), Unit("s")]
"""A finite duration, s."""

Flag = Annotated[bool, Strict()]
"""true or false (never a number or a string)."""

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _plain_decimal(value: Any) -> Any:
    """Refuse what ``Decimal`` would read but nobody means as money: booleans, and text that is not a decimal
    number (``1_0``, `` 5``, ``Infinity``); ``2.5e13`` is a number."""
    if isinstance(value, bool):
        raise ValueError(f"found {value}, expected a number")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise ValueError(f"found {value[:40]!r}, expected a decimal number (e.g. 10.5)")
    return value


USD = Annotated[
    Decimal, BeforeValidator(_plain_decimal), Field(ge=0, le=MAX_USD, max_digits=21, decimal_places=6), Unit("USD")
]
"""An exact, non-negative amount of US dollars (never a float), at most 10^14 with at most 6 decimal places."""

USDPerGpuHour = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    Field(ge=0, le=MAX_USD_PER_GPU_HOUR, max_digits=12, decimal_places=6),
    Unit("USD per GPU-hour"),
]
"""An exact price in US dollars per GPU-hour, at most 100,000 with at most 6 decimal places."""


class Model(BaseModel):
    """Base of every domain model: immutable, strict about unknown fields, documented field by field."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
        validate_default=True,
        use_attribute_docstrings=False,
    )
