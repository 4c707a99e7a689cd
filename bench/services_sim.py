"""Service simulator speed: the 1-hour Azure LLM trace and a synthetic 1,000,000-request trace.

Run on demand (not part of the test suite)::

    .venv/bin/python bench/services_sim.py                       # both parts (about 1 min)
    .venv/bin/python bench/services_sim.py --skip-million        # the Azure trace only
    .venv/bin/python bench/services_sim.py --requests 200000     # a smaller synthetic trace

Each run is a fresh process, so its peak RSS is its own. For each trace it prints requests/s, wall and CPU time
and peak RSS of:

- the whole simulator (``stargate.sim.service_report.simulate_services``: the example fleet ``examples/stargate-2025``
  with its driver, the chat service of ``examples/services/chat.yaml`` autoscaled by the engine's ``stargate``
  policy every 10 s);
- the queueing model alone (``stargate.sim.serving.ServiceModel``) with a fixed number of ready replicas;
- a naive baseline of the same model on the same replicas: at every event it moves every sequence in flight on
  (``remaining tokens -= dt / step(b)``) and scans all of them for the next event, O(sequences in flight) per event
  instead of O(log n). It computes the same TTFT and end-to-end figures (the largest difference is printed), so the
  ratio is the price of the naive algorithm, not of a different model. On the synthetic trace it runs on a sample.

Goals (2-core machine): the Azure trace ≤ 5 s, 1,000,000 requests ≤ 30 s and ≤ 1 GB peak RSS, for the whole
simulator. CPU time is printed beside wall time: the machine is often shared.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from stargate.cli.servicefile import load_services_file
from stargate.domain.services import ReplicaProfile
from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, epoch_for
from stargate.sim.run import peak_rss_mb
from stargate.sim.service_report import simulate_services
from stargate.sim.service_run import ServiceRequests
from stargate.sim.serving import ServiceModel, step_table
from stargate.traces.requests import read_requests

AZURE = Path("../shared/data/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv")
FLEET = Path("examples/stargate-2025")
CHAT = Path("examples/services/chat.yaml")
FIXED_REPLICAS = 3
"""Ready replicas of the model-alone and naive runs on the Azure trace (the autoscaled run peaks at 3)."""


def synthetic(n: int, seed: int = 1) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``n`` requests: Poisson arrivals whose rate cycles 60, 100, 140, 100 requests/s every 10 minutes, and
    (prompt, output) pairs drawn from the Azure trace's own requests."""
    rng = np.random.default_rng(seed)
    azure = read_requests(AZURE, "azure-llm")
    pick = rng.integers(0, len(azure), n)
    rates = np.array([60.0, 100.0, 140.0, 100.0])
    gaps, made, block = [], 0, 0
    while made < n:
        rate = rates[block % 4]
        count = min(int(rng.poisson(rate * 600)), n - made)
        gaps.append(np.sort(rng.uniform(block * 600, (block + 1) * 600, count)))
        made += count
        block += 1
    arrival = np.concatenate(gaps)
    return arrival - arrival[0], azure.prompt_tokens[pick], azure.output_tokens[pick]


def trace(name: str, n: int) -> ServiceRequests:
    (chat,) = load_services_file(CHAT)
    if name == "azure":
        t = read_requests(AZURE, "azure-llm")
        return ServiceRequests(chat, t.arrival_s, t.prompt_tokens, t.output_tokens)
    arrival, prompt, output = synthetic(n)
    wide = chat.model_copy(update={"max_replicas": 64})
    return ServiceRequests(wide, arrival, prompt, output)


def whole(requests: ServiceRequests) -> dict[str, Any]:
    """The whole simulator on the example fleet."""
    fleet = load_fleet(FLEET)
    cpu, t0 = time.process_time(), time.perf_counter()
    out, _ = simulate_services(fleet, [], SimConfig(), epoch_for(fleet), [requests])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    s = out["services"][0]
    return {
        "requests": s["requests"],
        "wall_s": wall,
        "cpu_s": cpu,
        "served": s["requests_served"],
        "replicas_max": s["replicas_max"],
        "scale_events": s["scale_events"],
        "attainment_pct": s["attainment_pct"],
    }


def model_alone(requests: ServiceRequests, replicas: int) -> tuple[dict[str, Any], ServiceModel]:
    profile = requests.spec.profiles[0]
    cpu, t0 = time.process_time(), time.perf_counter()
    m = ServiceModel(requests.arrival_s, requests.prompt_tokens, requests.output_tokens, profile)
    for k in range(replicas):
        m.add_replica(k, 0.0)
        m.set_ready(k, 0.0)
    m.advance(math.inf)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    return {"requests": len(m.arr), "wall_s": wall, "cpu_s": cpu, "served": m.done, "replicas": replicas}, m


