"""The pressure trigger: sustained waiting GPUs per model raise a capacity request, rounded to blocks, after the
sustain time, never while one is open nor within the cooldown; pressure that drops starts over."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_procurement_fixtures import book_with, make_fleet, quote

from stargate.domain import GpuModel, PressureSettings
from stargate.engine import PressureGauge, ProcurementError

T = datetime(2025, 5, 1, 6, tzinfo=UTC)
H = timedelta(hours=1)
SETTINGS = PressureSettings(
    min_waiting_gpus=10_000, min_wait_hours=24, sustain_hours=72, block_gpus=10_000, term_days=365,
    lead_time_days=30, cooldown_days=30,
)  # fmt: skip


def test_pressure_below_the_threshold_raises_nothing() -> None:
    gauge = PressureGauge(SETTINGS)
    for h in range(0, 500, 10):
        assert gauge.observe(T + h * H, {"GB200": 9_999}, set()) == []
    assert gauge.began == {}


def test_sustained_pressure_raises_one_request_rounded_up_to_blocks() -> None:
    gauge = PressureGauge(SETTINGS)
    assert gauge.observe(T, {"GB200": 12_345}, set()) == []
    assert gauge.began == {"GB200": T}
    assert gauge.observe(T + 71 * H, {"GB200": 12_345}, set()) == []
    [req] = gauge.observe(T + 72 * H, {"GB200": 15_001, "H100-SXM": 3}, set())
    assert (req.gpu_model, req.gpus, req.term_days, req.raised_by) == ("GB200", 20_000, 365, "pressure")
    assert req.start == date(2025, 5, 4) + timedelta(days=30) and req.at == T + 72 * H
    assert "15,001 GB200 GPUs" in req.reason and gauge.min_wait_s == 24 * 3600


def test_a_dip_below_the_threshold_starts_the_sustain_time_over() -> None:
    gauge = PressureGauge(SETTINGS)
    gauge.observe(T, {"GB200": 10_000}, set())
    gauge.observe(T + 50 * H, {"GB200": 100}, set())
    gauge.observe(T + 51 * H, {"GB200": 10_000}, set())
    assert gauge.observe(T + 100 * H, {"GB200": 10_000}, set()) == []  # 49 h since it came back
    assert len(gauge.observe(T + 123 * H, {"GB200": 10_000}, set())) == 1


def test_no_request_while_one_is_open_or_within_the_cooldown() -> None:
    gauge = PressureGauge(SETTINGS)
    gauge.observe(T, {"GB200": 10_000}, set())
    assert gauge.observe(T + 80 * H, {"GB200": 10_000}, {"GB200"}) == []  # open: waits
    first = gauge.observe(T + 81 * H, {"GB200": 10_000}, set())
    assert len(first) == 1
    later = T + 81 * H + timedelta(days=30)
    assert gauge.observe(later - H, {"GB200": 10_000}, set()) == []  # cooldown
    assert len(gauge.observe(later, {"GB200": 10_000}, set())) == 1


def test_any_model_demand_counts_only_towards_the_named_model() -> None:
    assert PressureGauge(SETTINGS).observe(T, {"*": 50_000}, set()) == []
    gauge = PressureGauge(SETTINGS, any_gpu_model="GB200")
    gauge.observe(T, {"*": 6_000, "GB200": 4_000}, set())
    [req] = gauge.observe(T + 72 * H, {"*": 6_000, "GB200": 4_000}, set())
    assert req.gpus == 10_000


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ProcurementError, match=r"observe\.now"):
        PressureGauge(SETTINGS).observe(datetime(2025, 5, 1), {}, set())


def test_restored_state_keeps_the_sustain_and_cooldown() -> None:
    gauge = PressureGauge(SETTINGS, began={"GB200": T}, last_raised={"H100-SXM": T})
    assert len(gauge.observe(T + 72 * H, {"GB200": 10_000, "H100-SXM": 10_000}, set())) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 48), st.integers(0, 40_000), st.integers(0, 40_000), st.booleans()), max_size=60)
)
def test_requests_are_valid_for_the_book_and_respect_cooldown(steps: list[tuple[int, int, int, bool]]) -> None:
    """Every raised request is accepted by a ProcurementBook (ids unique and valid) and asks for whole blocks at
    least the waiting GPUs; two requests for one model are at least the cooldown apart."""
    gauge = PressureGauge(SETTINGS.model_copy(update={"sustain_hours": 12.0, "cooldown_days": 2}))
    book = book_with(make_fleet(rule=None), quote("g", "oci", "9"), quote("h", "oci", "5", model="H100-SXM"))
    now = T
    raised: dict[str, list[datetime]] = {}
    for gap, gb200, h100, _ in steps:
        now += gap * H
        waiting = {"GB200": gb200, "H100-SXM": h100}
        for req in gauge.observe(now, waiting, book.open_models()):
            book.raise_request(req)
            assert req.gpus % 10_000 == 0 and req.gpus >= waiting[req.gpu_model] >= 10_000
            raised.setdefault(req.gpu_model, []).append(req.at)
    assert sum(map(len, raised.values())) == len(book.awards)  # awarded at once, so never open
    for times in raised.values():
        assert all(b - a >= timedelta(days=2) for a, b in pairwise(times))


def test_a_long_custom_model_name_still_gives_an_id_the_book_accepts() -> None:
    long = "X" * 32
    fleet = make_fleet(rule=None)
    fleet = fleet.model_copy(update={"gpu_models": [GpuModel(name=long, bf16_dense_tflops=1, hbm_gib=1, tdp_w=1)]})
    gauge = PressureGauge(SETTINGS.model_copy(update={"sustain_hours": 0.0}))
    [req] = gauge.observe(T, {long: 10_000}, set())
    assert len(req.id) <= 24 and req.id.startswith("p20250501060000")
    book_with(fleet).raise_request(req)
