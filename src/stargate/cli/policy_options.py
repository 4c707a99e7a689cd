"""The policy options of ``stargate simulate`` and ``stargate up``: ``--policy`` and ``--set KEY=VALUE`` (and the
flags of ``simulate`` that set one setting each), and their problems on top of a fleet's ``scheduling:`` section.

A setting is given at most once: two ``--set`` of one key, or a flag and a ``--set`` of its key, are refused naming
both. Each problem names the option as it was typed and echoes the value as typed (``--set runtime_weight=1e999``
says ``found 1e999``, not ``inf``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stargate.cli.text import visible
from stargate.domain import Scheduling
from stargate.engine import POLICIES, Override
from stargate.engine import scheduling as engine_scheduling
from stargate.engine.policies import SETTING_RULES
from stargate.engine.scheduling import Setting

VALUE_WORDS = "a number, true, false, inf or none"
"""What a ``--set`` value may be, in words (``null`` is taken as ``none``)."""

_INT_SETTINGS = frozenset(key for key, rule in SETTING_RULES.items() if rule.kind == "int")
_WHOLE = re.compile(r"[-+]?[0-9]+")
_MAX_ECHO = 60


@dataclass(frozen=True, slots=True)
class Given:
    """One setting given on the command line: its value, the option as typed and the value as typed."""

    value: Setting
    option: str
    """E.g. ``--set burst_after_s=3600`` or ``--burst-after 2h``."""
    text: str
    """The value as typed, e.g. ``3600`` or ``2h``."""


def echo(text: str) -> str:
    """What the user typed, for a message: non-printable characters escaped, very long text shortened."""
    shown = visible(text)
    return shown if len(shown) <= _MAX_ECHO else shown[: _MAX_ECHO - 1] + "…"


def parse_value(key: str, raw: str) -> Setting:
    """A ``--set`` value: true/false, none/null (None), or a number (an integer for a count setting when it is
    whole; 'inf' and '1e999' are infinite). ValueError when it is none of these."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if key in _INT_SETTINGS and _WHOLE.fullmatch(low):
        try:
            return int(low)  # exact, whatever its size
        except ValueError:  # more digits than Python converts: as a float (infinite), refused by its range
            pass
    number = float(low)  # ValueError when it is not a number
    return int(number) if key in _INT_SETTINGS and number.is_integer() else number


def parse_settings(items: Sequence[str]) -> dict[str, Given]:
    """``--set KEY=VALUE`` options by key. ValueError (a whole message) when one is malformed or a key is given
    twice."""
    out: dict[str, Given] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set: found '{echo(item)}'; expected KEY=VALUE")
        try:
            value = parse_value(key, raw)
        except ValueError:
            raise ValueError(
                f"--set: found '{echo(item)}'; expected KEY=VALUE with {VALUE_WORDS} as the value"
            ) from None
        add(out, key, Given(value, f"--set {echo(item)}", echo(raw.strip())))
    return out


def add(given: dict[str, Given], key: str, new: Given) -> None:
    """Add ``new`` as ``key``'s setting; ValueError naming both options when ``key`` is already given."""
    if key in given:
        raise ValueError(f"{given[key].option} and {new.option} both set {echo(key)}; give each setting once")
    given[key] = new


def override(policy: str | None, given: dict[str, Given]) -> Override:
    """The options as the engine's override of a fleet's scheduling section."""
    return Override(policy, {key: g.value for key, g in given.items()})


def problems(section: Scheduling, policy: str | None, given: dict[str, Given]) -> list[str]:
    """Each problem of the options on top of ``section`` as one line, ``OPTION: PATH: found X, expected Y`` (the
    value as typed for a setting the policy has); empty when they make a valid policy."""
    ovr = override(policy, given)
    name, _ = engine_scheduling.effective(section, ovr)
    known = set(POLICIES[name].__dataclass_fields__) if name in POLICIES else set()
    lines = []
    for problem in engine_scheduling.problems(section, ovr):
        key = problem.path[2] if len(problem.path) == 3 and problem.path[:2] == ("scheduling", "settings") else None
        option = given.get(str(key)) if key is not None else None
        where = f"{problem.dotted()}: found"
        if option is None:  # the policy's name (checked before) or the section's own setting (checked alone)
            lines.append(
                f"{f'--policy {echo(policy)}: ' if policy is not None else ''}{where} {problem.found}, "
                f"expected {problem.expected}"
            )
        else:
            found = option.text if key in known else problem.found
            lines.append(f"{option.option}: {where} {found}, expected {problem.expected}")
    return lines
