"""Hypothesis strategies that build valid fleets: every reference resolves, power fits, dates are in order."""

from datetime import date

from hypothesis import strategies as st

from stargate.domain import (
    ANY_GPU,
    BUILTIN_GPU_MODELS,
    DEFAULT_PRIORITY_CLASSES,
    Budget,
    Building,
    Cluster,
    ClusterStatus,
    Contract,
    ContractKind,
    Exclusivity,
    ExecutorKind,
    Fleet,
    GpuModel,
    MatchRule,
    PriorityClass,
    Provider,
    ProviderKind,
    Queue,
    Quota,
    RightOfFirstRefusal,
    Site,
    Team,
)

BUILTIN = [m.name for m in BUILTIN_GPU_MODELS]
ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True)
texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp")), min_size=1, max_size=24
).filter(lambda s: s.strip() != "")
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
usd = st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=0, max_value=10**5, places=6, allow_nan=False, allow_infinity=False)


def _unique(draw: st.DrawFn, max_size: int, min_size: int = 0) -> list[str]:
    return draw(st.lists(ids, min_size=min_size, max_size=max_size, unique=True))


def _term(draw: st.DrawFn) -> tuple[date, date]:
    a, b = sorted((draw(days), draw(days)))
    return a, b


def _inside(draw: st.DrawFn, start: date, end: date) -> tuple[date, date]:
    a, b = sorted(draw(st.dates(min_value=start, max_value=end)) for _ in range(2))
    return a, b


@st.composite
def providers(draw: st.DrawFn) -> list[Provider]:
    """One to four providers with distinct ids."""
    return [
        Provider(
            id=i,
            name=draw(texts),
            kind=draw(st.sampled_from(ProviderKind)),
            executor=draw(st.sampled_from(ExecutorKind)),
            capacity_limit_gpus=draw(st.none() | st.integers(0, 10**6)),
        )
        for i in _unique(draw, 4, min_size=1)
    ]


def _site(draw: st.DrawFn, ident: str, provider: str) -> Site:
    return Site(
        id=ident,
        provider=provider,
        region=draw(texts),
        power_mw=draw(st.sampled_from([None, 1e5])),
        pue=draw(st.floats(1.0, 3.0)),
    )


def _building(draw: st.DrawFn, ident: str, site: str) -> Building:
    planned = draw(days)
    return Building(
        id=ident,
        site=site,
        floor_area_sq_ft=draw(st.integers(1, 10**7)),
        it_power_mw=draw(st.floats(2.0, 1e4)),
        gpus=draw(st.integers(8, 1000)),
        gpu_model=draw(st.sampled_from(BUILTIN)),
        capex_usd=draw(usd),
        planned_energization=planned,
        actual_energization=draw(st.none() | days),
    )


def _contract(draw: st.DrawFn, ident: str, provider_ids: list[str]) -> Contract:
    kind = draw(st.sampled_from(ContractKind))
    start, end = _term(draw)
    rofr = None
    if draw(st.booleans()):
        valid_from, valid_until = _inside(draw, start, end)
        rofr = RightOfFirstRefusal(
            holder=draw(st.sampled_from(provider_ids)),
            gpu_models=draw(st.lists(st.sampled_from(BUILTIN), max_size=2)),
            response_window_days=draw(st.integers(1, 365)),
            match_rule=draw(st.sampled_from(MatchRule)),
            valid_from=valid_from,
            valid_until=valid_until,
            source=draw(st.just("") | texts),
        )
    excl = None
    if draw(st.booleans()):
        excl = Exclusivity(
            gpu_models=draw(st.lists(st.sampled_from(BUILTIN), max_size=2)), until=_inside(draw, start, end)[1]
        )
    return Contract(
        id=ident,
        provider=draw(st.sampled_from(provider_ids)),
        kind=kind,
        start=start,
        end=end,
        gpu_model=draw(st.none() | st.sampled_from(BUILTIN)),
        gpus=draw(st.integers(1, 10**6)) if kind is ContractKind.RESERVED else None,
        price_per_gpu_hour_usd=draw(prices) if kind is not ContractKind.COMMITMENT else draw(st.none() | prices),
        value_usd=draw(st.none() | usd),
        committed_spend_usd=draw(usd) if kind is ContractKind.COMMITMENT else None,
        right_of_first_refusal=rofr,
        exclusivity=excl,
        source=draw(st.just("") | texts),
    )


