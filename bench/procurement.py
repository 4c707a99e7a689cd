"""Procurement decision benchmark: prints latency figures and the ratio against a naive baseline run alongside.

A decision is what a scheduler cycle (server) or a decide instant (simulator) asks of the procurement engine: a
capacity request raised and its market step (validation, the cheapest feasible quote, exclusivity, the budget
check, the award and its events), :meth:`ProcurementBook.raise_request` on a request no clause covers. The market
holds P providers × Q quotes each (default 50 × 500 = 25,000 quotes) over 5 GPU models, with random prices, lead
times, validity windows and size limits, and a budget large enough that every award fits.

- **indexed**: the engine as shipped (quotes per model sorted by price; the scan stops at the first price that
  cannot win).
- **naive**: the same book with the search replaced by a filter and sort of every quote per decision
  (``QuoteIndex.naive_cheapest``), everything else identical.

Scenarios: ``open`` (no exclusivity) and ``exclusive`` (an exclusivity clause keeps every provider but one out of
GB200: the indexed scan walks past every cheaper excluded quote and records an ``excluded`` event for each, its
worst case), and ``rofr`` (a first-refusal clause covers the request: raise with offer and benchmark, then the
holder declines and the market step runs: two engine calls). Goal: one decision ≤ 100 ms (p95). Peak memory is
measured with tracemalloc over building the book and running the decisions.

    .venv/bin/python bench/procurement.py                  # 50 providers × 500 quotes, 100 decisions per path
    .venv/bin/python bench/procurement.py --providers 10 --quotes 100 --decisions 50
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from stargate.domain import (
    Budget,
    Contract,
    ContractKind,
    Exclusivity,
    Fleet,
    MatchRule,
    Provider,
    ProviderKind,
    RightOfFirstRefusal,
    Site,
)
from stargate.engine import CapacityRequest, ProcurementBook, Quote
from stargate.engine.procurement import offer_id_for
from stargate.engine.procurement_market import QuoteIndex

MODELS = ("H100-SXM", "H200", "B200", "GB200", "MI300X")
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
GOAL_S = 0.100


def build_fleet(providers: int, scenario: str) -> Fleet:
    """P cloud providers with one site each; an exclusivity or first-refusal clause per scenario; a 10^14 budget."""
    ps = [Provider(id=f"p{i:03d}", name=f"provider {i}", kind=ProviderKind.CLOUD) for i in range(providers)]
    sites = [Site(id=f"{p.id}-us", provider=p.id, region="us") for p in ps]
    contracts = []
    if scenario == "exclusive":
        contracts.append(
            Contract(
                id="last-exclusive",
                provider=ps[-1].id,
                kind=ContractKind.ON_DEMAND,
                start=date(2025, 1, 1),
                end=date(2030, 12, 31),
                price_per_gpu_hour_usd=Decimal(1),
                exclusivity=Exclusivity(gpu_models=["GB200"], until=date(2030, 12, 31)),
            )
        )
    if scenario == "rofr":
        contracts.append(
            Contract(
                id="holder-commitment",
                provider=ps[0].id,
                kind=ContractKind.COMMITMENT,
                start=date(2025, 1, 1),
                end=date(2030, 12, 31),
                committed_spend_usd=Decimal(0),
                right_of_first_refusal=RightOfFirstRefusal(
                    holder=ps[0].id,
                    response_window_days=30,
                    match_rule=MatchRule.MATCH_PRICE_AND_DATE,
                    valid_from=date(2025, 1, 1),
                    valid_until=date(2030, 12, 31),
                ),
            )
        )
    budget = Budget(
        initial_usd=Decimal(10**14), ceiling_usd=Decimal(10**14), start=date(2025, 1, 1), end=date(2030, 12, 31)
    )
    return Fleet(name="bench", providers=ps, sites=sites, contracts=contracts, budget=budget)


def make_quotes(providers: int, per_provider: int, rng: random.Random) -> list[Quote]:
    """Random quotes: price 2–30 USD per GPU-hour (cents), lead 0–180 days, a third limited in size, a quarter not
    valid on the decision days."""
    out = []
    for i in range(providers):
        for j in range(per_provider):
            start = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 500))
            valid_until = None if rng.random() < 0.5 else start + timedelta(days=rng.randrange(30, 900))
            out.append(
                Quote(
                    id=f"q{i:03d}-{j:04d}",
                    provider=f"p{i:03d}",
                    site=f"p{i:03d}-us",
                    gpu_model=rng.choice(MODELS),
                    gpus_per_node=rng.choice((4, 8, 72)),
                    price=Decimal(rng.randrange(200, 3000)) / 100,
                    max_gpus=rng.choice((None, None, rng.randrange(500, 50_000))),
                    lead_time_days=rng.randrange(0, 180),
                    valid_from=start,
                    valid_until=valid_until,
                    source="api",
                )
            )
    return out


def make_requests(n: int, rng: random.Random, scenario: str) -> list[CapacityRequest]:
    """Requests an hour apart, 1,000–20,000 GPUs, for a year (GB200 only in the exclusive scenario)."""
    return [
        CapacityRequest(
            id=f"r{k:05d}",
            gpu_model="GB200" if scenario == "exclusive" else rng.choice(MODELS),
            gpus=rng.randrange(1000, 20_000),
            start=(T0 + timedelta(hours=k)).date(),
            term_days=365,
            raised_by="pressure",
            actor="bench",
            at=T0 + timedelta(hours=k),
            reason="bench",
        )
        for k in range(n)
    ]


def naive(index: QuoteIndex) -> None:
    """Make ``index`` answer by filtering and sorting every quote (the baseline)."""

    def cheapest(*args: Any) -> tuple[Any, list[Any]]:
        return index.naive_cheapest(*args), []

    index.cheapest = cheapest  # type: ignore[method-assign]


def run(
    fleet: Fleet, quotes: Callable[[], list[Quote]], requests: list[CapacityRequest], scenario: str, baseline: bool
) -> tuple[list[float], ProcurementBook]:
    """Decision latencies, s, and the book."""
    book = ProcurementBook(fleet)
    for q in quotes():
        book.add_quote(q, T0 - timedelta(days=1))
    if baseline:
        naive(book._index)
    times = []
    for req in requests:
        t = time.perf_counter()
        book.raise_request(req)
        if scenario == "rofr":
            book.respond(offer_id_for(req.id), False, req.at + timedelta(minutes=1), "holder")
        times.append(time.perf_counter() - t)
    return times, book


def peak_memory(*args: Any) -> int:
    """Peak traced memory of :func:`run`, bytes: the quotes made, the book built, the decisions run (a separate
    run: tracing slows the timed one)."""
    tracemalloc.start()
    run(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def describe(label: str, times: list[float]) -> tuple[float, float]:
    """Print and return the median and p95 latency, s."""
    med = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 20 else max(times)
    print(f"  {label:<8} median {med * 1e3:8.3f} ms   p95 {p95 * 1e3:8.3f} ms   max {max(times) * 1e3:8.3f} ms")
    return med, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=50)
    parser.add_argument("--quotes", type=int, default=500, help="quotes per provider")
    parser.add_argument("--decisions", type=int, default=100, help="decisions per path and scenario")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"procurement decisions: {args.providers} providers × {args.quotes} quotes = "
        f"{args.providers * args.quotes:,} quotes, {args.decisions} decisions per path; "
        f"load average {load[0]:.2f} on {os.cpu_count()} cores"
    )
    worst_p95 = 0.0
    for scenario in ("open", "exclusive", "rofr"):
        rng = random.Random(args.seed)
        fleet = build_fleet(args.providers, scenario)
        requests = make_requests(args.decisions, rng, scenario)

        def quotes() -> list[Quote]:
            return make_quotes(args.providers, args.quotes, random.Random(args.seed))

        print(f"{scenario}:")
        results: dict[str, tuple[float, float]] = {}
        books: dict[str, ProcurementBook] = {}
        for label, baseline in (("indexed", False), ("naive", True)):
            times, book = run(fleet, quotes, requests, scenario, baseline)
            results[label] = describe(label, times)
            books[label] = book
            peak = peak_memory(fleet, quotes, requests[: max(1, len(requests) // 4)], scenario, baseline)
            print(f"  {'':<8} peak memory {peak / 2**20:7.1f} MiB (quotes, book, a quarter of the decisions)")
        same = _same_awards(books["indexed"], books["naive"])
        ratio = results["naive"][0] / results["indexed"][0]
        awarded = len(books["indexed"].awards)
        events = len(books["indexed"].events)
        print(
            f"  naive / indexed median: {ratio:.1f}×; {awarded}/{args.decisions} awarded, {events:,} events; "
            f"same awards on both paths: {same}"
        )
        worst_p95 = max(worst_p95, results["indexed"][1])
    verdict = "met" if worst_p95 <= GOAL_S else "MISSED"
    print(f"goal: one decision ≤ {GOAL_S * 1e3:.0f} ms (p95, every scenario): {verdict} ({worst_p95 * 1e3:.3f} ms)")


def _same_awards(a: ProcurementBook, b: ProcurementBook) -> bool:
    key: Callable[[ProcurementBook], list[tuple[Any, ...]]] = lambda book: sorted(  # noqa: E731
        (w.request_id, w.quote_id, w.start, w.cost_usd) for w in book.awards.values()
    )
    return key(a) == key(b)


if __name__ == "__main__":
    main()
