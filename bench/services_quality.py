"""Autoscaling decision quality: the three policies on the Azure LLM conversation trace, each at its best knob.

For each policy, the least GPU-hours that reach ≥ 99 % objective attainment, found by sweeping that policy's own
knob (``request-rate``: ``target_requests_per_s``; ``in-flight``: ``target_in_flight``; ``stargate``:
``target_utilization``) over a geometric grid of 10 points, then 3 rounds of 2 points narrowing the gap between the
best passing point and the next larger knob tried. Everything else is the same for the three: the chat service of
``examples/services/chat.yaml`` (4-GPU H100 replicas, batch 64, TTFT ≤ 1 s and TPOT ≤ 0.05 s for 99 % of the
requests, 180-s cold start) with ``min_replicas`` 1 and ``max_replicas`` 400, a 60-s window, no upscale delay, a
300-s downscale delay and the engine's tick (6 s for a 60-s window, as in the server), on ``examples/stargate-2025``
with no training trace (a replica is placed the instant it is asked for). Beside each run, a clairvoyant floor: each
minute, the fewest replicas whose full batches carry that minute's requests, known in advance, with no cold start.
Then each policy with one knob for every run (the smallest of its per-run best knobs), as an operator who cannot
tune per traffic level would run it.

**What each policy is told.** Every tick the simulator hands the engine's autoscaler one
:class:`~stargate.engine.autoscale.Traffic` of the interval: requests that arrived and their prompt tokens, requests
that completed and their output tokens, and ongoing requests integrated over the interval. ``request-rate`` reads the
arrival rate, ``in-flight`` the mean ongoing requests, ``stargate`` the arrival rate with the prompt and output
tokens per request and the profile and objective of the spec. No policy sees a future arrival or a request's output
tokens before it completed: each run audits the feed against the run's own request records (every Traffic at ``t``
counts exactly the arrivals and completions in ``[t - tick, t)``) and stops if it differs.

**Request scales.** ``×1`` is the trace as recorded (19,366 requests in 58 min, 5.5 requests/s). ``×k`` for k > 1
by one of two resamplings (``--resample``, both by default):

- ``superpose``: k copies of the trace, copy j > 0 shifted by its own offset drawn uniformly from [0, 60) s (seed 1)
  and wrapped around the run's span: k times the rate, the same minute-scale shape and token mix;
- ``compress``: the trace with its time divided by k, tiled k times back to back: k times the rate and its changes k
  times faster (a 10-minute rise of the trace takes 1 minute at ×10: sudden jumps against the 180-s cold start).

**Warm-up.** Each run starts 15 min before the measured hour, with the trace's first 15 min mirrored in time
(continuous at the seam) and the service up with ``N0`` replicas ready (as if it had run before): ``N0`` carries the
warm-up's busiest minute at 70 % of the full batch (Little's law with the full batch's step), the same for the three
policies, which then have 15 min (three downscale delays) to reach their own count. Attainment, percentiles and
scale events count the requests arriving from the end of the warm-up on; GPU- and replica-hours the GPU time from
then on.

Run on demand::

    .venv/bin/python bench/services_quality.py                    # ×1, ×3, ×10, ×30, both resamplings (~6 min)
    .venv/bin/python bench/services_quality.py --scales 10 --resample compress
    .venv/bin/python bench/services_quality.py --policies stargate --scales 10,30 --no-one-knob --json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from stargate.cli.servicefile import load_services_file
from stargate.domain.services import ServiceSpec
from stargate.engine import Driver
from stargate.engine.autoscale import Traffic
from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, epoch_for
from stargate.sim.service_report import service_summary
from stargate.sim.service_run import ServiceRequests, ServiceRun
from stargate.sim.services_sim import ServiceSimulator
from stargate.traces.requests import read_requests

AZURE = Path("../shared/data/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv")
FLEET = Path("examples/stargate-2025")
CHAT = Path("examples/services/chat.yaml")
WARM_S = 900.0
"""The warm-up before the measured hour, s."""
JITTER_S = 60.0
"""The largest offset of a superposed copy, s."""
GOAL_PCT = 99.0
SETTINGS: dict[str, Any] = {"window_s": 60.0, "upscale_delay_s": 0.0, "downscale_delay_s": 300.0}
MIN_REPLICAS, MAX_REPLICAS = 1, 400
KNOBS: dict[str, tuple[str, float, float]] = {
    "request-rate": ("target_requests_per_s", 2.0, 24.0),
    "in-flight": ("target_in_flight", 4.0, 128.0),
    "stargate": ("target_utilization", 0.3, 1.0),
}
"""Each policy's knob and the range swept; a larger knob means fewer replicas."""
GRID_POINTS, ROUNDS = 10, 3
_F = np.ndarray[Any, np.dtype[np.float64]]
_I = np.ndarray[Any, np.dtype[np.int64]]


