"""``stargate simulate --services`` run as a user would (a subprocess) on the real Azure LLM conversation trace and
the example fleet: the JSON summary, the training JCT impact, the table, and located errors."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURE = ROOT.parent / "shared" / "data" / "traces" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
FLEET = ROOT / "examples" / "stargate-2025"
CHAT = ROOT / "examples" / "services" / "chat.yaml"
SERVICE_FIELDS = {
    "name",
    "requests",
    "requests_served",
    "requests_unserved",
    "attainment_pct",
    "objective_met",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "replica_hours",
    "gpu_hours",
    "cost_usd",
    "scale_events",
    "scale_events_detail",
}


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stargate", "simulate", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _services(*extra: str, services: Path = CHAT, requests: Path = AZURE, fmt: str = "azure-llm") -> list[str]:
    return ["--fleet", str(FLEET), "--services", str(services), "--requests", str(requests), "--requests-format", fmt]


def test_the_chat_service_replays_the_azure_trace_in_seconds() -> None:
    started = time.perf_counter()
    r = _simulate(*_services(), "--json")
    elapsed = time.perf_counter() - started
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    (chat,) = out["services"]
    assert set(chat) >= SERVICE_FIELDS
    assert (chat["name"], chat["requests"], chat["requests_served"]) == ("chat", 19_366, 19_366)
    assert 0 <= chat["attainment_pct"] <= 100 and chat["objective_met"] is (chat["attainment_pct"] >= 99.0)
    assert 0 < chat["ttft_s"]["p50"] <= chat["ttft_s"]["p99"] and 0 < chat["e2e_s"]["p50"] <= chat["e2e_s"]["p99"]
    assert chat["tpot_s"]["p50"] <= chat["tpot_s"]["p99"]
    # 4-GPU replicas on the Azure H100 pool at 12.29 USD per GPU-hour, for about the trace's hour.
    assert chat["gpu_hours"] == pytest.approx(4 * chat["replica_hours"], abs=1e-3)
    assert chat["cost_usd"] == pytest.approx(chat["gpu_hours"] * 12.29, abs=0.01)
    assert chat["replica_hours"] >= 3_501.7 / 3600
    # 5.5 requests/s of about 4 s each hold at most about 40 of one replica's 64 slots: the hour fits in one replica,
    # and the stargate policy (no rise extrapolated over the cold start) never scales.
    assert chat["replicas_max"] == 1 and chat["scale_events"] == len(chat["scale_events_detail"]) == 0
    assert out["training"] == {"measured": False, "why": "no training trace (--trace)", "jobs": 0}
    assert out["requests"]["start"] == "2023-11-16T18:15:46.680590+00:00" and out["requests"]["bad_rows"] == 0
    assert elapsed < 30 and out["wall_s"] < 5


def test_with_a_training_trace_the_jct_impact_is_measured_against_the_trace_alone() -> None:
    workload = FLEET / "workload.csv"
    r = _simulate(*_services(), "--trace", str(workload), "--trace-format", "native", "--requests-at", "30d", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    t = out["training"]
    assert t["measured"] is True and t["jobs"] == 324
    assert t["with_services"]["jobs_finished"] == t["without_services"]["jobs_finished"] == 324
    assert t["mean_jct_change_pct"] is not None and t["median_jct_change_pct"] is not None
    assert out["services"][0]["start_s"] == 30 * 86_400 and out["training_summary"]["jobs_total"] == 324


def test_without_json_a_table_per_service_is_printed() -> None:
    r = _simulate(*_services())
    assert r.returncode == 0, r.stderr
    assert "service chat" in r.stdout and "19,366 served" in r.stdout and "training: not measured" in r.stdout


def test_a_service_the_fleet_has_no_queue_for_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "chat.yaml"
    bad.write_text(CHAT.read_text().replace("queue: product-inference", "queue: nowhere"))
    r = _simulate(*_services(services=bad), "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert f"error: {bad}: service 'chat' (number 1 in the file): queue: found 'nowhere'; expected a queue of" in (
        r.stderr
    )


def test_a_services_file_with_a_bad_field_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "chat.yaml"
    text = CHAT.read_text()
    line = text.splitlines().index(next(x for x in text.splitlines() if "ttft_s: 1.0" in x)) + 1
    bad.write_text(text.replace("ttft_s: 1.0", "ttft_s: soon"))
    r = _simulate(*_services(services=bad))
    assert r.returncode == 2
    assert f"error: {bad}:{line}:3: objective.ttft_s: found 'soon'; expected a number" in r.stderr


def test_a_request_naming_an_unknown_service_is_a_located_error(tmp_path: Path) -> None:
    trace = tmp_path / "requests.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens,service\n0,10,5,chat\n1,10,5,code\n")
    r = _simulate(*_services(requests=trace, fmt="native"))
    assert r.returncode == 2
    assert f"error: {trace}:3: service: found 'code'; expected a service of the services file (chat)" in r.stderr


def test_bad_request_rows_are_skipped_with_a_located_warning(tmp_path: Path) -> None:
    trace = tmp_path / "requests.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10,0\n2,10,5\n")
    r = _simulate(*_services(requests=trace, fmt="native"), "--json")
    assert r.returncode == 0, r.stderr
    assert f"warning: bad request row skipped: {trace}:3: output_tokens: found '0', expected a whole number" in r.stderr
    out = json.loads(r.stdout)
    assert out["services"][0]["requests_served"] == 2 and out["requests"]["bad_rows"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requests-format", "azure-llm"], "--services: given without --requests and --requests-format"),
        (["--requests", "x.csv", "--requests-format", "splitwise"], "--requests-format: found 'splitwise'"),
        (["--requests", "x.csv", "--requests-format", "native", "--tick", "0"], "--tick: found '0'"),
    ],
)
def test_malformed_service_options_exit_2(args: list[str], message: str) -> None:
    r = _simulate("--fleet", str(FLEET), "--services", str(CHAT), *args)
    assert r.returncode == 2 and message in r.stderr and r.stdout == ""


def test_requests_without_services_exit_2() -> None:
    r = _simulate("--fleet", str(FLEET), "--requests", str(AZURE), "--requests-format", "azure-llm")
    assert r.returncode == 2 and "--requests: given without --services" in r.stderr
