"""Ledger benchmark: roll-ups and FOCUS export of N runs (default 1,000,000), against a naive baseline.

Goal: the ledger of 1,000,000 runs built, rolled up by every key (run, job, queue, team, contract, provider, day)
and exported as FOCUS 1.0 CSV in at most 10 s, with at most 1 GB peak RSS.

Each side runs in a fresh child process (so each peak RSS is its own), on the same seeded synthetic runs: teams,
queues, providers, contracts, clusters and GPU models from small sets, gangs of 1 to 4,096 GPUs, durations from
minutes to days (60 % under an hour, 30 % 1 to 6 h, 10 % 6 h to 3 days: about 1.2 line items per run, as runs
crossing a UTC midnight are split into daily line items). Making the runs
is not timed. Timed:

1. **Stargate**: ``Ledger(runs)`` (exact Decimal/integer money), ``total()`` and ``by(key)`` for every key, then
   ``write_focus`` streaming the CSV to a file.
2. **Naive baseline**: the same work as one usually writes it: float costs (``price × gpus × hours``) split at
   midnights, roll-ups into dicts of floats, and ``csv.DictWriter`` writing one dict per row with the same columns.

Prints runs/s, line items, time, CPU time and peak RSS of each, and the ratio of their throughputs. The machine
is shared: the load average is printed before and after.

    .venv/bin/python bench/ledger.py                        # 1,000,000 runs, the baseline on 1,000,000 too
    .venv/bin/python bench/ledger.py --runs 200000 --baseline-runs 100000 --out /tmp/focus.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from stargate.costs import EXPORT_COLUMNS, write_focus
from stargate.engine.ledger import ROLLUP_KEYS, Ledger, RunCharge

GOAL_S = 10.0
GOAL_RSS_MB = 1024.0
EPOCH = datetime(2027, 1, 1, tzinfo=UTC)


def make_runs(n: int, seed: int = 7) -> list[RunCharge]:
    """``n`` synthetic runs over 90 days (seeded)."""
    rng = random.Random(seed)
    providers = ["oracle", "coreweave", "microsoft", "self", "lambda"]
    clusters = [
        (f"{p}-c{i}", p, f"region-{i % 4}", m) for p in providers for i, m in enumerate(["GB200", "H100", "H200"])
    ]
    contracts = {p: [f"{p}-2027", f"{p}-commit", None] for p in providers}
    prices = [Decimal(p) for p in ("2.10", "3.35", "4.25", "6.20", "10.50", "0")]
    price_of = {(c[0], k): rng.choice(prices) for c in clusters for k in contracts[c[1]]}  # a contract's price
    teams = [f"team-{i}" for i in range(12)]
    queues = ["training", "inference", "eval", "research", "batch"]
    sizes = [1, 2, 4, 8, 8, 16, 64, 256, 1024, 4096]
    runs = []
    for i in range(n):
        cluster, provider, region, model = rng.choice(clusters)
        start = EPOCH + timedelta(microseconds=rng.randrange(90 * 86_400_000_000))
        kind = rng.random()  # 60 % short (1 min to 1 h), 30 % medium (1 to 6 h), 10 % long (6 h to 3 days)
        seconds = (
            rng.uniform(60, 3600)
            if kind < 0.6
            else rng.uniform(3600, 6 * 3600)
            if kind < 0.9
            else rng.uniform(6 * 3600, 3 * 86400)
        )
        contract = rng.choice(contracts[provider])
        price = price_of[cluster, contract]
        runs.append(
            RunCharge(
                run_id=f"run-{i}",
                job_id=f"job-{i // 2}",
                queue=rng.choice(queues),
                team=rng.choice(teams),
                provider=provider,
                contract=contract,
                cluster=cluster,
                region=region,
                gpu_model=model,
                gpus=rng.choice(sizes),
                start=start,
                end=start + timedelta(seconds=round(seconds, 3)),
                price=price,
                list_price=price + Decimal("1.25"),
            )
        )
    return runs


def stargate(runs: list[RunCharge], out_path: str, phases: dict[str, float]) -> int:
    """The timed work, Stargate's way; returns the line items written (``phases``: CPU seconds of each step)."""
    t = time.process_time()
    ledger = Ledger(runs)
    phases["ledger"] = time.process_time() - t
    t = time.process_time()
    ledger.total()
    for key in ROLLUP_KEYS:
        ledger.by(key)
    phases["roll-ups"] = time.process_time() - t
    t = time.process_time()
    with open(out_path, "w", newline="", encoding="utf-8") as out:
        rows = write_focus(ledger, out, billing_account="bench")
    phases["export"] = time.process_time() - t
    return rows


