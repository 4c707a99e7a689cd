"""Checks of a plan scenario against the fleet it plans for: every problem, each with its path in the scenario.

Pure: no I/O, no clock. A scenario that validated on its own may still name what the fleet lacks (a GPU model, a
provider, a site), put a month where the horizon cannot use it, ask for more GPUs than any fleet may hold, or offer a
building that can never be built (more IT MW than its site's headroom, or too little power for one GPU). Each
problem carries its path in the scenario document (``("build", 0, "site")``) so a loader can locate it.
"""

from collections.abc import Mapping, Sequence
from datetime import date

from stargate.domain.catalog import GpuModel
from stargate.domain.fleet import Fleet
from stargate.domain.infrastructure import ProviderKind, Site
from stargate.domain.planning import MAX_GPUS_DEMANDED, BuildOption, PlanScenario
from stargate.domain.problems import Path, Problem
from stargate.engine.plan_demand import demand_line, month_starts
from stargate.engine.plan_inputs import gpus_for_power

_MAX_LISTED = 12


def scenario_problems(
    scenario: PlanScenario, fleet: Fleet, history: Mapping[str, Sequence[tuple[date, float]]] | None = None
) -> list[Problem]:
    """Every problem of ``scenario`` against ``fleet``, in document order.

    ``history`` (monthly GPU averages by ``fit`` series id) lets the demand of fitted series be checked too: a fit
    series without history here (the server supplies its ledger's later) is not converted.
    """
    history = history or {}
    catalogue = fleet.catalogue()
    providers = {p.id: p for p in fleet.providers}
    sites = {s.id: s for s in fleet.sites}
    months = month_starts(scenario.start, scenario.months)
    first, last = months[0], months[-1]
    out: list[Problem] = []

    def model(path: Path, name: str) -> None:
        if name not in catalogue:
            out.append(Problem(path, f"'{name}'", f"a GPU model of the catalogue: {_listed(catalogue)}"))

    for i, series in enumerate(scenario.demand):
        model(("demand", i, "gpu_model"), series.gpu_model)
        for j, point in enumerate(series.points or ()):
            if point.month < first:
                out.append(
                    Problem(
                        ("demand", i, "points", j, "month"),
                        _ym(point.month),
                        f"a month from {_ym(first)} on (the horizon's start)",
                    )
                )
        if series.gpu_model in catalogue and (series.fit is None or series.id in history):
            out += _demand_bound(scenario, i, catalogue, months, history)

    for i, option in enumerate(scenario.market.options):
        path: Path = ("market", "options", i)
        if option.provider not in providers:
            out.append(
                Problem((*path, "provider"), f"'{option.provider}'", f"a provider of the fleet: {_listed(providers)}")
            )
        model((*path, "gpu_model"), option.gpu_model)
        start, until = option.available_from, option.available_until
        if start is not None and until is not None and until < start:
            out.append(
                Problem((*path, "available_until"), _ym(until), f"a month from available_from ({_ym(start)}) on")
            )
        elif until is not None and until < first:
            out.append(
                Problem(
                    (*path, "available_until"),
                    _ym(until),
                    f"a month from {_ym(first)} on (the horizon's start; before it the option can never be signed)",
                )
            )
        if start is not None and start > last:
            out.append(
                Problem(
                    (*path, "available_from"),
                    _ym(start),
                    f"a month up to {_ym(last)} (the horizon's last; after it the option can never be signed)",
                )
            )

    owned = {p.id for p in fleet.providers if p.kind is ProviderKind.OWNED}
    for i, build in enumerate(scenario.build):
        path = ("build", i)
        site = sites.get(build.site)
        if site is None:
            out.append(Problem((*path, "site"), f"'{build.site}'", f"a site of the fleet: {_listed(sites)}"))
        elif site.provider not in owned:
            owned_sites = {s.id: s for s in fleet.sites if s.provider in owned}
            out.append(
                Problem(
                    (*path, "site"),
                    f"'{build.site}' (a site of the provider '{site.provider}', not owned)",
                    f"a site of an owned provider: {_listed(owned_sites)}",
                )
            )
        model((*path, "gpu_model"), build.gpu_model)
        if site is not None and site.provider in owned:
            out += _buildable(fleet, i, build, site, catalogue.get(build.gpu_model))
        if build.earliest_start is not None and build.earliest_start > last:
            out.append(
                Problem(
                    (*path, "earliest_start"),
                    _ym(build.earliest_start),
                    f"a month up to {_ym(last)} (the horizon's last)",
                )
            )
    return out


