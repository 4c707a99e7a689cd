"""What a failover run across real engines needs, shared by tests/e2e/test_engine_failover.py and bench/failover.py:
a fleet of one Slurm cluster (``slurm-a``, the cheaper) and one Ray cluster (``ray-a``) with one team and queue, the
jobs' command (each job records ``<job id> <attempt>`` in a shared file once its work is done), and reading a job's
events. Slurm and Ray themselves come from :mod:`slurm_cluster` and :mod:`ray_head`; the server from
tests/e2e/e2e_support.py.
"""

from pathlib import Path
from typing import Any

import httpx

SLURM_CLUSTER = "slurm-a"
RAY_CLUSTER = "ray-a"
SLURM_EXECUTOR = "slurm-e2e"
QUEUE = "alpha-q"
FINAL = frozenset({"succeeded", "failed", "cancelled"})
"""Job statuses that never change again."""

_FLEET = """
name: engines
providers:
  - {{id: hpc, name: HPC centre, kind: owned, executor: slurm-e2e}}
  - {{id: rayco, name: Ray cloud, kind: cloud, executor: ray-e2e}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
  - {{id: ray-1, provider: rayco, region: here}}
clusters:
  - {{id: slurm-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: {slurm}, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: ray-a, site: ray-1, gpu_model: H100-SXM, gpus_per_node: {ray}, nodes: 1, price_per_gpu_hour_usd: 3.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: {quota}}}]}}
executors:
  - id: slurm-e2e
    kind: slurm
    slurm_conf: {conf}
    user: root  # on purpose: the jobs write into this test's private (0700) temporary directory
    health: {{interval_s: 1, down_after_s: {down_after}}}
  - id: ray-e2e
    kind: ray
    address: {address}
    token_env: {token_env}
    health: {{interval_s: 1, down_after_s: 5}}
"""


def failover_fleet(
    slurm_conf: Path,
    ray_address: str,
    token_env: str,
    down_after_s: float,
    slurm_gpus: int = 8,
    ray_gpus: int = 16,
    quota_gpus: int = 16,
) -> str:
    """The fleet file's text: Slurm (``slurm_gpus`` GPUs on one node, health checked every second, down after
    ``down_after_s``) and Ray (``ray_gpus`` GPUs, its token read from the variable ``token_env``), the queue
    ``alpha-q`` limited to ``quota_gpus`` GPUs."""
    return _FLEET.format(
        conf=slurm_conf,
        down_after=down_after_s,
        address=ray_address,
        token_env=token_env,
        slurm=slurm_gpus,
        ray=ray_gpus,
        quota=quota_gpus,
    )


def job_command(work_s: float, done: Path, started: Path | None = None) -> str:
    """A job that works ``work_s`` seconds, then appends ``<job id> <attempt>`` to ``done``; with ``started``, it
    first appends ``<job id> <attempt> <Unix time, s>`` there (its command's first line)."""
    mark = f'echo "$STARGATE_JOB_ID $STARGATE_ATTEMPT $(date +%s.%N)" >> {started}; ' if started else ""
    return f'{mark}sleep {work_s:g}; echo "$STARGATE_JOB_ID $STARGATE_ATTEMPT" >> {done}'


def completions(done: Path) -> list[tuple[str, int]]:
    """The (job id, attempt) of every completion recorded in ``done``, in order."""
    fields = (line.split() for line in done.read_text().splitlines())
    return [(f[0], int(f[1])) for f in fields if len(f) == 2]  # a line being written counts once it is whole


def submit_jobs(http: httpx.Client, count: int, command: str) -> list[str]:
    """Submit ``count`` one-GPU jobs ``j0``, ``j1``... running ``command`` to ``alpha-q``; their ids in order."""
    ids = []
    for n in range(count):
        answer = http.post("/api/v1/jobs", json={"name": f"j{n}", "queue": QUEUE, "gpus": 1, "command": command})
        if answer.status_code != 201:
            raise RuntimeError(f"submitting job j{n} answered {answer.status_code}: {answer.text}")
        ids.append(answer.json()["id"])
    return ids


def on_slurm(jobs: dict[str, dict[str, Any]], statuses: tuple[str, ...] = ("placed", "running")) -> set[str]:
    """The ids of the jobs on ``slurm-a`` in one of ``statuses`` (by default those a Slurm outage moves)."""
    return {i for i, j in jobs.items() if j["cluster"] == SLURM_CLUSTER and j["status"] in statuses}


def job_events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every event of one job, oldest first."""
    items: list[dict[str, Any]] = http.get("/api/v1/events", params={"job_id": job_id, "limit": 1000}).json()["items"]
    return items
