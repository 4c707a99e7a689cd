"""Rules across a fleet's entities: references resolve, power fits, dates are consistent.

Each rule yields :class:`Problem` values located by field path; an empty list means the fleet is sound.
"""

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date

from stargate.domain.executors import DEFAULT_EXECUTORS
from stargate.domain.fleet import Fleet
from stargate.domain.infrastructure import ProviderKind
from stargate.domain.problems import Problem
from stargate.domain.teams import ANY_GPU


def fleet_problems(fleet: Fleet) -> list[Problem]:
    """Every cross-entity problem in ``fleet``, in document order of the rules below."""
    rules = (
        _unique_ids,
        _site_refs,
        _building_refs,
        _cluster_refs,
        _contract_refs,
        _queue_refs,
        _queues_have_a_priority_class,
        _queues_admit_some_gpu,
        _building_power_fits_site,
        _cluster_gpus_fit_building,
        _cluster_power_fits_site,
        _clusters_match_contract,
        _reserved_gpus_cover_clusters,
        _clusters_after_building,
        _date_orders,
        _clauses_inside_term,
        _contract_terms,
        _price_book_refs,
        _executor_refs,
    )
    return [p for rule in rules for p in rule(fleet)]


def _dupes(section: str, ids: Sequence[str]) -> Iterator[Problem]:
    counts = Counter(ids)
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if counts[ident] > 1 and ident in seen:
            yield Problem((section, i, "id"), f"'{ident}'", f"an id not used by another entry of '{section}'")
        seen.add(ident)


def _unique_ids(f: Fleet) -> Iterator[Problem]:
    yield from _dupes("gpu_models", [m.name for m in f.gpu_models])
    for section in ("providers", "sites", "buildings", "clusters", "contracts", "teams", "queues"):
        yield from _dupes(section, [e.id for e in getattr(f, section)])
    yield from _dupes("priority_classes", [p.name for p in f.priority_classes])
    yield from _dupes("executors", [e.id for e in f.executors])


def _ref(path: tuple[str | int, ...], value: str | None, known: set[str], what: str) -> Iterator[Problem]:
    if value is not None and value not in known:
        shown = ", ".join(sorted(known)[:8]) or "none defined"
        yield Problem(path, f"'{value}'", f"the id of a {what} ({shown})")


def _site_refs(f: Fleet) -> Iterator[Problem]:
    providers = {p.id for p in f.providers}
    for i, s in enumerate(f.sites):
        yield from _ref(("sites", i, "provider"), s.provider, providers, "provider")


def _building_refs(f: Fleet) -> Iterator[Problem]:
    sites = {s.id: s for s in f.sites}
    kinds = {p.id: p.kind for p in f.providers}
    models = set(f.catalogue())
    for i, b in enumerate(f.buildings):
        yield from _ref(("buildings", i, "site"), b.site, set(sites), "site")
        yield from _ref(("buildings", i, "gpu_model"), b.gpu_model, models, "GPU model in the catalogue")
        site = sites.get(b.site)
        if site is not None and kinds.get(site.provider) is ProviderKind.CLOUD:
            yield Problem(
                ("buildings", i, "site"),
                f"'{b.site}' (a cloud provider's site)",
                "a site of an owned provider",
            )


def _cluster_refs(f: Fleet) -> Iterator[Problem]:
    sites = {s.id for s in f.sites}
    buildings = {b.id: b for b in f.buildings}
    contracts = {c.id for c in f.contracts}
    models = set(f.catalogue())
    for i, c in enumerate(f.clusters):
        yield from _ref(("clusters", i, "site"), c.site, sites, "site")
        yield from _ref(("clusters", i, "building"), c.building, set(buildings), "building")
        yield from _ref(("clusters", i, "gpu_model"), c.gpu_model, models, "GPU model in the catalogue")
        yield from _ref(("clusters", i, "contract"), c.contract, contracts, "contract")
        b = buildings.get(c.building or "")
        if b is not None and b.site != c.site and b.site in sites:
            yield Problem(
                ("clusters", i, "building"),
                f"'{b.id}' (at site '{b.site}')",
                f"a building at site '{c.site}'",
            )
        if b is not None and b.gpu_model != c.gpu_model:
            yield Problem(
                ("clusters", i, "gpu_model"),
                f"'{c.gpu_model}'",
                f"'{b.gpu_model}', the model building '{b.id}' holds",
            )


