"""Inference services in the server: replicas run as jobs, a reverse proxy spreads requests over the ready ones and
measures their traffic, and the scheduler leader's services step autoscales them.

- :mod:`.replica_job`: a replica as a job spec (kind ``serve``, never preemptible, with its ``PORT``).
- :mod:`.meter`: what one process's proxy measures of a service (counters, latency histograms).
- :mod:`.routes`: the ready replicas each proxy routes to (least outstanding requests).
- :mod:`.runtime`: the per-process state shared by the proxy and the scheduler (routes, meters, the flusher).
- :mod:`.control`: what the services step decides for one service (replica states, scale up, drain, replace).
- :mod:`.api`: the ``/api/v1/services`` logic (create, list, show, delete) with team isolation.
- :mod:`.proxy`: the reverse proxy at ``/services/NAME/...`` (the web layer only; never imported by the loop).
"""
