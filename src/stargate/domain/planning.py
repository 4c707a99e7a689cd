"""A capacity-planning scenario: the horizon, the demand to meet, the options to meet it with, and the risks.

Supply comes from the fleet as it is (clusters, buildings, contracts, the price book); a scenario adds what the
fleet does not know: demand curves, market options beyond the price book, buildings that could be started, the
penalty for unmet demand and the risk distributions. The rules that use it are in :mod:`stargate.engine.planning`.
"""

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from stargate.domain.base import USD, Count, GpuCount, Megawatts, Model, Name, OptionalText, Real, Unit, USDPerGpuHour
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_CLUSTER_GPUS, MAX_ENTITIES, MAX_FLEET_GPUS, MAX_POWER_MW, MAX_SMALL_LIST

MAX_PLAN_MONTHS = 240
"""The longest planning horizon, months (20 years)."""
MAX_PLAN_SCENARIOS = 100_000
"""The most Monte Carlo scenarios of one plan."""
MAX_DEMAND = 1e12
"""The largest demand value of a curve (GPUs or PFLOP-days per month)."""

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def _month(value: Any) -> Any:
    """``YYYY-MM`` text as the first day of that month; anything else is refused with what was expected."""
    if isinstance(value, date):
        return value.replace(day=1)
    if not isinstance(value, str):
        raise ValueError(f"found {value!r}, expected a month written YYYY-MM (e.g. 2025-01)")
    found = _MONTH.fullmatch(value.strip())
    if found is None:
        raise ValueError(f"found {value[:40]!r}, expected a month written YYYY-MM (e.g. 2025-01)")
    first = date(int(found.group(1)), int(found.group(2)), 1)
    if not date(1970, 1, 1) <= first <= date(2200, 12, 1):
        raise ValueError(f"found {value!r}, expected a month from 1970-01 to 2200-12")
    return first


Month = Annotated[date, BeforeValidator(_month)]
"""A calendar month written ``YYYY-MM``, held as its first day."""

Months = Annotated[Count, Unit("months")]
"""A number of months."""


class DemandKind(StrEnum):
    """What the demand is for; the plan reports each kind's share of demand and shortfall."""

    TRAINING = "training"
    INFERENCE = "inference"


class DemandUnit(StrEnum):
    """The unit a demand curve is written in.

    - ``gpus``: GPUs of the series' model busy through the month.
    - ``pflop_days``: BF16 dense PFLOP-days per month, turned into GPUs of the series' model through the catalogue:
      GPUs = PFLOP-days × 1,000 ÷ (BF16 TFLOP/s × days in the month × utilization).
    """

    GPUS = "gpus"
    PFLOP_DAYS = "pflop_days"


class GrowthCurve(Model):
    """Demand that starts at a value and grows by a fixed fraction every month: value × (1 + rate)^months."""

    start_value: Real = Field(ge=0, le=MAX_DEMAND, description="Demand in the horizon's first month, in the unit.")
    monthly_growth: Real = Field(
        ge=-0.5, le=2.0, description="Growth per month as a fraction, -0.5 to 2 (0.05 = 5 % a month)."
    )
    max_value: Real | None = Field(
        default=None, gt=0, le=MAX_DEMAND, description="Demand never grows past this, in the unit; null: no cap."
    )


class DemandPoint(Model):
    """One known demand value; between points demand is interpolated linearly, after the last it holds."""

    month: Month = Field(description="The month (YYYY-MM).")
    value: Real = Field(ge=0, le=MAX_DEMAND, description="Demand that month, in the series' unit.")


class HistoryFit(Model):
    """Demand fitted to history: monthly GPU-hours of a trace (or the server's ledger), fitted with an exponential
    curve by least squares on the logarithm, scaled and extended over the horizon."""

    trace: str | None = Field(
        default=None,
        max_length=1_000,
        description="Trace file, relative to the scenario file; null: the server's ledger (runs it has recorded).",
    )
    format: Name = Field(default="native", description="Trace format, as `stargate simulate --trace-format` names it.")
    scale: Real = Field(default=1.0, gt=0, le=1e9, description="Fitted GPUs are multiplied by this, 0 to 10^9.")