def _contract_refs(f: Fleet) -> Iterator[Problem]:
    providers = {p.id for p in f.providers}
    models = set(f.catalogue())
    for i, c in enumerate(f.contracts):
        yield from _ref(("contracts", i, "provider"), c.provider, providers, "provider")
        yield from _ref(("contracts", i, "gpu_model"), c.gpu_model, models, "GPU model in the catalogue")
        if c.right_of_first_refusal is not None:
            r = c.right_of_first_refusal
            yield from _ref(("contracts", i, "right_of_first_refusal", "holder"), r.holder, providers, "provider")
            for j, m in enumerate(r.gpu_models):
                yield from _ref(("contracts", i, "right_of_first_refusal", "gpu_models", j), m, models, "GPU model")
        if c.exclusivity is not None:
            for j, m in enumerate(c.exclusivity.gpu_models):
                yield from _ref(("contracts", i, "exclusivity", "gpu_models", j), m, models, "GPU model")


def _queue_refs(f: Fleet) -> Iterator[Problem]:
    teams = {t.id for t in f.teams}
    classes = {p.name for p in f.priority_classes}
    models = set(f.catalogue()) | {ANY_GPU}
    for i, q in enumerate(f.queues):
        yield from _ref(("queues", i, "team"), q.team, teams, "team")
        for j, pc in enumerate(q.priority_classes):
            yield from _ref(("queues", i, "priority_classes", j), pc, classes, "priority class")
        yield from _ref(("queues", i, "default_priority_class"), q.default_priority_class, classes, "priority class")
        if q.default_priority_class and q.priority_classes and q.default_priority_class not in q.priority_classes:
            yield Problem(
                ("queues", i, "default_priority_class"),
                f"'{q.default_priority_class}'",
                "one of the queue's own priority_classes",
            )
        seen: set[str] = set()
        for j, quota in enumerate(q.quotas):
            yield from _ref(("queues", i, "quotas", j, "gpu_model"), quota.gpu_model, models, "GPU model or '*'")
            if quota.gpu_model in seen:
                yield Problem(
                    ("queues", i, "quotas", j, "gpu_model"),
                    f"'{quota.gpu_model}' again",
                    "one quota per GPU model",
                )
            seen.add(quota.gpu_model)


def _queues_have_a_priority_class(f: Fleet) -> Iterator[Problem]:
    """Every job names or defaults to a priority class the queue allows: with none, every submission is refused.

    A fleet without queues may declare no priority classes (nothing can be submitted to it anyway). A queue whose
    listed classes are all undefined is already refused by the references rule.
    """
    if f.queues and not f.priority_classes:
        yield Problem(
            ("priority_classes",),
            "no priority classes (every job needs one, so no queue could take a job)",
            "at least one priority class, or no 'priority_classes' key for the defaults low, normal and high",
        )


