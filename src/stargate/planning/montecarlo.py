"""Monte Carlo risk of a plan, in-process or on Ray.

The scenarios are split into chunks of consecutive indices; each chunk is evaluated by
:func:`stargate.engine.plan_risk.evaluate_many` and the outcomes are gathered in index order, so the summary is the
same whatever the number of workers (scenario k always draws from ``default_rng([seed, k])``).

``workers=0`` runs in this process without Ray. Otherwise, with ``ray_address`` the run connects to that cluster
(the nodes must have Stargate installed) and keeps at most ``workers`` chunks in flight (every CPU of the cluster
when ``workers`` is None); without it, a local Ray is started for the run with ``workers`` CPUs (the machine's
cores when None) and shut down after. A Ray already initialised in this process by the caller is used as it is and
left running. Anything that stops Ray from running the scenarios is a :class:`RayUnavailable` whose message says
what to do, never a hang.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from stargate.domain.planning import Risk
from stargate.engine.plan_risk import Outcome, RiskModel, evaluate_many, prepare, summarize
from stargate.engine.plan_types import Plan, PlanInputs, RiskSummary

Progress = Callable[[int, int], None]

CONNECT_TIMEOUT_S = 5.0
"""How long each step of the check of ``--ray-address`` waits (TCP connect, gRPC handshake, a Ray call), s."""
CHUNKS_PER_WORKER = 4
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""Object store of a Ray started for one run: the run puts one small model and gets back small outcomes."""
DEFAULT_RAY_PORT = 6379


class RayUnavailable(RuntimeError):
    """Ray cannot run the scenarios: not installed, the cluster does not answer, or it failed to start."""