class DemandSeries(Model):
    """One demand curve for one GPU model: exactly one of ``growth``, ``points`` or ``fit``."""

    id: Id = Field(description="Series id, e.g. 'frontier-training'.")
    kind: DemandKind = Field(description="'training' or 'inference'.")
    gpu_model: Name = Field(description="GPU model that serves it (catalogue name).")
    unit: DemandUnit = Field(default=DemandUnit.GPUS, description="'gpus' or 'pflop_days'.")
    utilization: Real = Field(
        default=1.0, gt=0, le=1, description="Share of BF16 peak a GPU delivers, for 'pflop_days', above 0 to 1."
    )
    growth: GrowthCurve | None = Field(default=None, description="A growth curve.")
    points: list[DemandPoint] | None = Field(
        default=None, min_length=1, max_length=MAX_PLAN_MONTHS * 10, description="Known values by month."
    )
    fit: HistoryFit | None = Field(default=None, description="Fitted to history.")
    source: OptionalText = Field(default="", description="Where the curve comes from, or the assumption it is.")

    @model_validator(mode="after")
    def _one_curve(self) -> "DemandSeries":
        given = [name for name in ("growth", "points", "fit") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"found {', '.join(given) if given else 'none'} of growth, points and fit, expected exactly one"
            )
        if self.points is not None:
            months = [p.month for p in self.points]
            if months != sorted(set(months)):
                raise ValueError("found points out of order or repeated, expected months in increasing order")
        return self


class MarketOption(Model):
    """Capacity the plan may sign with a provider: GPUs of a model at a price, after a lead time, for a term."""

    id: Id = Field(description="Option id, e.g. 'coreweave-gb200'.")
    provider: Id = Field(description="Id of the provider offering it (a fleet provider).")
    gpu_model: Name = Field(description="GPU model offered (catalogue name).")
    price_per_gpu_hour_usd: USDPerGpuHour = Field(description="Price per GPU-hour, paid for the whole term.")
    lead_time_months: Months = Field(
        default=0, ge=0, le=120, description="Months from signing until the capacity starts, 0 to 120."
    )
    min_term_months: Months = Field(
        default=12, ge=1, le=MAX_PLAN_MONTHS, description="Months a signing runs (paid used or not), 1 to 240."
    )
    max_gpus: GpuCount | None = Field(
        default=None,
        gt=0,
        le=MAX_CLUSTER_GPUS,
        description="Most GPUs signed in one month, at most 10,000,000; null: no limit.",
    )
    available_from: Month | None = Field(default=None, description="First month it may be signed; null: always.")
    available_until: Month | None = Field(default=None, description="Last month it may be signed; null: always.")
    source: OptionalText = Field(default="", description="Where the terms come from (a citation).")


class MarketOptions(Model):
    """The market the plan may buy from: the fleet's price book (when asked) and options of the scenario."""

    from_price_book: bool = Field(
        default=True, description="Take every price-book entry of the fleet as an option (its lead time in months)."
    )
    min_term_months: Months = Field(
        default=12, ge=1, le=MAX_PLAN_MONTHS, description="Term of price-book options, months, 1 to 240."
    )
    options: list[MarketOption] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="More options, at most 10,000."
    )


class BuildOption(Model):
    """Buildings the plan may start at an owned site: each adds power and GPUs after the build time."""

    id: Id = Field(description="Option id, e.g. 'abilene-phase-3'.")
    site: Id = Field(description="Id of the owned site (its power envelope bounds what is built).")
    gpu_model: Name = Field(description="GPU model the buildings are fitted with (catalogue name).")
    it_power_mw: Megawatts = Field(gt=0, le=MAX_POWER_MW, description="IT power of one building, MW.")
    gpus: GpuCount | None = Field(
        default=None,
        gt=0,
        le=MAX_CLUSTER_GPUS,
        description="GPUs of one building; null: IT MW ÷ (TDP × PUE), rounded down.",
    )
    capex_usd_per_mw: USD = Field(description="Capital expenditure per MW of IT power, all in (facility and GPUs).")
    build_months: Months = Field(ge=1, le=120, description="Months from start to energisation, 1 to 120.")
    max_buildings: Count = Field(default=1, ge=1, le=1_000, description="Most buildings started, 1 to 1,000.")
    earliest_start: Month | None = Field(default=None, description="First month one may start; null: the first.")
    source: OptionalText = Field(default="", description="Where the figures come from (a citation).")