def _queues_admit_some_gpu(f: Fleet) -> Iterator[Problem]:
    """A queue with quotas admits at least one GPU under some quota: itself or by borrowing from its cohort.

    A queue with no quotas is unlimited; a quota of 0 that may borrow from a cohort with quota is a legitimate
    choice (a team that only uses what others leave idle). Only a queue that no job could ever be admitted to is
    refused.
    """
    cohort_nominal: dict[tuple[str, str], int] = {}
    for q in f.queues:
        if q.cohort is not None:
            for quota in q.quotas:
                key = (q.cohort, quota.gpu_model)
                cohort_nominal[key] = cohort_nominal.get(key, 0) + quota.gpus
    for i, q in enumerate(f.queues):
        if not q.quotas:
            continue
        if any(
            quota.gpus > 0
            or (
                q.cohort is not None
                and (quota.borrowing_limit_gpus is None or quota.borrowing_limit_gpus > 0)
                and cohort_nominal.get((q.cohort, quota.gpu_model), 0) > 0
            )
            for quota in q.quotas
        ):
            continue
        how = (
            "without a cohort"
            if q.cohort is None
            else f"that cannot borrow in cohort '{q.cohort}' (borrowing limit 0, or no quota there to borrow)"
        )
        yield Problem(
            ("queues", i, "quotas"),
            f"quotas of 0 GPUs {how} (no job could ever be admitted)",
            "a quota above 0 GPUs, or a cohort with quota to borrow from (or no quotas: unlimited)",
        )


def _building_power_fits_site(f: Fleet) -> Iterator[Problem]:
    for si, s in enumerate(f.sites):
        if s.power_mw is None:
            continue
        total_it = sum(b.it_power_mw for b in f.buildings if b.site == s.id)
        facility = total_it * s.pue
        if facility > s.power_mw + 1e-9:
            yield Problem(
                ("sites", si, "power_mw"),
                f"{s.power_mw:g} MW, but its buildings draw {_mw(facility)} MW ({_mw(total_it)} MW IT × PUE {s.pue:g})",
                f"at least {_mw(facility)} MW, or buildings that fit the envelope",
            )


def _mw(value: float) -> str:
    """Megawatts for a message: one decimal from 1 MW up, three significant digits below."""
    return f"{value:,.1f}" if value >= 1 else f"{value:.3g}"


def _cluster_gpus_fit_building(f: Fleet) -> Iterator[Problem]:
    catalogue = f.catalogue()
    sites = {s.id: s for s in f.sites}
    for bi, b in enumerate(f.buildings):
        placed = sum(c.gpus for c in f.clusters if c.building == b.id)
        if placed > b.gpus:
            yield Problem(
                ("buildings", bi, "gpus"),
                f"{b.gpus:,} GPUs, but its clusters hold {placed:,} GPUs",
                f"at least {placed:,} GPUs",
            )
        model = catalogue.get(b.gpu_model)
        site = sites.get(b.site)
        if model is None or site is None:
            continue
        draw_mw = b.gpus * model.tdp_w / 1e6
        if draw_mw > b.it_power_mw + 1e-9:
            yield Problem(
                ("buildings", bi, "it_power_mw"),
                f"{b.it_power_mw:g} MW, but {b.gpus:,} {b.gpu_model} GPUs × {model.tdp_w:g} W draw {_mw(draw_mw)} MW",
                f"at least {_mw(draw_mw)} MW of IT power, or fewer GPUs",
            )


def _cluster_power_fits_site(f: Fleet) -> Iterator[Problem]:
    """Clusters outside buildings draw GPUs × TDP × PUE from their site's envelope; it must fit."""
    catalogue = f.catalogue()
    for si, s in enumerate(f.sites):
        loose = [c for c in f.clusters if c.site == s.id and c.building is None and c.gpu_model in catalogue]
        if s.power_mw is None or not loose:
            continue
        it_mw = sum(c.gpus * catalogue[c.gpu_model].tdp_w for c in loose) / 1e6
        buildings_it = sum(b.it_power_mw for b in f.buildings if b.site == s.id)
        facility = (it_mw + buildings_it) * s.pue
        if facility > s.power_mw + 1e-9:
            yield Problem(
                ("sites", si, "power_mw"),
                f"{s.power_mw:g} MW, but its clusters and buildings draw {_mw(facility)} MW "
                f"({_mw(it_mw + buildings_it)} MW IT × PUE {s.pue:g})",
                f"at least {_mw(facility)} MW, or fewer GPUs at the site",
            )


