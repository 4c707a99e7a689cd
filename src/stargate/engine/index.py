"""The fleet as arrays indexed by cluster, built once from a validated :class:`~stargate.domain.Fleet`.

Everything time-dependent is turned into seconds since ``epoch``: when a cluster comes online (its own
``online_from``, else its building's energisation date) and goes offline (the day after ``online_until``),
when contracts start and end, and how much power each site has energised. ``change_times`` lists every
such instant so a driver can wake the scheduler exactly then.

Site power cap at time *t* (W, facility side)::

    cap_w(site, t) = energised_IT_MW(site, t) * 1e6 * PUE(site)      (inf when the site is not limited)

and a cluster may run ``n`` more GPUs only while ``draw_w(site) + n * TDP_W * PUE <= cap_w(site, t)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from stargate.domain import ContractKind, Fleet, ProviderKind
from stargate.domain.teams import ANY_GPU

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TIER_WEIGHT = 1e6
"""Score weight of a cluster's tier (0: prepaid or owned, 1: pay-per-use); larger than any price."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue's admission settings: quotas per GPU class (nominal, borrowing limit) and its cohort."""

    name: str
    quotas: dict[str, tuple[int, float]]
    """GPU model (or '*') → (nominal GPUs, borrowing limit GPUs; inf when unlimited)."""
    cohort: str | None


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """The contract terms placement needs: kind, term in seconds, price."""

    id: str
    prepaid: bool
    start_s: float
    end_s: float
    price: float | None


def _day_s(day: date, epoch: datetime) -> float:
    return (datetime(day.year, day.month, day.day, tzinfo=UTC) - epoch).total_seconds()


class FleetIndex:
    """Read-only arrays over clusters and sites, plus queue and contract tables."""

    def __init__(self, fleet: Fleet, epoch: datetime) -> None:
        """Build the index; prefer :meth:`from_fleet`."""
        if epoch.tzinfo is None:
            epoch = epoch.replace(tzinfo=UTC)
        self.epoch = epoch
        self.fleet = fleet
        self._build_tables(fleet)
        self._build_clusters(fleet)
        self._build_power(fleet)
        self.change_times = self._change_times()

    @classmethod
    def from_fleet(cls, fleet: Fleet, epoch: datetime) -> FleetIndex:
        """Index ``fleet`` with all times as seconds since ``epoch`` (a naive epoch is taken as UTC)."""
        return cls(fleet, epoch)

    # -- construction -------------------------------------------------------------------------------------
    def _build_tables(self, fleet: Fleet) -> None:
        self.providers = [p.id for p in fleet.providers]
        self.provider_kind = {p.id: p.kind for p in fleet.providers}
        self.sites = [s.id for s in fleet.sites]
        self.site_ix = {s: i for i, s in enumerate(self.sites)}
        self.regions = sorted({s.region for s in fleet.sites})
        self.models = sorted({c.gpu_model for c in fleet.clusters})
        self.queues = [
            QueueInfo(
                q.id,
                {
                    k.gpu_model: (k.gpus, math.inf if k.borrowing_limit_gpus is None else float(k.borrowing_limit_gpus))
                    for k in q.quotas
                },
                q.cohort,
            )
            for q in fleet.queues
        ]
        self.queue_ix = {q.name: i for i, q in enumerate(self.queues)}
        self.contracts = {
            c.id: ContractInfo(
                c.id,
                c.kind in (ContractKind.RESERVED, ContractKind.COMMITMENT),
                _day_s(c.start, self.epoch),
                _day_s(c.end + timedelta(days=1), self.epoch),
                None if c.price_per_gpu_hour_usd is None else float(c.price_per_gpu_hour_usd),
            )
            for c in fleet.contracts
        }

    def _build_clusters(self, fleet: Fleet) -> None:
        cs = fleet.clusters
        sites = {s.id: s for s in fleet.sites}
        buildings = {b.id: b for b in fleet.buildings}
        catalogue = fleet.catalogue()
        self.cluster_ids = [c.id for c in cs]
        self.cluster_ix = {c: i for i, c in enumerate(self.cluster_ids)}
        self.n = len(cs)
        self.total: IntArray = np.array([c.gpus for c in cs], dtype=np.int64)
        self.gpus_per_node = [c.gpus_per_node for c in cs]
        self.model_of = [c.gpu_model for c in cs]
        self.site_of: IntArray = np.array([self.site_ix[c.site] for c in cs], dtype=np.int64)
        self.provider_of = [sites[c.site].provider for c in cs]
        self.region_of = [sites[c.site].region for c in cs]
        self.owned: BoolArray = np.array(
            [self.provider_kind.get(p) is ProviderKind.OWNED for p in self.provider_of], dtype=bool
        )
        self.list_price: FloatArray = np.array([float(c.price_per_gpu_hour_usd) for c in cs], dtype=np.float64)
        self.contract_of = [c.contract for c in cs]
        self.w_per_gpu: FloatArray = np.array(
            [catalogue[c.gpu_model].tdp_w * sites[c.site].pue if c.gpu_model in catalogue else 0.0 for c in cs],
            dtype=np.float64,
        )
        on, off = [], []
        for c in cs:
            start = c.online_from
            if start is None and c.building is not None and c.building in buildings:
                start = buildings[c.building].energized_on()
            on.append(-math.inf if start is None else _day_s(start, self.epoch))
            off.append(math.inf if c.online_until is None else _day_s(c.online_until + timedelta(days=1), self.epoch))
        self.on_s: FloatArray = np.array(on, dtype=np.float64)
        self.off_s: FloatArray = np.array(off, dtype=np.float64)
        self.initially_down: BoolArray = np.array([not c.status.accepts_work() for c in cs], dtype=bool)

    def _build_power(self, fleet: Fleet) -> None:
        """Per site, the facility power cap as a step function of time: sorted (t, cap_w) pairs."""
        self.pue = [s.pue for s in fleet.sites]
        self.power_steps: list[list[tuple[float, float]]] = []
        for s in fleet.sites:
            days = sorted({b.energized_on() for b in fleet.buildings if b.site == s.id})
            steps: list[tuple[float, float]] = []
            base = fleet.energized_it_mw(s.id, date.min)
            steps.append((-math.inf, math.inf if base is None else base * 1e6 * s.pue))
            for d in days:
                mw = fleet.energized_it_mw(s.id, d)
                steps.append((_day_s(d, self.epoch), math.inf if mw is None else mw * 1e6 * s.pue))
            self.power_steps.append(steps)

    def _change_times(self) -> list[float]:
        times = set(self.on_s.tolist()) | set(self.off_s.tolist())
        for k in self.contracts.values():
            times |= {k.start_s, k.end_s}
        for steps in self.power_steps:
            times |= {t for t, _ in steps}
        return sorted(t for t in times if math.isfinite(t))

    # -- time-dependent views -----------------------------------------------------------------------------
    def online(self, t: float) -> BoolArray:
        """Clusters inside their online window at ``t``."""
        on: BoolArray = (self.on_s <= t) & (t < self.off_s)
        return on

    def power_cap_w(self, t: float) -> FloatArray:
        """Facility power cap per site at ``t``, W (inf when not limited)."""
        caps = [next(cap for ts, cap in reversed(steps) if ts <= t) for steps in self.power_steps]
        return np.array(caps, dtype=np.float64)

    def active_contract(self, c: int, t: float) -> ContractInfo | None:
        """The contract that covers cluster ``c`` at ``t``, if any."""
        cid = self.contract_of[c]
        k = self.contracts.get(cid) if cid is not None else None
        return k if k is not None and k.start_s <= t < k.end_s else None

    def prices(self, t: float) -> tuple[list[float], list[str | None], FloatArray]:
        """At ``t``: price per GPU-hour charged per cluster, the contract burnt, and the placement rank.

        ``rank(c) = tier(c) * TIER_WEIGHT + marginal_price(c)`` where tier 0 is prepaid (an active reserved or
        commitment contract) or owned capacity, tier 1 is everything else, and the marginal price is 0 for
        prepaid capacity and the charged price otherwise.
        """
        charged, burnt, rank = [], [], []
        for c in range(self.n):
            k = self.active_contract(c, t)
            price = k.price if k is not None and k.price is not None else float(self.list_price[c])
            prepaid = k is not None and k.prepaid
            tier = 0 if prepaid or bool(self.owned[c]) else 1
            charged.append(price)
            burnt.append(k.id if k is not None else None)
            rank.append(tier * TIER_WEIGHT + (0.0 if prepaid else price))
        return charged, burnt, np.array(rank, dtype=np.float64)

    def compatible(self, models: tuple[str, ...], providers: tuple[str, ...], regions: tuple[str, ...]) -> BoolArray:
        """Clusters a job may ever use given its GPU models, providers and regions (empty tuple: any)."""
        ok = np.ones(self.n, dtype=bool)
        if models:
            ok &= np.array([m in models for m in self.model_of], dtype=bool)
        if providers:
            ok &= np.array([p in providers for p in self.provider_of], dtype=bool)
        if regions:
            ok &= np.array([r in regions for r in self.region_of], dtype=bool)
        return ok

    def quota_models(self, queue: int) -> tuple[str, ...] | None:
        """GPU models a queue's quotas allow (None: any, when it has no quotas or a '*' quota)."""
        quotas = self.queues[queue].quotas
        if not quotas or ANY_GPU in quotas:
            return None
        return tuple(sorted(quotas))