# -- the requests ------------------------------------------------------------------------------------------------
def base_trace() -> tuple[_F, _I, _I]:
    """The Azure trace, arrivals from 0."""
    t = read_requests(AZURE, "azure-llm")
    return t.arrival_s, t.prompt_tokens, t.output_tokens


def with_warm_up(a: _F, p: _I, o: _I) -> tuple[_F, _I, _I]:
    """``WARM_S`` of warm-up before ``a`` (its first ``WARM_S`` mirrored in time), times from 0."""
    head = (a > 0) & (a < WARM_S)  # the request at 0 is not mirrored onto itself
    wa, wp, wo = -a[head][::-1], p[head][::-1], o[head][::-1]
    return np.concatenate([wa, a]) + WARM_S, np.concatenate([wp, p]), np.concatenate([wo, o])


def first_replicas(spec: ServiceSpec, a: _F, p: _I, o: _I) -> int:
    """``N0``: replicas for the busiest minute of the warm-up at 70 % of the full batch (Little's law, the full
    batch's step)."""
    profile = spec.profiles[0]
    warm = a < WARM_S
    hold = p[warm] / profile.prefill_tokens_per_s + o[warm] * profile.full_step_s
    busiest = np.bincount((a[warm] // 60.0).astype(np.int64), weights=hold).max() / 60.0
    return max(1, math.ceil(float(busiest) / (0.7 * profile.max_concurrent_sequences)))


def requests_at(scale: int, resample: str) -> tuple[_F, _I, _I]:
    """The requests of a run at ``scale`` times the trace's rate (see the module docstring), warm-up included."""
    a, p, o = base_trace()
    if resample == "compress" and scale > 1:
        span = float(a[-1]) + 1e-6
        a = np.concatenate([a / scale + j * span / scale for j in range(scale)])
        p, o = np.tile(p, scale), np.tile(o, scale)
    a, p, o = with_warm_up(a, p, o)
    if resample == "superpose" and scale > 1:
        rng = np.random.default_rng(1)
        span = float(a[-1]) + 1e-6
        shifted = [(a + rng.uniform(0.0, JITTER_S)) % span for _ in range(1, scale)]
        a = np.concatenate([a, *shifted])
        p, o = np.tile(p, scale), np.tile(o, scale)
    order = np.argsort(a, kind="stable")
    return a[order], p[order], o[order]


# -- one run -----------------------------------------------------------------------------------------------------
def spec_for(policy: str, knob: float) -> ServiceSpec:
    """The chat service with ``policy`` at ``knob`` and the bench's common settings."""
    (chat,) = load_services_file(CHAT)
    data = chat.model_dump()
    data.update(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS)
    data["autoscaling"] = {**data["autoscaling"], **SETTINGS, "policy": policy, KNOBS[policy][0]: knob}
    return ServiceSpec.model_validate(data)


def audit(run: ServiceRun, feed: list[Traffic]) -> None:
    """Every Traffic counts exactly the arrivals and completions of its interval, nothing later; raises otherwise."""
    m = run.model
    arrival, finish = np.array(m.arr), np.array(m.finish)
    prompt, output = np.array(m.prompt), np.array(m.output)
    for t in feed:
        start = t.at_s - t.interval_s
        came = (arrival >= start) & (arrival < t.at_s)
        done = (finish >= start) & (finish < t.at_s)
        seen = (t.arrived, t.prompt_tokens, t.completed, t.output_tokens)
        truth = (int(came.sum()), int(prompt[came].sum()), int(done.sum()), int(output[done].sum()))
        if seen != truth:
            raise AssertionError(f"traffic feed at {t.at_s:g} s: told {seen}, the requests say {truth}")


def simulate(requests: tuple[_F, _I, _I], policy: str, knob: float) -> tuple[ServiceRun, list[Traffic], int, float]:
    """One simulation of ``requests`` with ``policy`` at ``knob``: the service's run, the traffic its autoscaler was
    told, ``N0`` and the wall time, s."""
    a, p, o = requests
    spec = spec_for(policy, knob)
    fleet = load_fleet(FLEET)
    t0 = time.perf_counter()
    sim = ServiceSimulator(fleet, [], SimConfig(), epoch_for(fleet), [ServiceRequests(spec, a, p, o)])
    run = sim.services[0]
    n0 = first_replicas(spec, a, p, o)

    def deploy(driver: Driver, now: float) -> None:  # up with N0 replicas, ready at once (placed at the start)
        for _ in range(n0):
            run._submit(driver, now)

    feed: list[Traffic] = []
    observe = run.scaler.observe

    def recording(traffic: Traffic) -> None:
        feed.append(traffic)
        observe(traffic)

    run.deploy = deploy  # type: ignore[method-assign]
    run.scaler.observe = recording  # type: ignore[method-assign]
    sim.run_all()
    return run, feed, n0, time.perf_counter() - t0


def run_one(scale: int, resample: str, policy: str, knob: float) -> dict[str, Any]:
    """One simulation; the figures of the measured hour."""
    run, feed, n0, wall = simulate(requests_at(scale, resample), policy, knob)
    audit(run, feed)
    out = measured(run)
    whole = service_summary(run)
    assert whole["requests_served"] == whole["requests"], "every request is served"
    out.update(policy=policy, knob=knob, scale=scale, resample=resample, wall_s=round(wall, 2), ticks=len(feed), n0=n0)
    return out


def measured(run: ServiceRun) -> dict[str, Any]:
    """Attainment, percentiles, GPU- and replica-hours and scale events from the end of the warm-up on (the
    attainment rule of stargate.sim.service_report)."""
    m, goal = run.model, run.spec.objective
    arrival, output = np.array(m.arr), np.array(m.output)
    ttft, e2e = np.array(m.ttft), np.array(m.finish) - arrival
    mine = arrival >= WARM_S
    multi = output >= 2
    tpot = np.full(arrival.shape, np.nan)
    tpot[multi] = (e2e[multi] - ttft[multi]) / (output[multi] - 1)
    ok = ~np.isnan(e2e)
    if goal.ttft_s is not None:
        ok &= ttft <= goal.ttft_s + 1e-12
    if goal.tpot_s is not None:
        ok &= ~multi | (tpot <= goal.tpot_s + 1e-12)
    if goal.e2e_s is not None:
        ok &= e2e <= goal.e2e_s + 1e-12
    held = [(max(r.start_s, WARM_S), r.end_s, r.gpus) for r in run.runs if r.end_s > WARM_S]
    return {
        "requests": int(mine.sum()),
        "attainment_pct": round(100.0 * float(ok[mine].mean()), 3),
        "gpu_hours": round(sum((e - s) * g for s, e, g in held) / 3600.0, 3),
        "replica_hours": round(sum(e - s for s, e, _ in held) / 3600.0, 3),
        "p99_ttft_s": round(float(np.percentile(ttft[mine], 99)), 3),
        "p99_tpot_s": round(float(np.percentile(tpot[mine & multi], 99)), 4),
        "p99_e2e_s": round(float(np.percentile(e2e[mine], 99)), 2),
        "scale_events": sum(1 for e in run.events if e.at_s >= WARM_S),
        "replicas_max": _most_at_once(held),
    }


def _most_at_once(held: list[tuple[float, float, int]]) -> int:
    edges = sorted([(s, 1) for s, _, _ in held] + [(e, -1) for _, e, _ in held])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# -- the search --------------------------------------------------------------------------------------------------
def search(scale: int, resample: str, policy: str, pool: ProcessPoolExecutor) -> dict[str, Any]:
    """The least GPU-hours at ≥ 99 % attainment over ``policy``'s knob: a geometric grid, then rounds that try the
    two knobs splitting (geometrically in three) the gap between the best passing point and the next larger knob
    tried. Every point tried is kept."""
    _, lo, hi = KNOBS[policy]
    grid = [float(x) for x in np.geomspace(lo, hi, GRID_POINTS)]
    tried = list(pool.map(run_one, *zip(*[(scale, resample, policy, k) for k in grid], strict=True)))
    for _ in range(ROUNDS):
        best = _best(tried)
        above = sorted(r["knob"] for r in tried if best is not None and r["knob"] > best["knob"])
        if best is None or not above:
            break
        step = math.log(above[0] / best["knob"]) / 3
        knobs = [best["knob"] * math.exp(step * j) for j in (1, 2)]
        tried += pool.map(run_one, *zip(*[(scale, resample, policy, k) for k in knobs], strict=True))
    tried.sort(key=lambda r: r["knob"])
    return {"policy": policy, "best": _best(tried), "tried": tried}


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["attainment_pct"] >= GOAL_PCT]
    return min(ok, key=lambda r: (r["gpu_hours"], -r["knob"])) if ok else None


# -- the report --------------------------------------------------------------------------------------------------
TOLD = (
    "what each policy is told, every tick (6 s): the interval's arrivals and their prompt tokens, its completions and "
    "their output tokens, and its ongoing requests integrated over time (audited: nothing later than the tick); "
    "request-rate reads the arrival rate, in-flight the mean ongoing requests, stargate the arrival rate, prompt "
    "and output tokens per request (output from completed requests only), the profile and the objective"
)


def floor_gpu_hours(requests: tuple[_F, _I, _I], spec: ServiceSpec) -> float:
    """A clairvoyant reference: each minute of the measured hour, the fewest replicas whose full batches carry that
    minute's requests (Little's law at the full batch's step), known in advance and placed with no cold start,
    GPU-hours."""
    a, p, o = requests
    profile = spec.profiles[0]
    mine = a >= WARM_S
    hold = p[mine] / profile.prefill_tokens_per_s + o[mine] * profile.full_step_s
    minute = ((a[mine] - WARM_S) // 60.0).astype(np.int64)
    seconds = np.full(minute.max() + 1, 60.0)
    seconds[-1] = a[-1] - WARM_S - 60.0 * minute.max()  # the last minute ends with the last arrival
    replicas = np.ceil(np.bincount(minute, weights=hold) / 60.0 / profile.max_concurrent_sequences - 1e-9)
    return float((replicas * seconds).sum()) * spec.gpus_per_replica / 3600.0


def label(scale: int, resample: str) -> str:
    return "×1 (as recorded)" if scale == 1 else f"×{scale} ({resample})"


def table(run: dict[str, Any]) -> None:
    print(f"\n{label(run['scale'], run['resample'])}: best knob per policy at ≥ {GOAL_PCT:g} % attainment")
    print(
        "| policy | best knob | attainment % | GPU-hours | replica-hours | p99 TTFT s | p99 TPOT s | p99 e2e s | "
        "scale events | replicas at most | runs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in run["results"]:
        b, name = res["best"], KNOBS[res["policy"]][0]
        if b is None:
            print(f"| {res['policy']} | none of {len(res['tried'])} reached {GOAL_PCT:g} % | | | | | | | | | |")
            continue
        print(
            f"| {res['policy']} | {name} {b['knob']:.3g} | {b['attainment_pct']:.2f} | {b['gpu_hours']:.2f} | "
            f"{b['replica_hours']:.2f} | {b['p99_ttft_s']:.3f} | {b['p99_tpot_s']:.4f} | {b['p99_e2e_s']:.1f} | "
            f"{b['scale_events']} | {b['replicas_max']} | {len(res['tried'])} |"
        )
    print(f"clairvoyant floor: {run['floor_gpu_hours']:.2f} GPU-hours. {verdict(run['results'])}")


def verdict(results: list[dict[str, Any]]) -> str:
    by = {r["policy"]: r["best"] for r in results}
    ours, others = by.get("stargate"), [b for p, b in by.items() if p != "stargate" and b is not None]
    if ours is None or not others:
        return "Ratio: not computed (a policy is missing or none reached the goal)."
    rival = min(others, key=lambda b: b["gpu_hours"])
    ratio = ours["gpu_hours"] / rival["gpu_hours"]
    change = f"{100 * (1 - ratio):.1f} % fewer" if ratio <= 1 else f"{100 * (ratio - 1):.1f} % more"
    return (
        f"stargate's GPU-hours ÷ the best other's ({rival['policy']}): {ours['gpu_hours']:.2f} ÷ "
        f"{rival['gpu_hours']:.2f} = {ratio:.3f} ({change}; goal: at least 20 % fewer)."
    )


def one_knob(runs: list[dict[str, Any]], pool: ProcessPoolExecutor) -> list[dict[str, Any]]:
    """Each policy with one knob for every run: the smallest of its per-run best knobs (the most replicas), and
    ``stargate`` also at its default ``target_utilization`` 0.8; the figures of each run at that knob."""
    rows = []
    policies = [res["policy"] for res in runs[0]["results"]]
    for policy in policies:
        bests = [
            res["best"]["knob"] for run in runs for res in run["results"] if res["policy"] == policy and res["best"]
        ]
        knobs = [min(bests)] if bests else []
        if policy == "stargate":
            knobs.append(0.8)
        for knob in knobs:
            args = [(run["scale"], run["resample"], policy, knob) for run in runs]
            done = list(pool.map(run_one, *zip(*args, strict=True)))
            rows.append({"policy": policy, "knob": knob, "runs": done})
    return rows


def one_knob_table(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    print(
        "\nOne knob for every run (the smallest per-run best knob; stargate also at its default 0.8): GPU-hours "
        "(attainment %)"
    )
    print("| policy | knob | " + " | ".join(label(r["scale"], r["resample"]) for r in runs) + " | total GPU-hours |")
    print("|---|---:|" + "---:|" * (len(runs) + 1))
    for row in rows:
        cells = [f"{r['gpu_hours']:.2f} ({r['attainment_pct']:.2f})" for r in row["runs"]]
        total = sum(r["gpu_hours"] for r in row["runs"])
        missed = sum(1 for r in row["runs"] if r["attainment_pct"] < GOAL_PCT)
        note = f" ({missed} below {GOAL_PCT:g} %)" if missed else ""
        print(
            f"| {row['policy']} | {KNOBS[row['policy']][0]} {row['knob']:.3g} | "
            + " | ".join(cells)
            + f" | {total:.2f}{note} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,3,10,30", help="Request-rate multipliers, comma-separated.")
    parser.add_argument("--resample", default="superpose,compress", help="superpose and/or compress, comma-separated.")
    parser.add_argument("--policies", default=",".join(KNOBS), help="Comma-separated.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-one-knob", action="store_true", help="Skip the one-knob table.")
    parser.add_argument("--json", action="store_true", help="Also one JSON line with every run.")
    args = parser.parse_args()
    policies = [p for p in args.policies.split(",") if p]
    resamples = [r for r in args.resample.split(",") if r]
    for p in policies:
        if p not in KNOBS:
            parser.error(f"--policies: found '{p}'; expected some of {', '.join(KNOBS)}")
    for r in resamples:
        if r not in ("superpose", "compress"):
            parser.error(f"--resample: found '{r}'; expected superpose or compress")
    scales = [int(x) for x in args.scales.split(",") if x]
    plan = [(k, r) for k in scales for r in (resamples if k > 1 else resamples[:1])]
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(TOLD)
    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    spec = spec_for("stargate", 0.8)
    with ProcessPoolExecutor(args.workers) as pool:
        for scale, resample in plan:
            run = {"scale": scale, "resample": resample}
            run["floor_gpu_hours"] = round(floor_gpu_hours(requests_at(scale, resample), spec), 3)
            run["results"] = [search(scale, resample, p, pool) for p in policies]
            table(run)
            runs.append(run)
        knob_rows = [] if args.no_one_knob else one_knob(runs, pool)
    if knob_rows:
        one_knob_table(knob_rows, runs)
    print(f"\nwall: {time.perf_counter() - t0:.0f} s; load: {Path('/proc/loadavg').read_text().split()[:3]}")
    if args.json:
        print(json.dumps({"runs": runs, "one_knob": knob_rows}))


if __name__ == "__main__":
    main()
