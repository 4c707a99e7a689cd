"""Demand of a plan scenario as GPUs per month: growth curves, points, PFLOP-days and fits to history."""

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stargate.domain.catalog import BUILTIN_GPU_MODELS
from stargate.domain.planning import PlanScenario
from stargate.engine.plan_demand import demand_lines, fit_exponential, month_hours, month_index, month_starts

CATALOGUE = {m.name: m for m in BUILTIN_GPU_MODELS}


def _scenario(*series: dict[str, object], start: str = "2025-01", months: int = 12) -> PlanScenario:
    return PlanScenario.model_validate({"name": "t", "start": start, "months": months, "demand": list(series)})


def _lines(scenario: PlanScenario, history: dict[str, list[tuple[date, float]]] | None = None) -> list[list[float]]:
    months = month_starts(scenario.start, scenario.months)
    return [list(line.gpus) for line in demand_lines(scenario, CATALOGUE, months, history or {})]


def test_month_starts_cross_the_year_and_hours_count_days() -> None:
    months = month_starts(date(2024, 11, 15), 4)
    assert months == (date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1))
    assert month_hours(months) == (720.0, 744.0, 744.0, 672.0)
    assert month_hours(month_starts(date(2024, 2, 1), 1)) == (696.0,)  # leap year
    assert month_index(date(2025, 1, 1), date(2026, 3, 31)) == 14
    assert month_index(date(2025, 1, 1), date(2024, 12, 1)) == -1


def test_growth_compounds_monthly_and_stops_at_its_cap() -> None:
    s = _scenario(
        {"id": "a", "kind": "training", "gpu_model": "GB200", "growth": {"start_value": 100, "monthly_growth": 0.5}},
        {
            "id": "b",
            "kind": "inference",
            "gpu_model": "GB200",
            "growth": {"start_value": 100, "monthly_growth": 0.5, "max_value": 300},
        },
        months=5,
    )
    a, b = _lines(s)
    assert a == pytest.approx([100, 150, 225, 337.5, 506.25])
    assert b == pytest.approx([100, 150, 225, 300, 300])


def test_points_interpolate_linearly_and_hold_flat_outside() -> None:
    s = _scenario(
        {
            "id": "p",
            "kind": "training",
            "gpu_model": "H100-SXM",
            "points": [{"month": "2025-03", "value": 100}, {"month": "2025-07", "value": 500}],
        },
        months=10,
    )
    (line,) = _lines(s)
    assert line == pytest.approx([100, 100, 100, 200, 300, 400, 500, 500, 500, 500])


def test_pflop_days_become_gpus_by_hand() -> None:
    """GB200: 2,500 TFLOP/s. 1,000 PFLOP-days in January (31 days) at 50 % use: 1,000 × 1,000 ÷ (2,500 × 31 × 0.5)
    = 25.806 GPUs; in February 2025 (28 days): 28.571 GPUs."""
    s = _scenario(
        {
            "id": "f",
            "kind": "training",
            "gpu_model": "GB200",
            "unit": "pflop_days",
            "utilization": 0.5,
            "growth": {"start_value": 1000, "monthly_growth": 0},
        },
        months=2,
    )
    (line,) = _lines(s)
    assert line == pytest.approx([1_000_000 / (2500 * 31 * 0.5), 1_000_000 / (2500 * 28 * 0.5)])


def test_fit_recovers_a_known_exponential_and_extends_it_over_the_horizon() -> None:
    history = [(m, 200 * 1.1**i) for i, m in enumerate(month_starts(date(2024, 1, 1), 12))]
    s = _scenario({"id": "h", "kind": "inference", "gpu_model": "GB200", "fit": {"scale": 2}}, months=3)
    (line,) = _lines(s, {"h": history})
    # 2025-01 is 12 months after the first history month
    assert line == pytest.approx([2 * 200 * 1.1**12, 2 * 200 * 1.1**13, 2 * 200 * 1.1**14], rel=1e-9)


def test_fit_drops_zero_months_and_refuses_too_little_history() -> None:
    assert fit_exponential([0, 10, 0, 40]) == pytest.approx((5.0, 1.0))
    with pytest.raises(ValueError, match="found 1 month with use in the history, expected at least 2"):
        fit_exponential([0, 3, 0])
    with pytest.raises(ValueError, match="expected GPUs"):
        fit_exponential([1, -2, 3])
    s = _scenario({"id": "h", "kind": "inference", "gpu_model": "GB200", "fit": {}}, months=3)
    with pytest.raises(ValueError, match="no history for the demand series 'h'"):
        _lines(s, {})


@given(
    start=st.floats(min_value=1e-3, max_value=1e6),
    growth=st.floats(min_value=-0.3, max_value=0.5),
    n=st.integers(min_value=2, max_value=60),
)
def test_fit_is_exact_on_exact_exponentials(start: float, growth: float, n: int) -> None:
    a, g = fit_exponential([start * (1 + growth) ** t for t in range(n)])
    assert a == pytest.approx(start, rel=1e-6)
    assert g == pytest.approx(growth, rel=1e-6, abs=1e-9)


@given(
    values=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=5),
    months=st.integers(min_value=1, max_value=30),
)
def test_points_stay_within_the_range_of_their_values(values: list[float], months: int) -> None:
    points = [{"month": f"2025-{i * 2 + 1:02d}", "value": v} for i, v in enumerate(values)]
    s = _scenario({"id": "p", "kind": "training", "gpu_model": "GB200", "points": points}, months=months)
    (line,) = _lines(s)
    assert len(line) == months
    assert all(min(values) - 1e-6 <= x <= max(values) + 1e-6 and math.isfinite(x) for x in line)