def run_risk(
    inputs: PlanInputs,
    plan: Plan,
    risk: Risk,
    scenarios: int,
    seed: int,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> RiskSummary:
    """Evaluate ``scenarios`` Monte Carlo scenarios of the fixed ``plan`` and summarise them.

    Raises ValueError for fewer than 1 scenario or a negative number of workers, :class:`RayUnavailable` when Ray
    is needed and cannot run."""
    if scenarios < 1:
        raise ValueError(f"found {scenarios} scenarios, expected at least 1")
    if workers is not None and workers < 0:
        raise ValueError(f"found {workers} workers, expected 0 (in-process) or more")
    model = prepare(inputs, plan, risk)
    if workers == 0:
        outcomes = _in_process(model, scenarios, seed, progress)
    else:
        outcomes = _on_ray(model, scenarios, seed, workers, ray_address, progress)
    return summarize(outcomes, seed, inputs.months)


def chunks(scenarios: int, count: int) -> list[range]:
    """``scenarios`` indices split into at most ``count`` consecutive ranges of near-equal size, in order."""
    count = max(1, min(count, scenarios))
    size, extra = divmod(scenarios, count)
    out, start = [], 0
    for i in range(count):
        stop = start + size + (1 if i < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def _in_process(model: RiskModel, scenarios: int, seed: int, progress: Progress | None) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for part in chunks(scenarios, 20):
        outcomes.extend(evaluate_many(model, seed, part))
        if progress is not None:
            progress(len(outcomes), scenarios)
    return outcomes


def _on_ray(
    model: RiskModel,
    scenarios: int,
    seed: int,
    workers: int | None,
    ray_address: str | None,
    progress: Progress | None,
) -> list[Outcome]:
    try:
        import ray  # Ray takes seconds to import: only when asked for
    except ImportError as error:
        raise RayUnavailable("Ray is not installed: install it or run with --workers 0") from error
    started = False
    if not ray.is_initialized():
        _start(ray, workers, ray_address)
        started = True
    try:
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        parallel = workers or max(1, int(cpus))
        return _gather(ray, model, scenarios, seed, parallel, progress)
    except ray.exceptions.RayError as error:
        raise RayUnavailable(f"The Monte Carlo run failed on Ray: {_first_line(error)}") from error
    finally:
        if started:
            ray.shutdown()


def _start(ray: Any, workers: int | None, ray_address: str | None) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if ray_address is not None:
        check_reachable(ray_address)
        _use_token_if_available()
        where = f" at --ray-address {ray_address}"
        options["address"] = ray_address
    else:
        where = ""
        options.update(
            address="local",
            num_cpus=workers or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        )
    try:
        ray.init(**options)
    except Exception as error:  # Ray raises many kinds; the user needs the reason, not a traceback
        if ray.is_initialized():
            ray.shutdown()
        raise RayUnavailable(f"Ray could not start{where}: {_reason(ray, error)}") from error


def _use_token_if_available() -> None:
    """Send this machine's Ray token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) when connecting to an
    address, as Ray does for a cluster it finds itself: clusters started by ``ray.init`` or ``ray start`` ask for
    one. RAY_AUTH_MODE, when set, is respected."""
    try:
        from ray._private.authentication.authentication_token_setup import (  # private: no public way yet
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: the user sets RAY_AUTH_MODE=token themselves
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _reason(ray: Any, error: BaseException) -> str:
    """The first line of what went wrong, or what to do when the cluster refused the token."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ray.exceptions.AuthenticationError):
            return (
                "the cluster asks for an authentication token this machine does not have or that does not match: "
                "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token and RAY_AUTH_MODE=token"
            )
        seen = seen.__cause__ or seen.__context__
    return _first_line(error)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayUnavailable` naming ``--ray-address`` unless a Ray cluster answers there in time: a TCP
    connection opens, the other end speaks gRPC (HTTP/2), and a Ray call gets a Ray answer (``ray.init`` retries
    forever against a port that is not Ray, gRPC or not). Each step waits ``timeout_s`` at most. ``auto`` and
    ``local`` are left to Ray (they name no host)."""
    if address in ("auto", "local"):
        return
    host, port = _host_port(address)
    fix = "start one with `ray start --head`, fix the address, or run with --workers 0"
    try:
        conn = socket.create_connection((host, port), timeout=timeout_s)
    except (OSError, ValueError) as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (getattr(error, "strerror", None) or str(error))
        raise RayUnavailable(
            f"No Ray cluster answers at --ray-address {address} ({host}:{port}: {reason} within {timeout_s:g} s): {fix}"
        ) from error
    try:
        with conn:
            conn.settimeout(timeout_s)
            conn.sendall(_HTTP2_PREFACE + _HTTP2_SETTINGS)
            reply = _read(conn, 9)
    except OSError:
        reply = b""
    if len(reply) < 9 or reply[3] != _HTTP2_SETTINGS_TYPE:
        raise RayUnavailable(
            f"Something listens at --ray-address {address} ({host}:{port}) but it is not a Ray cluster (no gRPC "
            f"reply within {timeout_s:g} s): {fix}"
        )
    why = _ray_call_refused(host, port, client=address.startswith("ray://"), timeout_s=timeout_s)
    if why is not None:
        raise RayUnavailable(
            f"A gRPC server answers at --ray-address {address} ({host}:{port}) but it is not a Ray cluster ({why}): "
            f"{fix}"
        )


def _ray_call_refused(host: str, port: int, *, client: bool, timeout_s: float) -> str | None:
    """Why a cheap Ray call to ``host:port`` got no Ray answer, or None when Ray answered: GetClusterId of a GCS,
    or a ping of a Ray Client server (``ray://``). An answer that asks for a token is Ray's (token authentication,
    handled when ``ray.init`` connects)."""
    try:
        import grpc  # a dependency of ours (pyproject.toml): plain `ray` does not install it

        kind = "ray_client" if client else "gcs_service"
        messages: Any = importlib.import_module(f"ray.core.generated.{kind}_pb2")
        services: Any = importlib.import_module(f"ray.core.generated.{kind}_pb2_grpc")
    except ImportError:  # another Ray layout: ray.init says what is wrong
        return None
    proxy = os.environ.get("RAY_grpc_enable_http_proxy", "0").lower() in ("1", "true")  # noqa: SIM112  # as Ray
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", int(proxy))]) as channel:
        try:
            if client:
                ping = messages.ClusterInfoRequest(type=messages.ClusterInfoType.PING)
                services.RayletDriverStub(channel).ClusterInfo(ping, timeout=timeout_s)
            else:
                services.NodeInfoGcsServiceStub(channel).GetClusterId(messages.GetClusterIdRequest(), timeout=timeout_s)
        except grpc.RpcError as error:
            call: Any = error  # a failed call's error is also a grpc.Call: code() and details()
            code = call.code()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"no answer to a Ray call within {timeout_s:g} s"
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return "it does not serve Ray's calls"
            details = (call.details() or "").strip().splitlines()
            return f"a Ray call ended {code.name}" + (f": {details[0][:200]}" if details else "")
    return None


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""An empty HTTP/2 SETTINGS frame: a gRPC server answers the preface with its own SETTINGS frame."""
_HTTP2_SETTINGS_TYPE = 0x04


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _host_port(address: str) -> tuple[str, int]:
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        port_text = tail.lstrip(":")
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    if not host:
        raise RayUnavailable(f"found --ray-address {address!r}, expected HOST:PORT (e.g. 10.0.0.5:6379)")
    if not port_text:
        return host, 10001 if address.startswith("ray://") else DEFAULT_RAY_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RayUnavailable(f"found --ray-address {address!r}, expected HOST:PORT with a port from 1 to 65535")
    return host, int(port_text)


def _gather(
    ray: Any, model: RiskModel, scenarios: int, seed: int, parallel: int, progress: Progress | None
) -> list[Outcome]:
    task = ray.remote(num_cpus=1, max_retries=1)(evaluate_many)
    model_ref = ray.put(model)
    parts = chunks(scenarios, CHUNKS_PER_WORKER * parallel)
    results: dict[int, list[Outcome]] = {}
    pending: dict[Any, int] = {}
    waiting = list(enumerate(parts))
    done = 0
    while waiting or pending:
        while waiting and len(pending) < parallel:
            number, part = waiting.pop(0)
            pending[task.remote(model_ref, seed, part)] = number
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            number = pending.pop(ref)
            results[number] = ray.get(ref)
            done += len(parts[number])
            if progress is not None:
                progress(done, scenarios)
    return [outcome for number in range(len(parts)) for outcome in results[number]]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


__all__: Sequence[str] = ("RayUnavailable", "check_reachable", "chunks", "run_risk")
