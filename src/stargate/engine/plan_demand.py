"""Demand of a plan scenario in GPUs per month: growth curves, known points and fits to history.

Pure: no I/O, no clock. Month index 0 is the scenario's ``start``; a month's hours are its days × 24.

- growth: ``start_value × (1 + monthly_growth)^t``, capped by ``max_value``;
- points: linear interpolation between points (by month index), held flat before the first and after the last;
- fit: an exponential fitted by least squares on the logarithm of the monthly GPU averages of history (months with
  no use dropped), evaluated at the horizon's months (t counted from the first history month) and × ``scale``.

A series in ``pflop_days`` becomes GPUs of its model: value × 1,000 ÷ (BF16 TFLOP/s × days in the month ×
utilization).
"""

import calendar
import math
from collections.abc import Mapping, Sequence
from datetime import date
from itertools import pairwise

from stargate.domain.catalog import GpuModel
from stargate.domain.planning import DemandSeries, DemandUnit, PlanScenario
from stargate.engine.plan_types import DemandLine


def month_starts(start: date, n: int) -> tuple[date, ...]:
    """The first days of ``n`` consecutive months from ``start``'s month."""
    first = start.year * 12 + start.month - 1
    return tuple(date((first + i) // 12, (first + i) % 12 + 1, 1) for i in range(n))


def month_index(start: date, day: date) -> int:
    """The index of ``day``'s month counted from ``start``'s month (negative before it)."""
    return (day.year - start.year) * 12 + day.month - start.month


def month_days(month: date) -> int:
    """Days in ``month``'s month."""
    return calendar.monthrange(month.year, month.month)[1]


def month_hours(months: Sequence[date]) -> tuple[float, ...]:
    """Hours in each month: its days × 24."""
    return tuple(float(month_days(m) * 24) for m in months)


def fit_exponential(values: Sequence[float]) -> tuple[float, float]:
    """Fit ``a × (1 + g)^t`` to ``values`` (t = 0, 1, ...) by least squares on the logarithm; zeros are dropped.

    Returns ``(a, g)``: the fitted value at t = 0 and the monthly growth as a fraction. Raises ``ValueError`` with
    fewer than two months above zero, or with a negative value.
    """
    points: list[tuple[float, float]] = []
    for t, value in enumerate(values):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"found {value!r} in month {t} of the history, expected GPUs ≥ 0")
        if value > 0:
            points.append((float(t), math.log(value)))
    if len(points) < 2:
        raise ValueError(
            f"found {len(points)} month{'s' if len(points) != 1 else ''} with use in the history, expected at least "
            "2 to fit a growth curve"
        )
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    sxy = sum((t - mean_t) * (y - mean_y) for t, y in points)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_t
    return math.exp(intercept), math.expm1(slope)


def _growth(series: DemandSeries, n: int) -> list[float]:
    curve = series.growth
    assert curve is not None
    out: list[float] = []
    for t in range(n):
        try:
            value = curve.start_value * (1.0 + curve.monthly_growth) ** t
        except OverflowError:
            value = math.inf
        if curve.max_value is not None:
            value = min(value, curve.max_value)
        out.append(value)
    return out


def _points(series: DemandSeries, months: Sequence[date]) -> list[float]:
    points = series.points
    assert points is not None and months
    start = months[0]
    known = [(month_index(start, p.month), p.value) for p in points]
    out: list[float] = []
    for t in range(len(months)):
        if t <= known[0][0]:
            out.append(known[0][1])
        elif t >= known[-1][0]:
            out.append(known[-1][1])
        else:
            for (t0, v0), (t1, v1) in pairwise(known):
                if t0 <= t <= t1:
                    out.append(v0 + (v1 - v0) * (t - t0) / (t1 - t0))
                    break
    return out


def _fit(series: DemandSeries, months: Sequence[date], history: Sequence[tuple[date, float]]) -> list[float]:
    fit = series.fit
    assert fit is not None and months
    ordered = sorted(history)
    if not ordered:
        raise ValueError(f"found no history for the demand series {series.id!r}, expected monthly GPU averages")
    first = ordered[0][0]
    span = month_index(first, ordered[-1][0]) + 1
    values = [0.0] * span
    for month, gpus in ordered:
        values[month_index(first, month)] += gpus
    try:
        a, g = fit_exponential(values)
    except ValueError as error:
        raise ValueError(f"demand series {series.id!r}: {error}") from None
    out: list[float] = []
    for m in months:
        t = month_index(first, m)
        try:
            out.append(a * (1.0 + g) ** t * fit.scale)
        except OverflowError:
            out.append(math.inf)
    return out


def series_values(
    series: DemandSeries, months: Sequence[date], history: Sequence[tuple[date, float]] = ()
) -> list[float]:
    """The series' values in its own unit for each month of the horizon."""
    if series.growth is not None:
        return _growth(series, len(months))
    if series.points is not None:
        return _points(series, months)
    return _fit(series, months, history)


def to_gpus(value: float, model: GpuModel, month: date, utilization: float) -> float:
    """PFLOP-days in ``month`` as GPUs of ``model`` busy through it: value × 1,000 ÷ (TFLOP/s × days × use)."""
    return value * 1000.0 / (model.bf16_dense_tflops * month_days(month) * utilization)


def demand_line(
    series: DemandSeries,
    catalogue: Mapping[str, GpuModel],
    months: Sequence[date],
    history: Sequence[tuple[date, float]] = (),
) -> DemandLine:
    """One series as GPUs of its model per month. Raises ``ValueError`` for an unknown model or a fit without
    enough history."""
    if not months:
        return DemandLine(id=series.id, kind=str(series.kind), gpu_model=series.gpu_model, gpus=())
    values = series_values(series, months, history)
    if series.unit is DemandUnit.PFLOP_DAYS:
        model = catalogue.get(series.gpu_model)
        if model is None:
            raise ValueError(
                f"demand series {series.id!r}: found the GPU model {series.gpu_model!r}, expected one of "
                f"the catalogue ({', '.join(sorted(catalogue))})"
            )
        values = [to_gpus(v, model, m, series.utilization) for v, m in zip(values, months, strict=True)]
    return DemandLine(id=series.id, kind=str(series.kind), gpu_model=series.gpu_model, gpus=tuple(values))


def demand_lines(
    scenario: PlanScenario,
    catalogue: Mapping[str, GpuModel],
    months: Sequence[date],
    history: Mapping[str, Sequence[tuple[date, float]]],
) -> tuple[DemandLine, ...]:
    """Every demand series of ``scenario`` as GPUs per month over ``months``.

    ``history`` maps a ``fit`` series' id to its monthly GPU averages ``(first day of month, GPUs)``.
    """
    return tuple(demand_line(s, catalogue, months, history.get(s.id, ())) for s in scenario.demand)