def naive(
    arrival: list[float], prompt: list[int], output: list[int], profile: ReplicaProfile, replicas: int
) -> tuple[list[float], list[float]]:
    """The same model, naively: every event moves every sequence in flight on and scans them all (TTFT, finish)."""
    steps, slots, rate = step_table(profile), profile.max_concurrent_sequences, profile.prefill_tokens_per_s
    n = len(arrival)
    ttft, finish = [math.nan] * n, [math.nan] * n
    prefilling: list[dict[int, float]] = [{} for _ in range(replicas)]  # request -> prefill end
    decoding: list[dict[int, float]] = [{} for _ in range(replicas)]  # request -> tokens left
    queues: list[deque[int]] = [deque() for _ in range(replicas)]
    outstanding = [0] * replicas
    now, i = 0.0, 0
    while True:
        nxt, t_arr = math.inf, arrival[i] if i < n else math.inf
        for r in range(replicas):
            b = len(prefilling[r]) + len(decoding[r])
            for end in prefilling[r].values():
                nxt = min(nxt, end)
            for left in decoding[r].values():
                nxt = min(nxt, now + left * steps[b])
        if nxt == math.inf and t_arr == math.inf:
            break
        t = min(nxt, t_arr)
        for r in range(replicas):  # move every decoding sequence on
            b = len(prefilling[r]) + len(decoding[r])
            for k in decoding[r]:
                decoding[r][k] -= (t - now) / steps[b]
        now = t
        if nxt <= t_arr:
            for r in range(replicas):
                b = len(prefilling[r]) + len(decoding[r])
                for k, end in list(prefilling[r].items()):
                    if end <= now:
                        del prefilling[r][k]
                        decoding[r][k] = float(output[k])
                        ttft[k] = now + steps[b] - arrival[k]
                for k, left in list(decoding[r].items()):
                    if left <= 1e-9:
                        del decoding[r][k]
                        finish[k] = now
                        ttft[k] = min(ttft[k], now - arrival[k])
                        outstanding[r] -= 1
                while queues[r] and len(prefilling[r]) + len(decoding[r]) < slots:
                    k = queues[r].popleft()
                    prefilling[r][k] = now + prompt[k] / rate
        else:
            r = min(range(replicas), key=lambda x: (outstanding[x], x))
            outstanding[r] += 1
            if len(prefilling[r]) + len(decoding[r]) < slots:
                prefilling[r][i] = now + prompt[i] / rate
            else:
                queues[r].append(i)
            i += 1
    return ttft, finish


def naive_run(requests: ServiceRequests, replicas: int, sample: int) -> dict[str, Any]:
    """The naive baseline on the first ``sample`` requests, and the largest difference to the queueing model's."""
    cut = slice(0, sample)
    part = ServiceRequests(
        requests.spec, requests.arrival_s[cut], requests.prompt_tokens[cut], requests.output_tokens[cut]
    )
    arrival, prompt, output = part.arrival_s.tolist(), part.prompt_tokens.tolist(), part.output_tokens.tolist()
    cpu, t0 = time.process_time(), time.perf_counter()
    ttft, finish = naive(arrival, prompt, output, requests.spec.profiles[0], replicas)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    _, fast = model_alone(part, replicas)
    diff_ttft = float(np.max(np.abs(np.array(ttft) - np.array(fast.ttft))))
    diff_finish = float(np.max(np.abs(np.array(finish) - np.array(fast.finish))))
    return {
        "requests": len(arrival),
        "wall_s": wall,
        "cpu_s": cpu,
        "served": int(np.sum(~np.isnan(finish))),
        "max_diff_ttft_s": diff_ttft,
        "max_diff_finish_s": diff_finish,
    }


def one(kind: str, name: str, n: int, sample: int) -> dict[str, Any]:
    """One measurement, in this process (run as a child: its peak RSS is its own)."""
    requests = trace(name, n)
    replicas = FIXED_REPLICAS if name == "azure" else 12
    if kind == "whole":
        out = whole(requests)
    elif kind == "model":
        out, _ = model_alone(requests, replicas)
    else:
        out = naive_run(requests, replicas, sample)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def child(kind: str, name: str, n: int, sample: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, name, str(n), str(sample)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(name: str, rows: list[tuple[str, dict[str, Any]]], goal: str) -> None:
    base = next(r for label, r in rows if label.startswith("naive"))
    base_rate = base["requests"] / base["wall_s"]
    print(f"\n{name} ({goal})")
    print("| run | requests | wall s | CPU s | requests/s | peak RSS MB | ratio to naive |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        rate = r["requests"] / r["wall_s"]
        print(
            f"| {label} | {r['requests']:,} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {rate:,.0f} | "
            f"{r['peak_rss_mb']:,.0f} | {rate / base_rate:,.1f} |"
        )
    print(
        f"naive vs queueing model, largest difference: TTFT {base['max_diff_ttft_s']:.2e} s, finish "
        f"{base['max_diff_finish_s']:.2e} s"
    )
    w = rows[0][1]
    print(
        f"whole simulator: {w['served']:,} served, {w['replicas_max']} replicas at most, {w['scale_events']} "
        f"scale events, objective attained by {w['attainment_pct']} % of requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="Requests of the synthetic trace.")
    parser.add_argument("--sample", type=int, default=20_000, help="Synthetic requests the naive baseline runs.")
    parser.add_argument("--skip-million", action="store_true", help="Only the Azure trace.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, name, n, sample = args.child
        print(json.dumps(one(kind, name, int(n), int(sample))))
        return
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")
    azure = [(label, child(kind, "azure", 0, 10**9)) for label, kind in _RUNS]
    table("Azure LLM conversation trace, 1 h", azure, "goal: whole simulator ≤ 5 s")
    if not args.skip_million:
        rows = [(label, child(kind, "synthetic", args.requests, args.sample)) for label, kind in _RUNS]
        table(f"synthetic, {args.requests:,} requests", rows, "goal: whole simulator ≤ 30 s and ≤ 1 GB")
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")


_RUNS = (("whole simulator", "whole"), ("queueing model alone", "model"), ("naive baseline", "naive"))

if __name__ == "__main__":
    main()
