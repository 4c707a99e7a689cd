"""Failover benchmark: the time from an engine outage to every job it ran running again elsewhere.

Each run starts a one-node Slurm and a local Ray head (tests/engines, the fixtures the tests use) and a real
``stargate up`` (as tests/e2e/test_engine_failover.py does) over a fleet of one Slurm cluster of N/2 GPUs, the
cheaper, and one Ray cluster of N GPUs (tests/engines/failover_fleet.py); Slurm's health is checked every second and
``down_after_s`` sets when it counts as down. N one-GPU jobs are submitted: half run on Slurm, half on Ray. Once
every job's command has started, the Slurm daemons are SIGKILLed with every job step (a node failure). The server
marks Slurm down, requeues its jobs and places them on Ray. Per moved job:

- **outage → down**: to the fleet event ``slurm-a up → down`` (``GET /api/v1/fleet/events``);
- **outage → requeued**: to the job's event ``running → pending`` (reason ``cluster_down``);
- **outage → running again**: to its command's first line on Ray (each job appends its start time to a file);
  ``accepted by Ray`` (JSON only) is its ``placed → running`` event, when Ray's Jobs API took the submission.

Event times are the ones the server records (each stamped with the start of the scheduler cycle that wrote it),
against this machine's clock taken just before the daemons are killed.

Baseline, in the same run: placement (``pending → placed`` on Ray) to the command's first line for the jobs placed on
Ray at the start, with no outage: as many Ray starts at once as there are moved jobs. The ratio ``× baseline``
shows what the outage costs beyond a normal Ray start; ``× floor`` compares with ``down_after_s`` + that start, the
least a failover that waits ``down_after_s`` can take. Checks: lost jobs (not succeeded) 0 and completions per job
1 (each job appends ``<job id> <attempt>`` to a file when its work is done); the benchmark exits 1 otherwise.
The server's peak RSS is its ``VmHWM`` from /proc.

    .venv/bin/python bench/failover.py                      # 20 jobs, down_after_s 2 s, ~1 min
    .venv/bin/python bench/failover.py --runs 3 --json      # medians across 3 runs, then one JSON line
    .venv/bin/python bench/failover.py --keep /tmp/fo       # keep each run's server, Slurm and Ray logs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine fixtures live in tests/engines, the server's in tests/e2e

import pytest  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402
from tests.e2e.e2e_support import ServerProcess, all_jobs  # noqa: E402
from tests.engines.failover_fleet import (  # noqa: E402
    FINAL,
    RAY_CLUSTER,
    SLURM_CLUSTER,
    completions,
    failover_fleet,
    job_command,
    job_events,
    on_slurm,
    submit_jobs,
)
from tests.engines.ray_head import start_ray_head  # noqa: E402
from tests.engines.slurm_cluster import start_slurm  # noqa: E402

TOKEN_ENV = "SG_BENCH_RAY_TOKEN"
POLL_S = 0.25
"""How often the benchmark lists the jobs, s (the figures come from the server's events, not from this)."""
TIMEOUT_S = 180.0
"""Longest each phase of a run may take, s."""


class BenchError(RuntimeError):
    """A run could not be measured (the message says why)."""


@dataclass
class Run:
    """What one run measured (times in s)."""

    jobs: int
    moved: int
    back: int
    lost: int
    completions_min: int
    completions_max: int
    to_down_s: float
    to_requeued_s: list[float]
    to_accepted_s: list[float]
    to_running_s: list[float]
    baseline_s: list[float]
    down_after_s: float
    slurm_start_s: float
    ray_start_s: float
    server_peak_rss_mb: float
    wall_s: float

    def samples(self) -> dict[str, list[float]]:
        """The per-job times behind the figures, s."""
        return {
            "outage_to_requeued_s": self.to_requeued_s,
            "outage_to_accepted_by_ray_s": self.to_accepted_s,
            "outage_to_running_again_s": self.to_running_s,
            "baseline_placement_to_running_s": self.baseline_s,
        }

    def figures(self) -> dict[str, float]:
        """Every figure of the run, by name (units in the names)."""
        running = median(self.to_running_s)
        base = median(self.baseline_s)
        return {
            "jobs": self.jobs,
            "moved_jobs": self.moved,
            "moved_running_again_jobs": self.back,
            "lost_jobs": self.lost,
            "completions_per_job_min": self.completions_min,
            "completions_per_job_max": self.completions_max,
            "down_after_s": self.down_after_s,
            "outage_to_down_s": self.to_down_s,
            "outage_to_requeued_median_s": median(self.to_requeued_s),
            "outage_to_requeued_max_s": max(self.to_requeued_s, default=math.nan),
            "outage_to_accepted_by_ray_median_s": median(self.to_accepted_s),
            "outage_to_running_again_median_s": running,
            "outage_to_running_again_p90_s": p90(self.to_running_s),
            "outage_to_running_again_max_s": max(self.to_running_s, default=math.nan),
            "baseline_jobs": len(self.baseline_s),
            "baseline_placement_to_running_median_s": base,
            "baseline_placement_to_running_max_s": max(self.baseline_s, default=math.nan),
            "running_again_median_over_baseline": running / base if base > 0 else math.nan,
            "running_again_median_over_floor": running / (self.down_after_s + base),
            "slurm_start_s": self.slurm_start_s,
            "ray_start_s": self.ray_start_s,
            "server_peak_rss_mb": self.server_peak_rss_mb,
            "run_wall_s": self.wall_s,
        }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p90(values: list[float]) -> float:
    """The 90th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)] if ordered else math.nan


def stamp(at: str) -> float:
    """An event's ``at`` (ISO 8601, UTC when it names no offset) as Unix time, s."""
    moment = datetime.fromisoformat(at)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (``VmHWM``), MB; NaN when /proc does not say."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def start_marks(path: Path) -> dict[tuple[str, int], float]:
    """(job id, attempt) → when its command started, Unix time, s."""
    marks = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3:  # a line being written is skipped until it is whole
            marks[fields[0], int(fields[1])] = float(fields[2])
    return marks


def jobs_by_id(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in all_jobs(server)}


def wait(progress: Progress, task: TaskID, what: str, check: Callable[[], tuple[bool, int, Any]]) -> None:
    """Call ``check()`` every POLL_S until it returns (done, count, result) with done; the count shows as progress."""
    progress.update(task, description=what, completed=0)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done, count, result = check()
        progress.update(task, completed=count)
        if done:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done after {TIMEOUT_S:g} s ({result})")
        time.sleep(POLL_S)


def one_run(root: Path, jobs: int, work_s: float, down_after_s: float, progress: Progress, task: TaskID) -> Run:
    """Start Slurm, Ray and a server under ``root``, fail Slurm with every job running, measure."""
    began = time.monotonic()
    slurm_gpus = jobs // 2
    with contextlib.ExitStack() as stack:
        progress.update(task, description="starting Slurm")
        slurm = start_slurm(root / "slurm", gpus_per_node=slurm_gpus)
        stack.callback(slurm.stop)
        slurm_start_s = time.monotonic() - began
        progress.update(task, description="starting Ray")
        head = start_ray_head(root / "ray", gpus=jobs)
        stack.callback(head.stop)
        os.environ[TOKEN_ENV] = head.token  # the server's environment names the token; the fleet file does not
        fleet = root / "fleet.yaml"
        text = failover_fleet(slurm.slurm_conf, head.address, TOKEN_ENV, down_after_s, slurm_gpus, jobs, jobs)
        fleet.write_text(text)
        done, started = root / "completed.txt", root / "started.txt"
        done.touch()
        started.touch()
        progress.update(task, description="starting the server")
        home = root / "home" / ".stargate"
        home.parent.mkdir(parents=True)
        server = ServerProcess(home=home, fleet=fleet, interval_s=0.1)
        stack.callback(server.stop)
        try:
            server.start()
        except pytest.fail.Exception as exc:
            raise BenchError(str(exc)) from None
        with server.client() as http:
            ids = submit_jobs(http, jobs, job_command(work_s, done, started))

        def all_started() -> tuple[bool, int, Any]:
            listed = jobs_by_id(server)
            early = {job_id for job_id, _ in completions(done)} & on_slurm(listed)
            if early:
                raise BenchError(f"{len(early)} job(s) finished on Slurm before every job had started: raise --work")
            begun = len(start_marks(started))
            return begun == jobs, begun, Counter(j["status"] for j in listed.values())

        wait(progress, task, f"waiting for all {jobs} jobs to start", all_started)
        outage = time.time()
        slurm.stop_daemons()
        moved = on_slurm(jobs_by_id(server))
        if not moved:
            raise BenchError("no job was on Slurm when its daemons stopped")

        def moved_back() -> tuple[bool, int, Any]:
            back = {job_id for job_id, attempt in start_marks(started) if job_id in moved and attempt > 0}
            return back == moved, len(back), f"{len(back)} of {len(moved)} moved jobs started on Ray"

        progress.update(task, total=len(moved))
        wait(progress, task, f"Slurm down: waiting for {len(moved)} moved jobs to start on Ray", moved_back)

        def all_final() -> tuple[bool, int, Any]:
            listed = jobs_by_id(server)
            final = sum(j["status"] in FINAL for j in listed.values())
            return final == jobs, final, Counter(j["status"] for j in listed.values())

        progress.update(task, total=jobs)
        wait(progress, task, "waiting for every job to end", all_final)
        listed = jobs_by_id(server)
        peak_mb = peak_rss_mb(server.proc.pid) if server.proc else math.nan
        with server.client() as http:
            events = {job_id: job_events(http, job_id) for job_id in ids}
            fleet_events = http.get("/api/v1/fleet/events").json()["items"]
    down = [e for e in fleet_events if e["cluster"] == SLURM_CLUSTER and e["to"] == "down"]
    if not down:
        raise BenchError("the server recorded no outage of slurm-a")
    marks = start_marks(started)
    to_requeued, to_accepted, to_running, baseline = [], [], [], []
    for job_id in ids:
        history = events[job_id]
        requeued = [
            e
            for e in history
            if e["from"] in ("placed", "running") and (e["to"], e["reason"]) == ("pending", "cluster_down")
        ]
        if job_id in moved and requeued:
            to_requeued.append(stamp(requeued[0]["at"]) - outage)
            later = history[history.index(requeued[0]) + 1 :]
            accepted = [e for e in later if (e["from"], e["to"]) == ("placed", "running")]
            if accepted:
                to_accepted.append(stamp(accepted[0]["at"]) - outage)
            attempt = max(a for (i, a) in marks if i == job_id)
            if attempt > 0:
                to_running.append(marks[job_id, attempt] - outage)
        elif job_id not in moved:
            placed = [e for e in history if e["to"] == "placed" and e["detail"].startswith(f"on {RAY_CLUSTER}")]
            if placed and stamp(placed[0]["at"]) < outage and (job_id, 0) in marks:
                baseline.append(marks[job_id, 0] - stamp(placed[0]["at"]))
    per_job = Counter(job_id for job_id, _ in completions(done))
    return Run(
        jobs=jobs,
        moved=len(moved),
        back=len(to_running),
        lost=sum(j["status"] != "succeeded" for j in listed.values()),
        completions_min=min(per_job.get(i, 0) for i in ids),
        completions_max=max(per_job.get(i, 0) for i in ids),
        to_down_s=stamp(down[-1]["at"]) - outage,
        to_requeued_s=to_requeued,
        to_accepted_s=to_accepted,
        to_running_s=to_running,
        baseline_s=baseline,
        down_after_s=down_after_s,
        slurm_start_s=slurm_start_s,
        ray_start_s=head.started_s,
        server_peak_rss_mb=peak_mb,
        wall_s=time.monotonic() - began,
    )


def tables(rows: list[tuple[str, dict[str, float]]]) -> list[Table]:
    """The timings and the checks, a row per run (and the medians)."""
    timing = Table(title="outage → every moved job running again on Ray")
    checks = Table(title="jobs and set-up")
    timing_columns = [
        ("moved jobs", "moved_jobs", "{:.0f}"),
        ("to down s", "outage_to_down_s", "{:.2f}"),
        ("to requeued p50 s", "outage_to_requeued_median_s", "{:.2f}"),
        ("to running again p50 s", "outage_to_running_again_median_s", "{:.2f}"),
        ("p90 s", "outage_to_running_again_p90_s", "{:.2f}"),
        ("max s", "outage_to_running_again_max_s", "{:.2f}"),
        ("baseline p50 s", "baseline_placement_to_running_median_s", "{:.2f}"),
        ("× baseline", "running_again_median_over_baseline", "{:.2f}"),
        ("× floor", "running_again_median_over_floor", "{:.2f}"),
    ]
    check_columns = [
        ("jobs", "jobs", "{:.0f}"),
        ("lost jobs (must be 0)", "lost_jobs", "{:.0f}"),
        ("completions per job (must be 1)", "completions_per_job_max", "{:.0f}"),
        ("down_after_s s", "down_after_s", "{:g}"),
        ("Slurm start s", "slurm_start_s", "{:.1f}"),
        ("Ray start s", "ray_start_s", "{:.1f}"),
        ("server peak RSS MB", "server_peak_rss_mb", "{:.0f}"),
        ("run wall s", "run_wall_s", "{:.1f}"),
    ]
    for table, columns in ((timing, timing_columns), (checks, check_columns)):
        table.add_column("run")
        for header, _, _ in columns:
            table.add_column(header, justify="right")
        for name, figures in rows:
            cells = [fmt.format(figures[key]) for _, key, fmt in columns]
            if columns is check_columns and figures["completions_per_job_min"] != figures["completions_per_job_max"]:
                cells[2] = f"{figures['completions_per_job_min']:.0f}–{figures['completions_per_job_max']:.0f}"
            table.add_row(name, *cells)
    return [timing, checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per run, half of them on Slurm (default 20)")
    parser.add_argument("--down-after", type=float, default=2.0, help="Slurm's health down_after_s, s (default 2)")
    parser.add_argument("--work", type=float, default=15.0, help="how long each job works, s (default 15)")
    parser.add_argument("--runs", type=int, default=1, help="runs; figures are the medians across them (default 1)")
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line, last")
    parser.add_argument(
        "--keep", type=Path, help="keep each run's files (server, Slurm and Ray logs) in this new directory"
    )
    args = parser.parse_args()
    if args.jobs < 2:
        parser.error(f"--jobs: at least 2 (one on Slurm, one on Ray), got {args.jobs}")
    if not 0 <= args.down_after <= 86_400:
        parser.error(f"--down-after: from 0 to 86400 s, got {args.down_after:g}")
    if args.work <= 0 or args.runs < 1:
        parser.error("--work must be more than 0 s and --runs at least 1")
    if args.keep and args.keep.exists():
        parser.error(f"--keep: {args.keep} exists; name a new directory")
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:  # a file or a pipe: wide enough for the tables' headers
        out = Console(width=160)
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    runs: list[Run] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            for k in range(args.runs):
                task = progress.add_task(f"run {k + 1}", total=args.jobs)
                with contextlib.ExitStack() as scope:
                    if args.keep:
                        tmp = str(args.keep / f"run-{k + 1}")
                        Path(tmp).mkdir(parents=True)
                    else:
                        tmp = scope.enter_context(tempfile.TemporaryDirectory(prefix="sg-failover-"))
                    runs.append(one_run(Path(tmp), args.jobs, args.work, args.down_after, progress, task))
                progress.remove_task(task)
                err.print(f"run {k + 1} of {args.runs}: {runs[-1].wall_s:.0f} s")
    except RuntimeError as exc:  # BenchError, or Slurm or Ray that could not start (the message says why)
        err.print(f"failover benchmark: {exc}")
        raise SystemExit(1) from None
    load_after = os.getloadavg()
    per_run = [run.figures() for run in runs]
    medians = {key: statistics.median(f[key] for f in per_run) for key in per_run[0]}
    rows = [(str(k + 1), f) for k, f in enumerate(per_run)] + ([("median", medians)] if len(runs) > 1 else [])
    out.print(
        f"{args.jobs} jobs per run ({args.jobs // 2} on Slurm), each working {args.work:g} s; Slurm's daemons "
        f"SIGKILLed once every job has started; down_after_s {args.down_after:g} s; {len(runs)} run(s)"
    )
    for table in tables(rows):
        out.print(table)
    out.print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"benchmark CPU time {time.process_time() - cpu0:.1f} s; os.cpu_count() {os.cpu_count()}"
    )
    failed = [
        f for f in per_run if f["lost_jobs"] or f["completions_per_job_min"] != 1 or f["completions_per_job_max"] != 1
    ]
    if args.json:
        record = {
            "benchmark": "failover",
            "jobs": args.jobs,
            "work_s": args.work,
            "down_after_s": args.down_after,
            "runs": [f | {"per_job": run.samples()} for f, run in zip(per_run, runs, strict=True)],
            "median": medians,
            "load_average_1min_before": load_before[0],
            "load_average_1min_after": load_after[0],
            "cpus": os.cpu_count(),
        }
        print(json.dumps(_no_nan(record), allow_nan=False))
    if failed:
        err.print("failover benchmark: a job was lost or did not complete exactly once (see the table)")
        raise SystemExit(1)


def _no_nan(value: Any) -> Any:
    """``value`` with every float to the millisecond (or microsecond, under 1) and NaN as null (JSON has none)."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3 if abs(value) >= 1 else 6)
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


if __name__ == "__main__":
    main()
