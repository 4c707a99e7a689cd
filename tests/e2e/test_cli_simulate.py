"""``stargate simulate`` run as a user would (a subprocess): JSON summary, accounting, options, located errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stargate.engine.policies import POLICIES, SETTING_RULES

ROOT = Path(__file__).resolve().parents[2]
PHILLY_CSV = ROOT.parent / "shared" / "data" / "traces" / "philly" / "philly.csv"
REQUIRED = {
    "jobs_total",
    "jobs_finished",
    "jobs_rejected",
    "rejected_by_reason",
    "jobs_pending_at_end",
    "avg_jct_s",
    "p50_jct_s",
    "p95_jct_s",
    "p99_jct_s",
    "avg_wait_s",
    "p99_wait_s",
    "makespan_s",
    "gpu_utilization",
    "cost_usd",
    "cost_by_provider",
    "preemptions",
    "wall_s",
    "events_per_s",
    "peak_rss_mb",
    "cloud_gpu_hours",
    "owned_gpu_utilization",
    "trace",
}


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stargate", "simulate", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def native_trace(tmp_path: Path) -> Path:
    """40 jobs: 8-GPU gangs every 10 minutes for 2 h each, in a Philly queue, plus one in an unknown queue."""
    lines = ["id,submit_s,duration_s,gpus,queue"]
    lines += [f"j{i},{i * 600},{7200},{8 if i % 2 else 64},vc-6214e9" for i in range(39)]
    lines.append("ghost,30,60,1,vc-nobody")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_native_trace_bursts_fails_and_every_job_is_accounted_for(native_trace: Path) -> None:
    r = _simulate(
        "--fleet",
        "examples/philly-burst",
        "--trace",
        str(native_trace),
        "--trace-format",
        "native",
        "--burst-after",
        "30m",
        "--failure",
        "cluster=philly-owned,at=1h,for=30m",
        "--trim-jobs",
        "5",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= REQUIRED
    assert out["jobs_total"] == 40 and out["jobs_finished"] == 39 and out["jobs_pending_at_end"] == 0
    assert out["rejected_by_reason"] == {"unknown_queue": 1}
    assert out["preemptions_by_reason"]["cluster_down"] >= 1
    assert out["cloud_gpu_hours"] > 0 and out["cost_by_provider"]["cloud"] > 0
    assert out["middle_window"]["jobs"] == 30
    assert out["trace"]["bad_rows"] == 0


def test_policy_settings_are_passed_through(native_trace: Path) -> None:
    args = ["--fleet", "examples/philly-burst", "--trace", str(native_trace), "--trace-format", "native", "--json"]
    r = _simulate(*args, "--policy", "stargate", "--set", "runtime_weight=0", "--set", "max_reservations=2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["changed"] == {"max_reservations": 2, "runtime_weight": 0.0}
    stargate = set(POLICIES["stargate"].__dataclass_fields__) - {"name"}
    assert set(out["settings"]) == stargate and stargate < set(SETTING_RULES)  # every setting of the policy that ran
    assert out["settings"]["max_reservations"] == 2 and out["settings"]["scan_depth"] == 64
    assert out["settings"]["backfill_window_s"] == "inf" and out["settings"]["burst_after_s"] is None


def _fleet_with(tmp_path: Path, scheduling: str) -> Path:
    """examples/philly-burst with a scheduling section (a fleet directory: one file more)."""
    fleet = tmp_path / "fleet"
    shutil.copytree(ROOT / "examples" / "philly-burst", fleet)
    (fleet / "scheduling.yaml").write_text(scheduling)
    return fleet


def _settings_run(fleet: Path, trace: Path, *args: str) -> dict[str, Any]:
    r = _simulate("--fleet", str(fleet), "--trace", str(trace), "--trace-format", "native", "--json", *args)
    assert r.returncode == 0, r.stderr
    settings: dict[str, Any] = json.loads(r.stdout)["settings"]
    return settings


def test_each_burst_flag_sets_its_own_setting_only(tmp_path: Path, native_trace: Path) -> None:
    per_hour = _fleet_with(tmp_path / "a", "scheduling:\n  settings: {burst_wait_per_gpu_hour_s: 10}\n")
    got = _settings_run(per_hour, native_trace, "--burst-after", "2h")
    assert (got["burst_after_s"], got["burst_wait_per_gpu_hour_s"]) == (7200.0, 10)
    after = _fleet_with(tmp_path / "b", "scheduling:\n  settings: {burst_after_s: 3600}\n")
    got = _settings_run(after, native_trace, "--burst-wait-per-gpu-hour", "5")
    assert (got["burst_after_s"], got["burst_wait_per_gpu_hour_s"]) == (3600, 5.0)  # the fleet's wait is kept
    got = _settings_run(ROOT / "examples" / "philly-burst", native_trace, "--burst-wait-per-gpu-hour", "5")
    assert (got["burst_after_s"], got["burst_wait_per_gpu_hour_s"]) == (0.0, 5.0)  # alone, it means bursting
    got = _settings_run(after, native_trace, "--set", "burst_after_s=none", "--burst-wait-per-gpu-hour", "5")
    assert (got["burst_after_s"], got["burst_wait_per_gpu_hour_s"]) == (None, 5.0)  # bursting off, as said
    got = _settings_run(ROOT / "examples" / "philly-burst", native_trace, "--set", "burst_wait_per_gpu_hour_s=5")
    assert (got["burst_after_s"], got["burst_wait_per_gpu_hour_s"]) == (None, 5.0)  # --set: as stargate up --set


def test_set_none_and_null_set_a_setting_to_null(tmp_path: Path, native_trace: Path) -> None:
    after = _fleet_with(tmp_path, "scheduling:\n  settings: {burst_after_s: 3600}\n")
    assert _settings_run(after, native_trace, "--set", "burst_after_s=none")["burst_after_s"] is None
    assert _settings_run(after, native_trace, "--set", "burst_after_s=NULL")["burst_after_s"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "burst_after_s=3600", "--burst-after", "2h"],
            "error: --burst-after 2h and --set burst_after_s=3600 both set burst_after_s; give each setting once\n",
        ),
        (
            ["--set", "scan_depth=8", "--set", "scan_depth=16"],
            "error: --set scan_depth=8 and --set scan_depth=16 both set scan_depth; give each setting once\n",
        ),
        (
            ["--checkpoint-interval", "2h", "--set", "default_checkpoint_interval_s=60"],
            "error: --checkpoint-interval 2h and --set default_checkpoint_interval_s=60 both set "
            "default_checkpoint_interval_s; give each setting once\n",
        ),
    ],
)
def test_a_setting_given_twice_exits_2_naming_both(native_trace: Path, args: list[str], message: str) -> None:
    r = _simulate("--fleet", "examples/philly-burst", "--trace", str(native_trace), "--trace-format", "native", *args)
    assert (r.returncode, r.stderr, r.stdout) == (2, message, "")


@pytest.mark.parametrize("policy", ["fifo", "stargate"])
def test_a_slice_of_philly_with_until(policy: str) -> None:
    r = _simulate(
        "--fleet",
        "examples/philly",
        "--trace",
        "../shared/data/traces/philly/philly.csv",
        "--trace-format",
        "philly",
        "--until",
        "22d",
        "--policy",
        policy,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["jobs_total"] == 82_247 and out["policy"] == policy
    assert out["jobs_finished"] + out["jobs_rejected"] + out["jobs_pending_at_end"] == out["jobs_total"]
    assert 100 < out["jobs_finished"] < 5000 and out["jobs_pending_at_end"] > 70_000


def test_the_table_on_a_pipe(native_trace: Path) -> None:
    r = _simulate("--fleet", "examples/philly-burst", "--trace", str(native_trace), "--trace-format", "native")
    assert r.returncode == 0, r.stderr
    assert "simulation: policy gittins" in r.stdout and "GPU-hours" in r.stdout  # the default policy


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "lottery"], "--policy: found 'lottery'; expected one of fifo, gittins, las, srtf, stargate"),
        (["--until", "soon"], "--until: found 'soon'; expected a duration"),
        (["--failure", "cluster=nope,at=1h,for=1h"], "--failure: found cluster 'nope'"),
        (["--failure", "cluster=philly-owned"], "expected cluster=NAME,at=DURATION,for=DURATION"),
        (["--estimates", "psychic"], "--estimates: found 'psychic'"),
        (["--set", "runtime_weight"], "--set: found 'runtime_weight'; expected KEY=VALUE"),
        (["--set", "warp=9"], "--set warp=9: scheduling.settings.warp: found 'warp', expected a setting of policy"),
        (["--seed", "-1"], "--seed: found -1; expected a whole number >= 0"),
        (
            ["--set", "scan_depth=0"],
            "error: --set scan_depth=0: scheduling.settings.scan_depth: found 0, expected a whole number from 1 to "
            "1,000,000,000\n",
        ),
        (["--set", "scan_depth=1.5"], "--set scan_depth=1.5: scheduling.settings.scan_depth: found 1.5, expected"),
        (["--set", "preemption=5"], "--set preemption=5: scheduling.settings.preemption: found 5, expected true or"),
        (["--set", "reserve_after_s=nan"], "scheduling.settings.reserve_after_s: found nan, expected a number from"),
        (
            ["--policy", "stargate", "--set", "runtime_weight=1e999"],
            "scheduling.settings.runtime_weight: found 1e999, expected a number from",
        ),
        (["--set", "scan_depth=none"], "scheduling.settings.scan_depth: found none, expected a whole number from 1"),
        (["--set", "x=fast"], "--set: found 'x=fast'; expected KEY=VALUE with a number, true, false, inf or none"),
        (["--scale-arrivals", "inf"], "--scale-arrivals: found inf; expected a number from 0.001 to 1000"),
        (["--scale-arrivals", "1e-300"], "--scale-arrivals: found 1e-300"),
        (["--burst-wait-per-gpu-hour", "nan"], "--burst-wait-per-gpu-hour nan: scheduling.settings"),
        (
            ["--burst-wait-per-gpu-hour", "1e13"],
            "--burst-wait-per-gpu-hour 1e13: scheduling.settings.burst_wait_per_gpu_hour_s: found 1e13, expected a "
            "number from 0 to 1,000,000,000,000",
        ),
        (["--burst-wait-per-gpu-hour", "soon"], "--burst-wait-per-gpu-hour: found 'soon'; expected a number"),
        (["--checkpoint-interval", "0"], "--checkpoint-interval: found '0'; expected a positive duration"),
        (["--until", "9" * 400], "expected a finite duration"),
    ],
)
def test_bad_options_exit_2_with_a_located_message(native_trace: Path, args: list[str], message: str) -> None:
    r = _simulate("--fleet", "examples/philly-burst", "--trace", str(native_trace), "--trace-format", "native", *args)
    assert r.returncode == 2 and message in r.stderr and r.stdout == ""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_a_bad_fleet_or_trace_exits_2(tmp_path: Path, native_trace: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("name: x\nclusters:\n  - id: a\n    site: nowhere\n")
    r = _simulate("--fleet", str(bad), "--trace", str(native_trace), "--trace-format", "native")
    assert r.returncode == 2 and "fleet.yaml:" in r.stderr and r.stdout == ""
    r = _simulate("--fleet", "examples/philly", "--trace", str(tmp_path / "missing.csv"), "--trace-format", "native")
    assert r.returncode == 2 and "missing.csv" in r.stderr and "Traceback" not in r.stderr


def test_a_job_of_absurd_length_is_rejected_and_the_json_stays_strict(tmp_path: Path) -> None:
    trace = tmp_path / "huge.jsonl"
    rows = [
        '{"id":"huge","submit_s":0,"duration_s":1e308,"gpus":8,"queue":"vc-6214e9"}',
        '{"id":"ok","submit_s":0,"duration_s":100,"gpus":8,"queue":"vc-6214e9"}',
    ]
    trace.write_text("\n".join(rows) + "\n")
    r = _simulate("--fleet", "examples/philly", "--trace", str(trace), "--trace-format", "native", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert out["rejected_by_reason"] == {"duration_out_of_range": 1} and out["jobs_finished"] == 1


def test_bad_trace_rows_are_shown_located_on_stderr(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    rows = ["id,submit_s,duration_s,gpus,queue", "ok,0,100,8,vc-6214e9"] + [f"b{i},0,x,8,vc-6214e9" for i in range(8)]
    trace.write_text("\n".join(rows) + "\n")
    r = _simulate("--fleet", "examples/philly", "--trace", str(trace), "--trace-format", "native", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["trace"]["bad_rows"] == 8  # stdout stays one JSON object
    shown = [line for line in r.stderr.splitlines() if "bad.csv:" in line]
    assert len(shown) == 5 and "bad.csv:3:" in shown[0] and "duration_s" in shown[0]
    assert "... and 3 more bad rows" in r.stderr


def test_the_table_says_n_a_when_no_job_finished(tmp_path: Path) -> None:
    trace = tmp_path / "one.jsonl"
    trace.write_text('{"id":"a","submit_s":0,"duration_s":36000,"gpus":8,"queue":"vc-6214e9"}\n')
    args = ["--fleet", "examples/philly", "--trace", str(trace), "--trace-format", "native", "--until", "1h"]
    r = _simulate(*args)
    assert r.returncode == 0, r.stderr
    jct_row = next(line for line in r.stdout.splitlines() if "JCT" in line)
    assert "avg n/a, p50 n/a, p95 n/a, p99 n/a" in jct_row
    out = json.loads(_simulate(*args, "--json").stdout)
    assert out["avg_jct_s"] is None and out["jobs_finished"] == 0


@pytest.mark.parametrize(("n", "text"), [(1, "1 job read"), (2, "2 jobs read")])
def test_the_table_counts_jobs_in_the_singular_and_plural(tmp_path: Path, n: int, text: str) -> None:
    trace = tmp_path / "few.csv"
    trace.write_text("id,submit_s,duration_s,gpus,queue\n" + "".join(f"j{i},0,60,8,vc-6214e9\n" for i in range(n)))
    r = _simulate("--fleet", "examples/philly", "--trace", str(trace), "--trace-format", "native")
    assert r.returncode == 0, r.stderr
    assert text in r.stdout and "1 jobs" not in r.stdout


def test_estimates_are_learned_by_default_and_the_oracle_is_labelled(native_trace: Path) -> None:
    base = ["--fleet", "examples/philly-burst", "--trace", str(native_trace), "--trace-format", "native"]
    learned = _simulate(*base, "--json")
    assert learned.returncode == 0, learned.stderr
    out = json.loads(learned.stdout)
    error = out["estimate_error"]
    assert out["estimates"] == "learned"
    assert error["jobs_learned"] > 0 and error["jobs_own"] == 0 and error["jobs_default"] > 0
    assert error["median"] == 0.0  # every job of the queue runs 2 h: once learned, the estimate is exact
    oracle = json.loads(_simulate(*base, "--estimates", "actual", "--json").stdout)
    assert oracle["estimates"] == "actual" and oracle["estimate_error"]["jobs_own"] == 40
    table = _simulate(*base, "--estimates", "actual")
    assert table.returncode == 0 and "actual (oracle: actual run times)" in table.stdout
