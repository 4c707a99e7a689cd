"""The fleet as arrays indexed by cluster, built once from a validated :class:`~stargate.domain.Fleet`.

Everything time-dependent is turned into seconds since ``epoch``: when a cluster comes online (its own
``online_from``, else its building's energisation date) and goes offline (the day after ``online_until``),
when contracts start and end, and how much power each site has energised. ``change_times`` lists every
such instant so a driver can wake the scheduler exactly then.

Site power cap at time *t* (W, facility side)::

    cap_w(site, t) = energised_IT_MW(site, t) * 1e6 * PUE(site)      (inf when the site is not limited)

and a cluster may run ``n`` more GPUs only while ``draw_w(site) + n * TDP_W * PUE <= cap_w(site, t)``.

Prices per GPU-hour (see :meth:`FleetIndex.prices`): on owned capacity the energy a GPU draws,
``energy(c) = TDP_W * PUE * energy_usd_per_mwh / 1e6`` rounded to the micro-dollar (capex is sunk); elsewhere the
active contract's price, else the cluster's list price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from stargate.domain import ContractKind, Fleet, ProviderKind
from stargate.domain.teams import ANY_GPU

if TYPE_CHECKING:
    from stargate.engine.spend import SpendMeter

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
    """The contract terms placement needs: kind, term in seconds, price, commitment."""

    id: str
    prepaid: bool
    start_s: float
    end_s: float
    price: float | None
    kind: ContractKind = ContractKind.ON_DEMAND
    committed: Decimal | None = None
    """USD to spend over the term (a commitment), else None."""
    price_usd: Decimal | None = None
    """``price`` exactly."""


def _energy_price(tdp_w: float, pue: float, usd_per_mwh: Decimal | None) -> Decimal | None:
    """USD per GPU-hour of energy: TDP W × PUE × USD per MWh / 1e6, to the micro-dollar (None: not priced)."""
    if usd_per_mwh is None:
        return None
    usd = Decimal(repr(float(tdp_w))) * Decimal(repr(float(pue))) * usd_per_mwh / Decimal(1_000_000)
    return usd.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)


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
                c.kind,
                c.committed_spend_usd if c.kind is ContractKind.COMMITMENT else None,
                c.price_per_gpu_hour_usd,
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
        self.list_price_usd = [c.price_per_gpu_hour_usd for c in cs]
        self.energy_usd: list[Decimal | None] = [
            _energy_price(catalogue[c.gpu_model].tdp_w, sites[c.site].pue, sites[c.site].energy_usd_per_mwh)
            if bool(self.owned[i]) and c.gpu_model in catalogue
            else None
            for i, c in enumerate(cs)
        ]
        """Cluster → the energy price of a GPU-hour, USD (owned clusters at a site with an energy price; else None)."""
        self.energy = [0.0 if e is None else float(e) for e in self.energy_usd]
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
        features = {i: e.features() for i, e in fleet.executor_configs().items()}
        executor_of = fleet.cluster_executor_ids()
        self.features_of: list[frozenset[str]] = [features.get(executor_of[c.id], frozenset()) for c in cs]
        """Cluster → what its executor can run ('commands', 'images'; empty for an executor the fleet does not
        declare)."""

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

    def charge_terms(self, c: int, t: float) -> tuple[Decimal, str | None]:
        """What a run that starts on cluster ``c`` at ``t`` is charged per GPU-hour (USD, exact) and the contract it
        burns: the energy price on owned capacity whose site prices energy, else the active contract's price, else
        the list price."""
        k = self.active_contract(c, t)
        energy = self.energy_usd[c]
        if energy is not None:
            return energy, k.id if k is not None else None
        if k is not None and k.price_usd is not None:
            return k.price_usd, k.id
        return self.list_price_usd[c], k.id if k is not None else None

    def commitment_of(self, c: int) -> str | None:
        """The commitment contract cluster ``c`` is bought under (one with a committed amount), else None."""
        cid = self.contract_of[c]
        k = self.contracts.get(cid) if cid is not None else None
        return cid if k is not None and k.committed is not None and not bool(self.owned[c]) else None

    def prices(self, t: float, meter: SpendMeter | None = None) -> tuple[list[float], list[str | None], FloatArray]:
        """At ``t``: price per GPU-hour charged per cluster, the contract burnt, and the placement rank.

        ``rank(c) = tier(c) * TIER_WEIGHT + marginal(c) - bonus(c)``. Tier 0 is owned capacity or an active reserved
        or commitment contract, tier 1 everything else (pay-per-use). The marginal price per GPU-hour: owned, its
        energy price (0 when its site prices no energy); an active reserved contract, 0; an active commitment, 0
        while its spend to date (``meter``; None: nothing spent) is below the committed amount, its price from the
        instant it reaches it; else the charged price. ``bonus`` (use it or lose it) is ``price * S / R`` on an
        active commitment not used up, with ``R`` the commitment left to spend and ``S`` the part of it projected
        to be lost at the end of the term at the burn rate to date (see :meth:`commitment_rank`).
        """
        charged, burnt, rank = [], [], []
        for c in range(self.n):
            k = self.active_contract(c, t)
            price = k.price if k is not None and k.price is not None else float(self.list_price[c])
            burnt.append(k.id if k is not None else None)
            if bool(self.owned[c]):
                energy = self.energy[c]
                charged.append(price if self.energy_usd[c] is None else energy)
                rank.append(energy)
                continue
            charged.append(price)
            if k is None or not k.prepaid:
                rank.append(TIER_WEIGHT + price)
            elif k.kind is ContractKind.COMMITMENT and k.committed is not None:
                rank.append(self._commitment_rank(k, price, t, meter))
            else:
                rank.append(0.0)
        return charged, burnt, np.array(rank, dtype=np.float64)

    def commitment_rank(self, c: int, t: float, meter: SpendMeter | None) -> float:
        """The placement rank of commitment cluster ``c`` at ``t`` (as :meth:`prices` computes it)."""
        k = self.active_contract(c, t)
        price = k.price if k is not None and k.price is not None else float(self.list_price[c])
        if k is None:
            return TIER_WEIGHT + price
        if not k.prepaid or k.committed is None:
            return 0.0 if k.prepaid else TIER_WEIGHT + price
        return self._commitment_rank(k, price, t, meter)

    @staticmethod
    def _commitment_rank(k: ContractInfo, price: float, t: float, meter: SpendMeter | None) -> float:
        """``marginal - price * S / R`` for active commitment ``k`` at ``t``::

        spent = spend to date (0 without a meter); R = committed - spent
        marginal = price when spent >= committed (exact, from that instant on), else 0
        burn = spent / (t - term start)   (0 at the start);   S = max(0, R - burn * (term end - t))
        """
        committed = k.committed
        assert committed is not None
        if meter is None:
            return -price if committed > 0 else price
        if meter.reached(k.id, committed, t):
            return price
        spent = meter.estimate(k.id, t)
        left = float(committed) - spent
        if left <= 0.0:  # within the estimate's milli-dollars of the amount, not reached yet: all of it is used
            return 0.0
        elapsed = t - k.start_s
        burn = spent / elapsed if elapsed > 0.0 else 0.0
        short = max(0.0, left - burn * (k.end_s - t))
        return -price * short / left

    def compatible(
        self,
        models: tuple[str, ...],
        providers: tuple[str, ...],
        regions: tuple[str, ...],
        needs: frozenset[str] = frozenset(),
    ) -> BoolArray:
        """Clusters a job may ever use given its GPU models, providers and regions (empty tuple: any) and what it
        needs of their executor (empty: nothing)."""
        ok = np.ones(self.n, dtype=bool)
        if needs:
            ok &= np.array([needs <= f for f in self.features_of], dtype=bool)
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
