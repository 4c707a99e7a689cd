"""The client's calls for capacity plans (a base of :class:`stargate.client.StargateClient`, which gives it
``_call``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote

PLAN_TIMEOUT_S = 600.0
"""How long the client waits for a plan to be computed, s (1,000 Monte Carlo scenarios and the LP of a large
scenario take minutes on a small server)."""


class PlansApi:
    """``/api/v1/plans``."""

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # StargateClient's

    def submit_plan(self, scenario_yaml: str, scenarios: int = 0, seed: int = 0) -> dict[str, Any]:
        """``POST /api/v1/plans``: compute a plan of the scenario (its YAML text) against the server's fleet; the
        stored plan with its result."""
        body = {"scenario_yaml": scenario_yaml, "scenarios": scenarios, "seed": seed}
        return cast(dict[str, Any], self._call("POST", "/api/v1/plans", json=body, timeout=PLAN_TIMEOUT_S))

    def plans(self, limit: int | None = None) -> list[dict[str, Any]]:
        """``GET /api/v1/plans``: stored plans, newest first (summaries)."""
        params = {} if limit is None else {"limit": limit}
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/plans", params=params))

    def plan(self, plan_id: str) -> dict[str, Any]:
        """``GET /api/v1/plans/{id}``: one stored plan, whole."""
        return cast(dict[str, Any], self._call("GET", f"/api/v1/plans/{quote(plan_id, safe='')}"))

    def apply_plan(self, plan_id: str, actions: Sequence[int] | None = None) -> dict[str, Any]:
        """``POST /api/v1/plans/{id}/apply``: raise a capacity request per 'sign' action (or per selected action)
        (admin)."""
        body = {"actions": None if actions is None else list(actions)}
        return cast(dict[str, Any], self._call("POST", f"/api/v1/plans/{quote(plan_id, safe='')}/apply", json=body))
