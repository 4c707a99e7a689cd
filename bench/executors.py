"""Executor benchmark: submissions per second and time from placement to running on Ray and Slurm, against local.

Each engine is started for the measurement (a local Ray head and a one-node Slurm from tests/engines, the same
fixtures the tests use; their start-up is timed on its own), then the same runs go through its executor exactly as
the scheduler hands them over (``build(config, settings)`` then ``submit``):

- **submissions per second**: N submits one after another (the scheduler's pool makes several at once; one at a
  time gives the engine's own cost per call);
- **placement to running**: from the submit call to the first line of the run's command (each run writes the
  time it starts to a file), median and p95;
- **to final**: from the first submit until every run reads final through ``poll``.

The local executor, measured in the same run, is the baseline of every ratio. Peak memory is this process's peak
RSS (the engines' own processes are not counted). CPU time is printed because the machines are shared.

    .venv/bin/python bench/executors.py                 # 20 runs on local, Ray and Slurm, ~60 s
    .venv/bin/python bench/executors.py --runs 50 --engines local,slurm
"""

from __future__ import annotations

import argparse
import getpass
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine fixtures live in tests/engines

from stargate.domain.executors import LocalExecutorConfig, RayExecutorConfig, SlurmExecutorConfig  # noqa: E402
from stargate.executors import Executor, RunHandle, RunRequest, build  # noqa: E402

POLL_S = 0.05
TIMEOUT_S = 300.0


@dataclass
class Figures:
    """What one engine measured."""

    engine: str
    start_s: float
    submits_per_s: float
    to_running_ms: list[float]
    to_final_s: float
    failed: int

    def median_ms(self) -> float:
        return statistics.median(self.to_running_ms) if self.to_running_ms else float("nan")

    def p95_ms(self) -> float:
        values = sorted(self.to_running_ms)
        return values[min(len(values) - 1, int(0.95 * len(values)))] if values else float("nan")


def measure(engine: str, executor: Executor, runs: int, marks: Path, start_s: float) -> Figures:
    """Submit ``runs`` short runs, then poll them to the end."""
    requests = [
        RunRequest(
            job_id=f"j-{i + 1:06d}",
            attempt=1,
            command=f'date +%s.%N > "{marks}/{engine}-{i + 1}"; sleep 0.2',
            cluster=engine,
            gpu_ids=(0,),
            gpus=1,
            nodes=1,
            gpus_per_node=1,
        )
        for i in range(runs)
    ]
    submitted: dict[int, float] = {}
    handles: list[RunHandle] = []
    began = time.monotonic()
    for i, request in enumerate(requests):
        submitted[i + 1] = time.time()
        handles.append(executor.submit(request))
    submit_s = time.monotonic() - began
    failed = 0
    pending = set(range(len(handles)))
    deadline = time.monotonic() + TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            status = executor.poll(handles[i])
            if status.state.is_final():
                pending.discard(i)
                failed += status.state.value != "succeeded"
        if pending:
            time.sleep(POLL_S)
    to_final = time.monotonic() - began
    latencies = []
    for i, at in submitted.items():
        mark = marks / f"{engine}-{i}"
        if mark.exists() and mark.read_text().strip():
            latencies.append((float(mark.read_text().strip()) - at) * 1000)
    return Figures(engine, start_s, runs / submit_s, latencies, to_final, failed + len(pending))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per engine (default 20)")
    parser.add_argument("--engines", default="local,ray,slurm", help="comma-separated, from local, ray, slurm")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    cpu0 = time.process_time()
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        root = Path(tmp)
        marks = root / "marks"
        marks.mkdir()
        settings = SimpleNamespace(home=root / "home", installation_id="bench0001", cancel_grace_s=2.0)
        settings.home.mkdir()
        for engine in engines:
            began = time.monotonic()
            if engine == "local":
                executor = build(LocalExecutorConfig(id="local", kind="local"), settings)
                results.append(measure(engine, executor, args.runs, marks, 0.0))
            elif engine == "ray":
                from tests.engines.ray_head import start_ray_head

                head = start_ray_head(root / "ray", gpus=args.runs)
                try:
                    os.environ["BENCH_RAY_TOKEN"] = head.token
                    config = RayExecutorConfig(id="ray", kind="ray", address=head.address, token_env="BENCH_RAY_TOKEN")
                    start_s = time.monotonic() - began
                    results.append(measure(engine, build(config, settings), args.runs, marks, start_s))
                finally:
                    head.stop()
            elif engine == "slurm":
                from tests.engines.slurm_cluster import start_slurm

                cluster = start_slurm(root / "slurm", nodes=1, gpus_per_node=max(8, args.runs))
                try:
                    config = SlurmExecutorConfig(  # as root, jobs need an account: the bench's own (it is root)
                        id="slurm", kind="slurm", slurm_conf=str(cluster.slurm_conf), user=getpass.getuser()
                    )
                    start_s = time.monotonic() - began
                    results.append(measure(engine, build(config, settings), args.runs, marks, start_s))
                finally:
                    cluster.stop()
            else:
                parser.error(f"--engines: unknown engine '{engine}' (expected local, ray or slurm)")
    base = next((r for r in results if r.engine == "local"), None)
    print(f"{args.runs} runs per engine; each run writes its start time, then sleeps 0.2 s")
    print(
        f"{'engine':<7} {'start-up s':>10} {'submits/s':>10} {'× local':>8} {'to running ms p50':>18} "
        f"{'p95':>8} {'× local':>8} {'all final s':>12} {'failed':>7}"
    )
    for r in results:
        speed = f"{r.submits_per_s / base.submits_per_s:.3f}" if base else "-"
        slower = f"{r.median_ms() / base.median_ms():.1f}" if base and base.median_ms() > 0 else "-"
        print(
            f"{r.engine:<7} {r.start_s:>10.1f} {r.submits_per_s:>10.1f} {speed:>8} {r.median_ms():>18.1f} "
            f"{r.p95_ms():>8.1f} {slower:>8} {r.to_final_s:>12.1f} {r.failed:>7}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process: {peak_mb:.0f} MB; CPU time {time.process_time() - cpu0:.1f} s")


if __name__ == "__main__":
    main()
