"""Write examples/stargate-2025/workload.csv: a small synthetic workload for the stargate-2025 fleet whose demand
surges past contracted supply, so that persistent queue pressure raises capacity requests both while Microsoft's
right of first refusal is valid (before 2025-10-28) and after it ended.

Run from the repository root (the output is deterministic: a fixed seed, no clock):

    .venv/bin/python examples/stargate-2025/make_workload.py        # writes examples/stargate-2025/workload.csv

The workload is synthetic (policy, not facts). Each phase asks for a target number of GPUs busy at once of one GPU
model (``target_gpus``) with jobs of one size: arrivals form a Poisson process whose rate keeps that many GPUs
busy on average (rate = target ÷ (GPUs per job × mean run time)); run times are drawn ±25 % around the mean.
The supply it surges past (GPUs online, from the fleet files; in brackets what 7,200-GPU jobs can use, since a job
runs within one cluster):

- GB200 until 2025-09-25: Abilene b1 49,968 + CoreWeave 8,640 + OCI 4,608 = 63,216 (50,400: 6 jobs in b1, 1 at
  CoreWeave); from 2025-09-30 126,696 (100,800, with CoreWeave's 14,112 and Abilene b2); from 2025-10-28 273,576
  (244,800, with Azure's 146,880).
- H100: Azure 100,000 + CoreWeave 44,080 + OCI 8,192 = 152,272 throughout (the serving load stays below it).

Surges: GB200 from 2025-07-15 (≈ 70,000 GPUs asked for: pressure while the clause is valid) and from 2025-11-15
(≈ 320,000 against 244,800 plus what the first surge bought: pressure after the clause ended).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 2025
OUT = Path(__file__).resolve().parent / "workload.csv"
DAY = 86_400.0


@dataclass(frozen=True)
class Phase:
    """Jobs of one shape arriving between two instants at the rate that keeps ``target_gpus`` busy."""

    name: str
    queue: str
    gpu_model: str
    priority_class: str
    begin: datetime
    end: datetime
    target_gpus: int
    gpus: int
    mean_days: float
    kind: str


PHASES_TABLE = """
name           queue              gpu_model  class       begin       end         target  gpus  days  kind
train-base     research-training  GB200      research    2025-07-01  2025-07-15  40000   7200  16.0  train
train-surge-1  research-training  GB200      research    2025-07-15  2025-09-15  70000   7200  16.0  train
train-mid      research-training  GB200      research    2025-09-15  2025-11-15  60000   7200  16.0  train
train-surge-2  research-training  GB200      research    2025-11-15  2026-01-15  320000  7200  16.0  train
train-tail     research-training  GB200      research    2026-01-15  2026-02-15  100000  7200  16.0  train
serve          product-inference  H100-SXM   production  2025-10-01  2026-02-15  40000   8000  14.0  serve
"""
"""The phases. class: the jobs' priority class; target: GPUs busy at once; days: mean run time. GB200 research
training asks for whole NVL72 racks (7,200 GPUs = 100 racks, then 14,400), H100 serving and batch evaluation for
1,000 nodes of 8 (8,000 GPUs). Dates are UTC midnights; a phase ends before ``end``."""


def phases() -> list[Phase]:
    """The rows of :data:`PHASES_TABLE`."""
    lines = PHASES_TABLE.strip().splitlines()[1:]
    out = []
    for line in lines:
        name, queue, model, klass, begin, end, target, gpus, days, kind = line.split()
        at = [datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (begin, end)]
        out.append(Phase(name, queue, model, klass, at[0], at[1], int(target), int(gpus), float(days), kind))
    return out


COLUMNS = ("id", "submit_time", "duration_s", "gpus", "queue", "gpu_models", "priority_class", "kind")
COLUMNS += ("preemptible", "checkpoint_interval_s", "name")


def rows(seed: int = SEED) -> list[dict[str, str]]:
    """Every job of every phase, sorted by submission time (ties in phase order)."""
    rng = random.Random(seed)
    jobs: list[tuple[datetime, int, dict[str, str]]] = []
    for order, p in enumerate(phases()):
        rate_per_s = p.target_gpus / (p.gpus * p.mean_days * DAY)
        t, n = p.begin, 0
        while True:
            t += timedelta(seconds=round(rng.expovariate(rate_per_s)))
            if t >= p.end:
                break
            n += 1
            duration = round(p.mean_days * DAY * rng.uniform(0.75, 1.25))
            when = t.strftime("%Y-%m-%dT%H:%M:%SZ")
            values = (f"{p.name}-{n:04d}", when, str(duration), str(p.gpus), p.queue, p.gpu_model)
            row = dict(zip(COLUMNS, (*values, p.priority_class, p.kind, "false", "3600", p.name), strict=True))
            jobs.append((t, order, row))
    jobs.sort(key=lambda j: (j[0], j[1]))
    return [r for _, _, r in jobs]


def main() -> None:
    """Write the workload CSV next to this script."""
    out = rows()
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(out)
    print(f"wrote {len(out):,} jobs to {OUT}")


if __name__ == "__main__":
    main()
