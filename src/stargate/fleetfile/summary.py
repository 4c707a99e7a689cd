"""Figures computed from a fleet for ``stargate fleet show`` and ``fleet validate``: counts, energised power by
month, totals; and the stable JSON document ``fleet show --json`` prints (see docs/reference/cli-fleet.md)."""

import calendar
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from stargate.domain.fleet import Fleet

MAX_DEFAULT_MONTHS = 36
"""The most months ``fleet show`` lists when no ``--months`` is given."""


def counts(fleet: Fleet) -> dict[str, int]:
    """How many of each noun the fleet holds (GPUs summed over clusters)."""
    return {
        "providers": len(fleet.providers),
        "sites": len(fleet.sites),
        "buildings": len(fleet.buildings),
        "clusters": len(fleet.clusters),
        "gpus": fleet.total_gpus(),
        "contracts": len(fleet.contracts),
        "teams": len(fleet.teams),
        "queues": len(fleet.queues),
    }


def month_label(year: int, month: int) -> str:
    """A month as ``YYYY-MM``."""
    return f"{year:04d}-{month:02d}"


def month_range(start: date, count: int) -> list[str]:
    """``count`` consecutive months as ``YYYY-MM``, from the month of ``start``."""
    index = start.year * 12 + start.month - 1
    return [month_label((index + i) // 12, (index + i) % 12 + 1) for i in range(count)]


def default_months(fleet: Fleet, start: date | None = None, count: int | None = None) -> list[str]:
    """Months to show: from ``start`` (default: the earliest energisation) to the latest energisation, at most
    :data:`MAX_DEFAULT_MONTHS` unless ``count`` says otherwise. With no buildings: the ``as_of`` month, if any."""
    days = sorted(b.energized_on() for b in fleet.buildings)
    first = start or (days[0] if days else fleet.as_of)
    if first is None:
        return []
    if count is None:
        last = days[-1] if days else first
        span = (last.year - first.year) * 12 + last.month - first.month + 1
        count = min(max(span, 1), MAX_DEFAULT_MONTHS)
    return month_range(first, count)


def month_end(label: str) -> date:
    """The last day of a ``YYYY-MM`` month."""
    year, month = int(label[:4]), int(label[5:7])
    return date(year, month, calendar.monthrange(year, month)[1])


def energized_mw_by_month(fleet: Fleet, site_id: str, months: list[str]) -> dict[str, float | None]:
    """Facility power energised at a site by the end of each month, MW (IT power × PUE); None: not limited."""
    site = next(s for s in fleet.sites if s.id == site_id)
    out: dict[str, float | None] = {}
    for label in months:
        it_mw = fleet.energized_it_mw(site_id, month_end(label))
        out[label] = None if it_mw is None else round(it_mw * site.pue, 3)
    return out


def totals(fleet: Fleet) -> dict[str, Any]:
    """GPUs by model and by provider, and contract money (USD, as exact decimal strings)."""
    provider_of = {s.id: s.provider for s in fleet.sites}
    by_model: Counter[str] = Counter()
    by_provider: Counter[str] = Counter()
    for c in fleet.clusters:
        by_model[c.gpu_model] += c.gpus
        by_provider[provider_of.get(c.site, "?")] += c.gpus
    value = sum((k.value_usd for k in fleet.contracts if k.value_usd is not None), Decimal(0))
    committed = sum((k.committed_spend_usd for k in fleet.contracts if k.committed_spend_usd is not None), Decimal(0))
    return {
        "gpus": fleet.total_gpus(),
        "gpus_by_model": dict(sorted(by_model.items())),
        "gpus_by_provider": dict(sorted(by_provider.items())),
        "contract_value_usd": str(value),
        "committed_spend_usd": str(committed),
    }


def show_document(fleet: Fleet, months: list[str]) -> dict[str, Any]:
    """The fleet as pydantic dumps it (mode="json") plus computed fields: per site ``energized_mw_by_month``,
    per building ``energized_on``, per cluster ``gpus``, and ``months`` and ``totals`` at the top."""
    doc = fleet.model_dump(mode="json")
    for site in doc["sites"]:
        site["energized_mw_by_month"] = energized_mw_by_month(fleet, site["id"], months)
    for raw, building in zip(doc["buildings"], fleet.buildings, strict=True):
        raw["energized_on"] = building.energized_on().isoformat()
    for raw, cluster in zip(doc["clusters"], fleet.clusters, strict=True):
        raw["gpus"] = cluster.gpus
    doc["months"] = months
    doc["totals"] = totals(fleet)
    return doc