def naive(runs: list[RunCharge], out_path: str, phases: dict[str, float]) -> int:
    """The timed work, the naive way: floats, dict rows, csv.DictWriter."""
    day = timedelta(days=1)
    items = []
    for r in runs:
        cur = r.start
        while True:
            midnight = datetime.combine(cur.date() + day, datetime.min.time(), UTC)
            stop = min(midnight, r.end)
            hours = (stop - cur).total_seconds() / 3600
            items.append((r, cur, stop, hours, float(r.price) * r.gpus * hours, float(r.list_price) * r.gpus * hours))
            if stop >= r.end:
                break
            cur = stop
    sums: dict[str, dict[str, float]] = {k: {} for k in ROLLUP_KEYS}
    attrs = {"run": "run_id", "job": "job_id", "queue": "queue", "team": "team", "contract": "contract"}
    attrs["provider"] = "provider"
    for r, s, _e, _h, cost, _l in items:
        for key in ROLLUP_KEYS:
            k = s.date().isoformat() if key == "day" else (getattr(r, attrs[key]) or "")
            sums[key][k] = sums[key].get(k, 0.0) + cost
    with open(out_path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS))
        writer.writeheader()
        for r, s, e, hours, cost, list_cost in items:
            d = s.date()
            month = d.replace(day=1)
            writer.writerow(
                {
                    "AvailabilityZone": "",
                    "BilledCost": f"{cost:.6f}",
                    "BillingAccountId": "bench",
                    "BillingAccountName": "bench",
                    "BillingCurrency": "USD",
                    "BillingPeriodEnd": (month + timedelta(days=32)).replace(day=1).isoformat() + "T00:00:00Z",
                    "BillingPeriodStart": month.isoformat() + "T00:00:00Z",
                    "ChargeCategory": "Usage",
                    "ChargeDescription": f"{r.gpus} {r.gpu_model} GPUs on cluster {r.cluster}",
                    "ChargeFrequency": "Usage-Based",
                    "ChargePeriodEnd": (d + timedelta(days=1)).isoformat() + "T00:00:00Z",
                    "ChargePeriodStart": d.isoformat() + "T00:00:00Z",
                    "ConsumedQuantity": f"{hours * r.gpus:.6f}",
                    "ConsumedUnit": "GPU-Hours",
                    "ContractedCost": f"{cost:.6f}",
                    "ContractedUnitPrice": str(r.price),
                    "EffectiveCost": f"{cost:.6f}",
                    "InvoiceIssuerName": r.provider,
                    "ListCost": f"{list_cost:.6f}",
                    "ListUnitPrice": str(r.list_price),
                    "PricingCategory": "Standard",
                    "PricingQuantity": f"{hours * r.gpus:.6f}",
                    "PricingUnit": "GPU-Hours",
                    "ProviderName": r.provider,
                    "PublisherName": r.provider,
                    "RegionId": r.region,
                    "RegionName": r.region,
                    "ResourceId": r.run_id,
                    "ResourceName": r.job_id,
                    "ResourceType": "GPU job run",
                    "ServiceCategory": "AI and Machine Learning",
                    "ServiceName": "GPU compute",
                    "SkuId": r.gpu_model,
                    "SkuPriceId": f"{r.cluster}:{r.contract or 'list'}:{r.price}",
                    "SubAccountId": r.team,
                    "SubAccountName": r.team,
                    "Tags": json.dumps({"stargate/queue": r.queue, "stargate/team": r.team}),
                    "x_RunId": r.run_id,
                    "x_JobId": r.job_id,
                    "x_Queue": r.queue,
                    "x_Team": r.team,
                    "x_Contract": r.contract or "",
                    "x_Cluster": r.cluster,
                    "x_GpuModel": r.gpu_model,
                    "x_Gpus": r.gpus,
                    "x_UsageStart": s.isoformat(),
                    "x_UsageEnd": e.isoformat(),
                }
            )
    return len(items)


def child(side: str, n: int, out_path: str) -> None:
    """Run one side in this process and print its figures as JSON."""
    runs = make_runs(n)
    rss_runs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    rows = (stargate if side == "stargate" else naive)(runs, out_path, phases)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(
        json.dumps(
            {
                "runs": n,
                "rows": rows,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_after_making_runs_mb": rss_runs,
                "bytes": os.path.getsize(out_path),
                "phases_cpu_s": phases,
            }
        )
    )


def run_side(side: str, n: int, out_path: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", side, "--runs", str(n), "--out", out_path],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--baseline-runs", type=int, default=None, help="runs for the naive side (default: --runs)")
    parser.add_argument("--out", default=None, help="CSV path (default: a temporary file, deleted)")
    parser.add_argument("--child", choices=["stargate", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or str(Path(tmp) / "focus.csv")
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        ours = run_side("stargate", args.runs, out)
        base = run_side("naive", args.baseline_runs or args.runs, str(Path(tmp) / "naive.csv"))
        print(f"load average after:  {os.getloadavg()[0]:.2f}")
    for name, r in (("Stargate (exact, streamed)", ours), ("naive (float, DictWriter)", base)):
        print(
            f"{name:<27} {r['runs']:>9,.0f} runs {r['rows']:>9,.0f} rows  {r['wall_s']:6.2f} s "
            f"(CPU {r['cpu_s']:6.2f} s)  {r['runs'] / r['wall_s']:>9,.0f} runs/s  peak RSS {r['peak_rss_mb']:6,.0f} MB "
            f"(runs alone {r['rss_after_making_runs_mb']:,.0f} MB)  CSV {r['bytes'] / 1e6:,.0f} MB"
        )
    print("Stargate CPU by step: " + ", ".join(f"{k} {v:.2f} s" for k, v in ours["phases_cpu_s"].items()))
    ratio = (ours["runs"] / ours["wall_s"]) / (base["runs"] / base["wall_s"])
    print(f"throughput ratio Stargate / naive: {ratio:.2f}x")
    if ours["runs"] < 1_000_000:
        print("goal: checked at 1,000,000 runs (the default)")
        return
    print(
        f"goal (1,000,000 runs in <= {GOAL_S:.0f} s, <= {GOAL_RSS_MB:,.0f} MB peak RSS): "
        f"time {'met' if ours['wall_s'] <= GOAL_S else 'MISSED'} ({ours['wall_s']:.1f} s wall, "
        f"{ours['cpu_s']:.1f} s CPU), memory {'met' if ours['peak_rss_mb'] <= GOAL_RSS_MB else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
