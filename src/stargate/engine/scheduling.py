"""The policy a fleet is scheduled with: its ``scheduling:`` section, optionally overridden by ``--policy/--set``.

One rule for both clocks: ``stargate up`` and ``stargate simulate`` build their policy with :func:`policy_for`.

- ``--policy P`` replaces the section's policy; when ``P`` is another policy than the section's, the section's
  settings are dropped (they were chosen for the other policy);
- ``--set KEY=VALUE`` overrides one setting, keeping the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from stargate.domain import Problem, Scheduling
from stargate.domain.base import visible
from stargate.engine.policies import POLICIES, SETTING_RULES, Policy, get_policy

Setting = bool | int | float | str | None
"""A setting's value as written: 'inf' stands for no limit."""


@dataclass(frozen=True, slots=True)
class Override:
    """What ``--policy/--set`` say on top of the fleet's section (nothing by default)."""

    policy: str | None = None
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.policy is not None or bool(self.settings)

    def describe(self) -> str:
        """The override as the command line says it, e.g. ``--policy srtf --set runtime_weight=2``."""
        parts = [f"--policy {self.policy}"] if self.policy is not None else []
        parts += [f"--set {k}={_word(v)}" for k, v in sorted(self.settings.items())]
        return " ".join(parts)


def effective(section: Scheduling, override: Override | None = None) -> tuple[str, dict[str, Setting]]:
    """The policy name and settings after applying ``override`` to ``section`` (see the module docstring)."""
    name, settings = section.policy, dict[str, Setting](section.settings)
    if override is not None:
        if override.policy is not None and override.policy != name:
            name, settings = override.policy, {}
        settings.update(override.settings)
    return name, settings


def policy_for(section: Scheduling, override: Override | None = None) -> Policy:
    """The engine's policy for ``section`` with ``override``; ValueError naming the first bad setting."""
    name, settings = effective(section, override)
    return get_policy(name, **{k: _value(v) for k, v in settings.items()})


def policy_in_force(section: Scheduling, override: Override) -> tuple[Policy, str | None]:
    """The policy of ``section`` under ``override``; when they do not fit (a fleet applied through another server
    started with other options), the section's own policy and why the override was set aside."""
    try:
        return policy_for(section, override), None
    except ValueError as exc:
        why = f"this server's options {override.describe()} do not fit the fleet's scheduling section ({exc})"
        return policy_for(section), f"{why}; deciding with the fleet's section alone"


def problems(section: Scheduling, override: Override | None = None) -> list[Problem]:
    """Every problem of ``section`` (with ``override``), located under ``scheduling`` (empty when it is good)."""
    name, settings = effective(section, override)
    if name not in POLICIES:
        return [Problem(("scheduling", "policy"), f"'{name}'", f"one of {', '.join(sorted(POLICIES))}")]
    known = set(POLICIES[name].__dataclass_fields__) - {"name"}
    found: list[Problem] = []
    for key, raw in settings.items():
        where = ("scheduling", "settings", key)
        if key not in known:
            found.append(
                Problem(where, f"'{visible(key)}'", f"a setting of policy '{name}' ({', '.join(sorted(known))})")
            )
            continue
        problem = SETTING_RULES[key].check(_value(raw)) if key in SETTING_RULES else None
        if problem is not None:
            found_part, _, expected = problem.removeprefix("found ").partition("; expected ")
            found.append(Problem(where, found_part, expected))
    return found


def settings_of(policy: Policy) -> dict[str, Setting]:
    """Every setting of ``policy`` by name, infinite numbers as 'inf' (strict JSON has no infinity)."""
    out: dict[str, Setting] = {}
    for name in policy.__dataclass_fields__:
        if name != "name":
            value = getattr(policy, name)
            out[name] = "inf" if isinstance(value, float) and math.isinf(value) else value
    return out


def _value(raw: Setting) -> Setting:
    return math.inf if raw == "inf" else raw


def _word(value: Setting) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