class Triangular(Model):
    """A triangular distribution: least, most likely and largest value."""

    low: Real = Field(ge=0, le=1e6, description="Least value.")
    mode: Real = Field(ge=0, le=1e6, description="Most likely value.")
    high: Real = Field(ge=0, le=1e6, description="Largest value.")

    @model_validator(mode="after")
    def _ordered(self) -> "Triangular":
        if not self.low <= self.mode <= self.high:
            raise ValueError(f"found low {self.low}, mode {self.mode}, high {self.high}, expected low ≤ mode ≤ high")
        return self


class OutageRisk(Model):
    """Provider outages: each provider loses a share of its capacity for a month with some chance."""

    probability_per_month: Real = Field(
        default=0.0, ge=0, le=1, description="Chance a provider is out in a given month, 0 to 1."
    )
    capacity_lost: Real = Field(default=1.0, gt=0, le=1, description="Share of its capacity lost, above 0 to 1.")
    months: Months = Field(default=1, ge=1, le=120, description="How long an outage lasts, months, 1 to 120.")


class Risk(Model):
    """What can go wrong, for the Monte Carlo risk of a plan."""

    building_delay_months: Triangular | None = Field(
        default=None, description="Extra months before a building not yet energised comes online; null: none."
    )
    demand_growth_sigma: Real = Field(
        default=0.0,
        ge=0,
        le=5,
        description="Standard deviation of the yearly log-growth of demand around the curve, 0 to 5 (0.2 ≈ ±20 % "
        "after a year).",
    )
    capex_overrun: Triangular | None = Field(
        default=None, description="Capex multiplier of buildings not yet energised (1 = on budget); null: none."
    )
    outages: OutageRisk = Field(default_factory=OutageRisk, description="Provider outages.")
    recourse_usd_per_gpu_hour: USDPerGpuHour | None = Field(
        default=None,
        description="Shortfall in a scenario is bought on demand at this price (and counts in its spend); null: "
        "shortfall stays unmet.",
    )


class PlanScenario(Model):
    """Root of a plan scenario file."""

    name: Name = Field(description="Scenario name, e.g. 'stargate-2025'.")
    description: OptionalText = Field(default="", description="What this scenario describes.")
    fleet: str = Field(
        default=".",
        min_length=1,
        max_length=1_000,
        description="Fleet file or directory, relative to the scenario file (the server uses its own fleet).",
    )
    start: Month = Field(description="First month of the horizon (YYYY-MM).")
    months: Months = Field(default=48, ge=1, le=MAX_PLAN_MONTHS, description="Months in the horizon, 1 to 240.")
    unmet_penalty_usd_per_gpu_hour: USDPerGpuHour | None = Field(
        default=None,
        description="Cost of one GPU-hour of demand left unmet, USD per GPU-hour; null: demand must be met.",
    )
    over_budget_penalty: Real | None = Field(
        default=None,
        ge=0,
        le=1e6,
        description="Cost of each USD spent past the budget envelope, in USD per USD; null: the budget is a hard "
        "limit.",
    )
    existing_build_months: Months = Field(
        default=12,
        ge=1,
        le=120,
        description="Months before energisation over which a fleet building's capex is paid, 1 to 120.",
    )
    demand: list[DemandSeries] = Field(min_length=1, max_length=MAX_SMALL_LIST, description="Demand curves.")
    market: MarketOptions = Field(default_factory=MarketOptions, description="What may be signed.")
    build: list[BuildOption] = Field(
        default_factory=list, max_length=MAX_SMALL_LIST, description="What may be built, at most 1,000."
    )
    risk: Risk = Field(default_factory=Risk, description="What can go wrong (Monte Carlo).")
    source: OptionalText = Field(default="", description="Where the scenario's figures come from.")

    @model_validator(mode="after")
    def _unique_ids(self) -> "PlanScenario":
        for key, items in (("demand", self.demand), ("market.options", self.market.options), ("build", self.build)):
            ids = [item.id for item in items]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"found the id {repeated[0]!r} twice in {key}, expected each id once")
        return self


MAX_GPUS_DEMANDED = MAX_FLEET_GPUS
"""Demand in GPUs past this is refused by the engine's inputs (100,000,000 GPUs)."""