def _clusters_match_contract(f: Fleet) -> Iterator[Problem]:
    """A cluster bought under a contract is with that contract's provider, of its GPU model, inside its term."""
    contracts = {k.id: k for k in f.contracts}
    provider_of = {s.id: s.provider for s in f.sites}
    known = {p.id for p in f.providers}
    for i, c in enumerate(f.clusters):
        k = contracts.get(c.contract or "")
        if k is None:
            continue
        provider = provider_of.get(c.site)
        if provider in known and provider != k.provider:
            yield Problem(
                ("clusters", i, "contract"),
                f"'{k.id}' (a contract with '{k.provider}')",
                f"a contract with '{provider}', the provider of site '{c.site}'",
            )
        if k.gpu_model is not None and k.gpu_model != c.gpu_model:
            yield Problem(
                ("clusters", i, "gpu_model"),
                f"'{c.gpu_model}'",
                f"'{k.gpu_model}', the model contract '{k.id}' covers",
            )
        term = f"inside contract '{k.id}' term {k.start.isoformat()} → {k.end.isoformat()}"
        if c.online_from is not None and not k.covers(c.online_from):
            yield Problem(("clusters", i, "online_from"), c.online_from.isoformat(), f"a date {term}")
        if c.online_until is not None and not k.covers(c.online_until):
            yield Problem(("clusters", i, "online_until"), c.online_until.isoformat(), f"a date {term}")


def _reserved_gpus_cover_clusters(f: Fleet) -> Iterator[Problem]:
    """A reserved contract's GPUs are at least the GPUs of the clusters bought under it."""
    for i, k in enumerate(f.contracts):
        if k.kind != "reserved" or k.gpus is None:
            continue
        placed = sum(c.gpus for c in f.clusters if c.contract == k.id)
        if placed > k.gpus:
            yield Problem(
                ("contracts", i, "gpus"),
                f"{k.gpus:,} GPUs, but clusters under it hold {placed:,} GPUs",
                f"at least {placed:,} GPUs reserved",
            )


def _clusters_after_building(f: Fleet) -> Iterator[Problem]:
    """A cluster in a building comes online no earlier than the building is energised."""
    buildings = {b.id: b for b in f.buildings}
    for i, c in enumerate(f.clusters):
        b = buildings.get(c.building or "")
        if b is not None and c.online_from is not None and c.online_from < b.energized_on():
            yield Problem(
                ("clusters", i, "online_from"),
                f"{c.online_from.isoformat()}, before building '{b.id}' is energised ({b.energized_on().isoformat()})",
                "a date on or after its building's energisation",
            )


def _order(path: tuple[str | int, ...], first: date | None, then: date | None, a: str, b: str) -> Iterator[Problem]:
    if first is not None and then is not None and then < first:
        yield Problem(path, f"{b} {then.isoformat()} before {a} {first.isoformat()}", f"{b} on or after {a}")


def _date_orders(f: Fleet) -> Iterator[Problem]:
    for i, c in enumerate(f.clusters):
        yield from _order(("clusters", i, "online_until"), c.online_from, c.online_until, "online_from", "online_until")
    for i, k in enumerate(f.contracts):
        yield from _order(("contracts", i, "end"), k.start, k.end, "start", "end")
    if f.budget is not None:
        yield from _order(("budget", "end"), f.budget.start, f.budget.end, "start", "end")
        if f.budget.ceiling_usd < f.budget.initial_usd:
            yield Problem(
                ("budget", "ceiling_usd"),
                f"{f.budget.ceiling_usd:,} USD, below initial_usd {f.budget.initial_usd:,} USD",
                "a ceiling at least the initial envelope",
            )


