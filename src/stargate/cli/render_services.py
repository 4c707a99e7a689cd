"""How the service commands show services: a table of services, and one service with its replicas, its recent
scale decisions (with the autoscaler's reasons) and its traffic. Text from the server goes through
:func:`stargate.cli.text.cell`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from stargate.cli.render import console, gpu_count, when
from stargate.cli.text import cell, visible

_STATE_STYLE = {"ready": "green", "starting": "yellow", "draining": "magenta", "deleting": "yellow"}


def seconds(value: float | None) -> str:
    """A latency: ``0.62 s``, ``12 ms``; ``-`` when not measured."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 0.1 else f"{value:.2f} s"


def traffic_text(traffic: dict[str, Any] | None) -> str:
    """The window's load on one line, or why there is none yet."""
    if not traffic:
        return "not measured yet (the scheduler measures every few seconds)"
    return (
        f"{traffic['requests_per_s']:.2f} requests/s, {traffic['in_flight']:.1f} in flight over the last "
        f"{traffic['window_s']:g} s; {traffic['completed']:,} completed, {traffic['failed']:,} failed"
    )


def latency_text(traffic: dict[str, Any]) -> str:
    """The window's latencies on one line."""
    return (
        f"time to first token p50 {seconds(traffic['ttft_p50_s'])}, p99 {seconds(traffic['ttft_p99_s'])}; "
        f"end-to-end p50 {seconds(traffic['e2e_p50_s'])}, p99 {seconds(traffic['e2e_p99_s'])}"
    )


def render_services(items: list[dict[str, Any]]) -> None:
    """Services as a table: state, replicas ready of asked for, rate, requests in flight, latency."""
    table = Table(title=f"{len(items)} service{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in (
        "NAME",
        "TEAM",
        "STATE",
        "READY",
        "WANTED",
        "REQUESTS/S",
        "IN FLIGHT",
        "E2E P50",
        "E2E P99",
        "PROBLEM",
    ):
        right = name in {"READY", "WANTED", "REQUESTS/S", "IN FLIGHT", "E2E P50", "E2E P99"}
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "PROBLEM")
    for item in items:
        traffic = item.get("traffic") or {}
        table.add_row(
            cell(item["name"]),
            cell(item["team"]),
            _state(item["state"]),
            cell(item["ready_replicas"]),
            cell(item["desired_replicas"]),
            cell(f"{traffic['requests_per_s']:.2f}" if traffic else "-"),
            cell(f"{traffic['in_flight']:.1f}" if traffic else "-"),
            cell(seconds(traffic.get("e2e_p50_s"))),
            cell(seconds(traffic.get("e2e_p99_s"))),
            cell(item.get("problem") or ""),
        )
    console().print(table)


def render_service(item: dict[str, Any], base_url: str) -> None:
    """One service: what it is, its traffic and latest decision, its replicas, its recent scale decisions."""
    spec: dict[str, Any] = item.get("spec") or {}
    scaling = spec.get("autoscaling") or {}
    out = console()
    models = ", ".join(spec.get("gpu_models") or []) or "any profiled model"
    rows = [
        ("service", item["name"]),
        ("team / queue", f"{item['team']} / {item['queue']}"),
        ("state", item["state"]),
        ("url", f"{base_url.rstrip('/')}{item['url']}"),
        ("replicas", f"{item['ready_replicas']} ready of {item['desired_replicas']} wanted "
         f"({spec.get('min_replicas')} to {spec.get('max_replicas')}, {gpu_count(spec.get('gpus_per_replica', 0))} "
         f"each of {models})"),
        ("autoscaling", f"{scaling.get('policy')}, window {scaling.get('window_s'):g} s, down after "
         f"{scaling.get('downscale_delay_s'):g} s"),
        ("traffic", traffic_text(item.get("traffic"))),
    ]  # fmt: skip
    if item.get("traffic"):
        rows.append(("latency", latency_text(item["traffic"])))
    latest = (item.get("traffic") or {}).get("decision")
    if latest:
        rows.append(("autoscaler", f"wants {latest['wanted']}, keeps {latest['replicas']}: {latest['reason']}"))
    if item.get("problem"):
        rows.append(("problem", item["problem"]))
    head = Table(show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    for key, value in rows:
        head.add_row(key, _state(value) if key == "state" else cell(value))
    out.print(head)
    out.print(_replicas(item["replicas"]))
    out.print(_decisions(item["decisions"]))


def _replicas(replicas: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(replicas)} replica{'s' if len(replicas) != 1 else ''}", title_justify="left")
    for name in ("#", "STATE", "SINCE", "JOB", "JOB STATUS", "CLUSTER", "PORT"):
        table.add_column(name, no_wrap=True, justify="right" if name in {"#", "PORT"} else "left")
    for r in replicas:
        table.add_row(
            cell(r["number"]),
            _state(r["state"]),
            cell(when(r["since"])),
            cell(r["job"]),
            cell(r["job_status"]),
            cell(r["cluster"] or "-"),
            cell(r["port"]),
        )
    return table


def _decisions(decisions: list[dict[str, Any]]) -> Table:
    table = Table(title="recent scale decisions (oldest first)", title_justify="left")
    for name in ("AT", "REPLICAS", "WANTED", "REASON"):
        table.add_column(name, no_wrap=name != "REASON")
    for d in decisions:
        table.add_row(cell(when(d["at"])), cell(f"{d['from']} -> {d['to']}"), cell(d["wanted"]), cell(d["reason"]))
    return table


def _state(value: str) -> str:
    style = _STATE_STYLE.get(value)
    return f"[{style}]{visible(value)}[/]" if style else cell(value)