def _cluster(draw: st.DrawFn, ident: str, site: Site, buildings: list[Building], contracts: list[Contract]) -> Cluster:
    free = [b for b in buildings if b.site == site.id]
    building = draw(st.none() | st.sampled_from(free)) if free else None
    model = building.gpu_model if building else draw(st.sampled_from(BUILTIN))
    fitting = [k for k in contracts if k.gpu_model in (None, model) and k.kind is not ContractKind.RESERVED]
    contract = draw(st.none() | st.sampled_from(fitting)) if fitting else None
    online = (None, None) if building or contract else draw(st.sampled_from([(None, None), _term(draw)]))
    return Cluster(
        id=ident,
        site=site.id,
        building=building.id if building else None,
        gpu_model=model,
        gpus_per_node=draw(st.integers(1, 8)),
        nodes=1 if building else draw(st.integers(1, 100)),
        interconnect=draw(st.sampled_from(["infiniband", "nvlink-nvl72", "roce"])),
        price_per_gpu_hour_usd=draw(prices),
        contract=contract.id if contract else None,
        online_from=online[0],
        online_until=online[1],
        status=draw(st.sampled_from(ClusterStatus)),
    )


def _queues(draw: st.DrawFn, teams: list[Team], classes: list[PriorityClass]) -> list[Queue]:
    names = [c.name for c in classes]
    out = []
    for ident in _unique(draw, 3) if teams else []:
        allowed = draw(st.lists(st.sampled_from(names), unique=True, max_size=3)) if names else []
        models = draw(st.lists(st.sampled_from([*BUILTIN, ANY_GPU]), unique=True, max_size=3))
        quotas = [
            Quota(
                gpu_model=m,
                gpus=draw(st.integers(0 if k else 1, 10**6)),  # the first above 0: the queue can take a job
                borrowing_limit_gpus=draw(st.none() | st.integers(0, 10**6)),
            )
            for k, m in enumerate(models)
        ]
        out.append(
            Queue(
                id=ident,
                team=draw(st.sampled_from(teams)).id,
                cohort=draw(st.none() | ids),
                quotas=quotas,
                priority_classes=allowed,
                default_priority_class=draw(st.sampled_from(allowed)) if allowed and draw(st.booleans()) else None,
            )
        )
    return out


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    """A valid fleet: fleet_problems finds nothing in it."""
    provs = draw(providers())
    by_id = {p.id: p for p in provs}
    sites = [_site(draw, i, draw(st.sampled_from(list(by_id)))) for i in _unique(draw, 4)]
    owned = [s for s in sites if by_id[s.provider].kind is ProviderKind.OWNED]
    buildings = [_building(draw, i, draw(st.sampled_from(owned)).id) for i in (_unique(draw, 4) if owned else [])]
    contracts = [_contract(draw, i, list(by_id)) for i in _unique(draw, 4)]
    clusters = []
    used: set[str] = set()
    for ident in _unique(draw, 5) if sites else []:
        site = draw(st.sampled_from(sites))
        mine = [k for k in contracts if k.provider == site.provider]
        cluster = _cluster(draw, ident, site, [b for b in buildings if b.id not in used], mine)
        used.add(cluster.building or "")
        clusters.append(cluster)
    classes = [
        PriorityClass(name=n, value=draw(st.integers(0, 10**6)), preempts_lower=draw(st.booleans()))
        for n in _unique(draw, 3)
    ]
    if not classes or draw(st.booleans()):  # a fleet with queues needs a priority class
        classes = list(DEFAULT_PRIORITY_CLASSES)
    teams = [Team(id=i, name=draw(texts)) for i in _unique(draw, 3)]
    start, end = _term(draw)
    initial = draw(usd)
    budget = (
        Budget(initial_usd=initial, ceiling_usd=initial + draw(usd), start=start, end=end)
        if draw(st.booleans())
        else None
    )
    custom = [
        GpuModel(name=f"X{n}", bf16_dense_tflops=draw(st.floats(1, 1e4)), hbm_gib=80, tdp_w=draw(st.floats(1, 2000)))
        for n in range(draw(st.integers(0, 2)))
    ]
    return Fleet(
        name=draw(texts),
        description=draw(st.just("") | texts),
        as_of=draw(st.none() | days),
        gpu_models=custom,
        providers=provs,
        sites=sites,
        buildings=buildings,
        clusters=clusters,
        contracts=contracts,
        budget=budget,
        priority_classes=classes,
        teams=teams,
        queues=_queues(draw, teams, classes),
    )
