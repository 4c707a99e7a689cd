"""Inference services in the server: replicas run as jobs, a reverse proxy spreads requests over the ready ones and
measures their traffic, and the scheduler leader's services step autoscales them.

- :mod:`.replica_job`: a replica as a job spec (kind ``serve``, never preemptible, with its ``PORT``).
- :mod:`.meter`: what one process's proxy measures of a service (cumulative counters, latency histograms).
- :mod:`.traffic`: the leader's side: every process's counters turned into one traffic interval per tick.
- :mod:`.routes`: the ready replicas each proxy routes to (least outstanding requests).
- :mod:`.runtime`: the per-process state shared by the proxy and the scheduler (routes, meters, the flusher).
- :mod:`.control`: what the services step decides for one service (replica states, scale up, drain, replace).
- :mod:`.checks`: the replicas' health checks, on threads of their own.
- :mod:`.metrics`: the services' Prometheus metrics.
- :mod:`.proxy` and :mod:`.upstream`: the reverse proxy at ``/services/NAME/...`` and its client to the replicas
  (the web layer only: the scheduler loop never imports them).

The ``/api/v1/services`` logic is :mod:`stargate.server.services.inference`; the step is
:mod:`stargate.server.scheduling.services`.
"""
