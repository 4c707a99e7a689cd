"""A service's replica as a job: what the services step submits through the normal job checks.

The job is the engine's replica (:func:`stargate.engine.replicas.replica_terms`): the service's queue and priority
class, ``gpus_per_replica`` GPUs of a model the service has a profile for, no run time, never preemptible, named
after the service. Its environment is the service's plus ``PORT`` (the loopback port it must listen on),
``STARGATE_SERVICE`` and ``STARGATE_REPLICA`` (its number).
"""

import random
import socket
from collections.abc import Collection

from stargate.domain import JobKind, JobSpec
from stargate.domain.services import ServiceSpec

RESERVED_ENVIRONMENT = ("PORT", "STARGATE_SERVICE", "STARGATE_REPLICA")
"""Variables the control plane sets in every replica's environment (a service may not set them)."""
PORT_RANGE = (20_000, 30_000)
"""Replica ports are picked here: below Linux's default range of ephemeral ports (32768-60999), so an outgoing
connection (the proxy's own) never takes a port a replica was given between its pick and its start."""
HOST = "127.0.0.1"
"""Where replicas listen: the proxy and the health checks reach them on the server's loopback."""


def replica_spec(spec: ServiceSpec, number: int, port: int) -> JobSpec:
    """The job of replica ``number`` of ``spec``, listening on ``port``."""
    environment = {
        **spec.environment,
        "PORT": str(port),
        "STARGATE_SERVICE": spec.name,
        "STARGATE_REPLICA": str(number),
    }
    return JobSpec(
        name=spec.name,
        queue=spec.queue,
        kind=JobKind.SERVE,
        gpus=spec.gpus_per_replica,
        gpu_models=spec.accepted_models(),
        priority_class=spec.priority_class,
        preemptible=False,
        command=spec.command,
        image=spec.image,
        environment=environment,
    )


def free_port(taken: Collection[int], rng: random.Random | None = None, tries: int = 200) -> int:
    """A loopback port in :data:`PORT_RANGE` that no replica has (``taken``) and nothing listens on now (a bind
    succeeds); OSError when none is found in ``tries`` tries."""
    pick = rng or random.Random()
    for _ in range(tries):
        port = pick.randrange(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise OSError(f"no free loopback port in {PORT_RANGE[0]}-{PORT_RANGE[1] - 1} after {tries} tries")


def health_url(port: int, path: str) -> str:
    """The health check URL of a replica on ``port``."""
    return f"http://{HOST}:{port}{path}"
