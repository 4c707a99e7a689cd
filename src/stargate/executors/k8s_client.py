"""The Kubernetes executor's client: the ``ApiClient`` built from a fleet file's executor entry, its errors, and
reading what the API server answers (pure helpers of :mod:`stargate.executors.kubernetes`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import EngineUnreachableError
from stargate.executors.redact import credentials, redact


class KubernetesExecutorError(RuntimeError):
    """The executor cannot be built from its settings, or the API server answered an error it cannot use."""


class KubernetesUnreachable(KubernetesExecutorError, EngineUnreachableError):
    """The API server did not answer (refused, timed out, TLS failure): never a reason to call a run lost."""


def api_client(config: KubernetesExecutorConfig) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``config``: its address, bearer token (from ``token_env``) and CA
    file; or its kubeconfig (the default one when it names none; the pod's service account when the server runs
    in the cluster and has no kubeconfig). :class:`KubernetesExecutorError` naming what is missing."""
    where = f"executor '{config.id}'"
    token = None
    if config.token_env:
        token = os.environ.get(config.token_env)
        if not token:
            raise KubernetesExecutorError(
                f"{where}: environment variable {config.token_env} (its token_env) is not set in the server's "
                "environment; it must hold the bearer token for the Kubernetes API server"
            )
    configuration = k8s.Configuration()
    if config.address:
        configuration.host = config.address.rstrip("/")
    elif config.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and not default_kubeconfig():
        try:  # the server runs in a pod: its service account's token and CA
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException as exc:
            raise KubernetesExecutorError(f"{where}: in-cluster configuration: {brief(exc)}") from None
    else:
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=config.kubeconfig, client_configuration=configuration
            )
        except (k8s_config.ConfigException, OSError, TypeError, ValueError) as exc:
            path = config.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise KubernetesExecutorError(
                f"{where}: no usable kubeconfig at {path} ({brief(exc)}); set `address:` (with `token_env:`) or "
                "`kubeconfig:` in its fleet-file entry"
            ) from None
    if token:
        configuration.api_key = {"BearerToken": token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
    if config.ca_file:
        if not Path(config.ca_file).is_file():
            raise KubernetesExecutorError(f"{where}: ca_file {config.ca_file} is not a readable file")
        configuration.ssl_ca_cert = config.ca_file
    configuration.retries = 0  # the scheduler calls again next cycle; a call's time stays bounded by its timeout
    return k8s.ApiClient(configuration)


def default_kubeconfig() -> bool:
    """True when KUBECONFIG is set or ~/.kube/config exists."""
    return bool(os.environ.get("KUBECONFIG")) or Path("~/.kube/config").expanduser().is_file()


def json_of(response: Any) -> dict[str, Any]:
    found = json.loads(response.data)
    if not isinstance(found, dict):
        raise KubernetesExecutorError(f"the API server answered {type(found).__name__}, not an object")
    return found


def status_body(exc: Any) -> dict[str, Any]:
    """The Status object of an error response (empty when its body is not one)."""
    try:
        found = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def reason_of(exc: Any) -> str:
    return str(status_body(exc).get("reason") or "")


def message_of(exc: Any, secrets: Iterable[str] = ()) -> str:
    """The message of an error response (its Status object's, else the HTTP reason) on one line, at most 500
    characters, without ``secrets``."""
    status = status_body(exc)
    text = status.get("message") or exc.reason or ""
    return " ".join(redact(str(text), secrets).split())[:500]


def brief(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """An exception on one line, at most 300 characters, without ``secrets`` (an ``ApiException`` holds the
    response's headers and body)."""
    return " ".join(redact(f"{type(exc).__name__}: {exc}", secrets).split())[:300]


def secrets_of(configuration: Any) -> tuple[str, ...]:
    """The credentials a client ``Configuration`` sends: its API keys (a bearer token, alone or as ``Bearer
    <token>``, from ``token_env`` or a kubeconfig, refreshed ones included) and its password."""
    found: list[str] = []
    for value in (getattr(configuration, "api_key", None) or {}).values():
        found += credentials(value) if isinstance(value, str) else ()
    password = getattr(configuration, "password", None)
    return (*found, password) if isinstance(password, str) and password else tuple(found)


def node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