def _demand_bound(
    scenario: PlanScenario,
    index: int,
    catalogue: Mapping[str, GpuModel],
    months: Sequence[date],
    history: Mapping[str, Sequence[tuple[date, float]]],
) -> list[Problem]:
    """The series at ``index`` as GPUs: a problem when it cannot be converted or passes the fleet bound."""
    series = scenario.demand[index]
    try:
        line = demand_line(series, catalogue, months, history.get(series.id, ()))
    except ValueError as error:
        text = str(error).removeprefix(f"demand series {series.id!r}: ")
        found, _, expected = text.removeprefix("found ").partition(", expected ")
        return [Problem(("demand", index, "fit"), found, expected or "history to fit")]
    for month, gpus in zip(months, line.gpus, strict=True):
        if not gpus <= MAX_GPUS_DEMANDED:  # also catches inf and nan
            shown = f"{gpus:,.0f}" if gpus < 1e30 else f"{gpus:.3g}"
            hint = " (cap the curve with max_value)" if series.growth is not None else ""
            found = f"{shown} GPUs of {series.gpu_model} in {_ym(month)}"
            return [Problem(("demand", index), found, f"at most {MAX_GPUS_DEMANDED:,} GPUs in a month{hint}")]
    return []


def _buildable(fleet: Fleet, index: int, build: BuildOption, site: Site, model: GpuModel | None) -> list[Problem]:
    """A problem when one building of ``build`` (at ``index``) can never be built at ``site``: it needs more IT MW
    than the site's headroom (site power ÷ PUE − the IT MW of its fleet buildings; no envelope: unlimited), or its
    power feeds less than one GPU (when its GPUs are derived)."""
    path: Path = ("build", index, "it_power_mw")
    mw = build.it_power_mw
    if site.power_mw is not None:
        used = sum(b.it_power_mw for b in fleet.buildings if b.site == site.id)
        headroom = max(0.0, site.power_mw / site.pue - used)
        if mw > headroom + 1e-9:
            where = (
                f"site '{site.id}': {site.power_mw:,g} MW ÷ PUE {site.pue:g} − {used:,g} MW of its buildings"
                if used
                else f"site '{site.id}': {site.power_mw:,g} MW ÷ PUE {site.pue:g}"
            )
            return [
                Problem(
                    path,
                    f"{mw:,g} MW for one building",
                    f"at most {headroom:,.1f} MW, the IT power headroom of the {where} (no building can be built)",
                )
            ]
    if build.gpus is None and model is not None and gpus_for_power(mw, model, site) < 1:
        need = model.tdp_w * site.pue / 1e6
        return [
            Problem(
                path,
                f"{mw:g} MW, which feeds 0 GPUs of {build.gpu_model} ({model.tdp_w:,g} W × PUE {site.pue:g} each)",
                f"at least {need:.6g} MW (one GPU), or `gpus` given",
            )
        ]
    return []


def _ym(day: date) -> str:
    return day.strftime("%Y-%m")


def _listed(names: Mapping[str, object]) -> str:
    shown = sorted(names)
    more = len(shown) - _MAX_LISTED
    if not shown:
        return "none in the fleet"
    return ", ".join(shown[:_MAX_LISTED]) + (f" (and {more:,} more)" if more > 0 else "")
