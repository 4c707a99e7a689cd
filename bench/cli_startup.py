"""CLI start-up benchmark: how long a ``stargate`` process takes, against importing Typer, Rich and httpx alone.

Medians over N fresh processes of each command, the commands taken in turn (round robin) so that a change in the
machine's load hits all of them alike; ratios are to the baseline measured in the same run:

1. ``python -c "import typer, rich, httpx"``: the baseline, the least a Typer CLI with an HTTP client imports.
2. A bare Typer app of two commands (no imports of ours) running one, and showing one's ``--help``: what Typer
   itself adds to the baseline (Typer 0.29 imports pydantic to read even the ``--help`` flag; help is drawn by Rich).
3. ``python -m stargate version``.
4. ``python -m stargate submit --help``: the client command started, its options parsed, nothing sent.
5. ``import typer, rich, httpx`` plus the job-file reader (:mod:`stargate.cli.jobfile`, which imports the domain's
   pydantic models and the YAML reader): the least a real ``stargate submit`` imports, since it validates the job
   file locally before sending it.
6. Unless ``--jobs 0``: a real ``stargate submit`` of ``examples/jobs/eval-batch-mmlu.yaml``, one process per job,
   one after the other, against ``stargate up`` started here (scheduler off, so no job runs) on a temporary
   STARGATE_HOME with the bundled example fleet; prints jobs/s.

CPU time (user + system, of the child processes) is printed beside wall time: the development machines are shared.

    .venv/bin/python bench/cli_startup.py                 # 15 runs of each, 50 submissions
    .venv/bin/python bench/cli_startup.py --runs 31 --jobs 0
"""

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
FLEET = REPO / "examples" / "stargate-2025"
JOB_FILE = REPO / "examples" / "jobs" / "eval-batch-mmlu.yaml"
PY = sys.executable

BARE_TYPER = """
import typer, rich, httpx
app = typer.Typer(add_completion=False)
@app.command()
def version() -> None:
    typer.echo("0")
@app.command()
def other() -> None:
    pass
app()
"""

STARTUP = [
    ("import typer, rich, httpx (baseline)", [PY, "-c", "import typer, rich, httpx"]),
    ("bare Typer app: a command", [PY, "-c", BARE_TYPER, "version"]),
    ("bare Typer app: a command's --help", [PY, "-c", BARE_TYPER, "other", "--help"]),
    ("stargate version", [PY, "-m", "stargate", "version"]),
    ("stargate submit --help", [PY, "-m", "stargate", "submit", "--help"]),
    (
        "baseline + the job-file reader (submit's floor)",
        [PY, "-c", "import typer, rich, httpx; import stargate.cli.jobfile"],
    ),
]


def load_note() -> str:
    """The machine's load averages and cores, for the record."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one process running ``argv``; exits when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(argv[1:])} exited with code {done.returncode}: {done.stderr.decode()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup_medians(runs: int, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each start-up command, ``runs`` times each, in turn."""
    for _, argv in STARTUP:  # warm the file cache and the bytecode once, unmeasured
        run_once(argv, env)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in STARTUP}
    for _ in range(runs):
        for label, argv in STARTUP:
            times[label].append(run_once(argv, env))
    return {
        label: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for label, got in times.items()
    }


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: "subprocess.Popen[bytes]", timeout_s: float = 120.0) -> None:
    """Wait until ``url/healthz`` answers 200; exit if the server died or never answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: the server at {url} exited with code {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"error: the server at {url} did not answer within {timeout_s:.0f} s")


def submissions(jobs: int, tmp: Path) -> tuple[float, float, float]:
    """Total wall seconds, median wall and median CPU seconds per process of ``jobs`` ``stargate submit``
    processes, one after the other, against a ``stargate up`` started here."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    env.update(STARGATE_HOME=str(tmp / ".stargate"), STARGATE_CONFIG_DIR=str(tmp / "client"))
    argv = [PY, "-m", "stargate", "up", "--port", str(port), "--fleet", str(FLEET), "--no-scheduler"]
    argv += ["--log-level", "warning"]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        token = (tmp / ".stargate" / "admin-token").read_text().strip()
        client_env = {**env, "STARGATE_URL": url, "STARGATE_TOKEN": token}
        submit = [PY, "-m", "stargate", "submit", str(JOB_FILE), "--retry-for", "0"]
        run_once(submit, client_env)  # warm-up, unmeasured
        start = time.perf_counter()
        each = [run_once(submit, client_env) for _ in range(jobs)]
        total = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return total, statistics.median(w for w, _ in each), statistics.median(c for _, c in each)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="Processes per start-up command (median), default 15.")
    parser.add_argument("--jobs", type=int, default=50, help="Real submissions, one process each; 0 skips them.")
    args = parser.parse_args()
    if args.runs < 1 or args.jobs < 0:
        parser.error("--runs must be at least 1 and --jobs at least 0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    print(f"CLI start-up, {args.runs} runs of each, {load_note()}, Python {sys.version.split()[0]}")
    medians = startup_medians(args.runs, env)
    base_wall, base_cpu = medians[STARTUP[0][0]]
    print(f"{'command':<50} {'wall s':>7} {'CPU s':>7} {'ratio':>6}")
    for label, (wall, cpu) in medians.items():
        print(f"{label:<50} {wall:>7.3f} {cpu:>7.3f} {wall / base_wall:>6.2f}")
    if args.jobs:
        with tempfile.TemporaryDirectory(prefix="stargate-cli-bench-") as tmp:
            total, wall, cpu = submissions(args.jobs, Path(tmp))
        label = f"stargate submit, {args.jobs} processes one after another"
        print(f"{label:<50} {wall:>7.3f} {cpu:>7.3f} {wall / base_wall:>6.2f}")
        print(f"  {args.jobs / total:.2f} jobs/s ({total:.1f} s for {args.jobs} jobs, medians per process above)")
    print(f"(ratio: median wall time over the baseline's, {base_wall:.3f} s wall, {base_cpu:.3f} s CPU)")


if __name__ == "__main__":
    main()