def _clauses_inside_term(f: Fleet) -> Iterator[Problem]:
    for i, c in enumerate(f.contracts):
        r = c.right_of_first_refusal
        if r is not None:
            path = ("contracts", i, "right_of_first_refusal")
            yield from _order((*path, "valid_until"), r.valid_from, r.valid_until, "valid_from", "valid_until")
            if not c.covers(r.valid_from):
                yield Problem(
                    (*path, "valid_from"),
                    r.valid_from.isoformat(),
                    f"a date inside the contract's term {c.start.isoformat()} → {c.end.isoformat()}",
                )
            if not c.covers(r.valid_until):
                yield Problem(
                    (*path, "valid_until"),
                    r.valid_until.isoformat(),
                    f"a date inside the contract's term {c.start.isoformat()} → {c.end.isoformat()}",
                )
        e = c.exclusivity
        if e is not None and not c.covers(e.until):
            yield Problem(
                ("contracts", i, "exclusivity", "until"),
                e.until.isoformat(),
                f"a date inside the contract's term {c.start.isoformat()} → {c.end.isoformat()}",
            )


def _contract_terms(f: Fleet) -> Iterator[Problem]:
    for i, c in enumerate(f.contracts):
        if c.kind == "reserved" and c.gpus is None:
            yield Problem(("contracts", i, "gpus"), "nothing", "the number of GPUs reserved (a 'reserved' contract)")
        if c.kind == "commitment" and c.committed_spend_usd is None:
            yield Problem(
                ("contracts", i, "committed_spend_usd"),
                "nothing",
                "the minimum spend in USD (a 'commitment' contract)",
            )
        if c.kind in ("on_demand", "spot", "reserved") and c.price_per_gpu_hour_usd is None:
            yield Problem(
                ("contracts", i, "price_per_gpu_hour_usd"),
                "nothing",
                f"a price per GPU-hour in USD (a '{c.kind}' contract)",
            )


def _price_book_refs(f: Fleet) -> Iterator[Problem]:
    """A price-book quote names a known provider, one of that provider's sites and a catalogue GPU model, and is
    valid for at least a day."""
    providers = {p.id for p in f.providers}
    provider_of = {s.id: s.provider for s in f.sites}
    models = set(f.catalogue())
    for i, q in enumerate(f.procurement.price_book):
        path = ("procurement", "price_book", i)
        yield from _ref((*path, "provider"), q.provider, providers, "provider")
        yield from _ref((*path, "site"), q.site, set(provider_of), "site")
        yield from _ref((*path, "gpu_model"), q.gpu_model, models, "GPU model in the catalogue")
        owner = provider_of.get(q.site)
        if owner is not None and q.provider in providers and owner != q.provider:
            yield Problem(
                (*path, "site"),
                f"'{q.site}' (a site of '{owner}')",
                f"a site of '{q.provider}', the provider quoting",
            )
        yield from _order((*path, "valid_until"), q.valid_from, q.valid_until, "valid_from", "valid_until")


def _executor_refs(f: Fleet) -> Iterator[Problem]:
    """A provider's or cluster's ``executor`` names an executor the fleet declares, or a default one."""
    known = {e.id for e in f.executors} | set(DEFAULT_EXECUTORS)
    shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
    named: list[tuple[str, int, str, str | None]] = [
        ("providers", i, p.id, p.executor) for i, p in enumerate(f.providers)
    ]
    named += [("clusters", i, c.id, c.executor) for i, c in enumerate(f.clusters)]
    for section, i, ident, executor in named:
        if executor is not None and executor not in known:
            yield Problem(
                (section, i, "executor"),
                f"'{executor}' ({section[:-1]} '{ident}')",
                f"the id of an executor declared under 'executors' or a default one ({shown})",
            )
    teams = {t.id for t in f.teams}
    for i, e in enumerate(f.executors):
        for team in getattr(e, "team_users", None) or {}:
            if team not in teams:  # a misspelt team's jobs would quietly run as the executor's 'user'
                yield from _ref(("executors", i, "team_users", team), team, teams, "team")
