"""SQLAlchemy models of inference services: the service, its replicas, and what each server process's proxy
measured of its traffic (kept apart from :mod:`stargate.store.models` to keep each module short; registered on
the same ``Base``, and imported by the ``stargate.store`` package so the metadata always holds them)."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stargate.store.models import ACTOR_MAX, Base, JsonType, UTCDateTime


class ServiceRow(Base):
    """An inference service as the API accepted it and the scheduler leader keeps it.

    ``state`` is ``active``, or ``deleting`` while its replicas drain (the row goes once none is left).
    ``desired_replicas`` is what the autoscaler asks for, ``current_replicas`` how many are ready. Replica numbers are
    never reused: ``next_number`` is the next one to give. ``decisions`` holds the most recent scale decisions
    (newest last), ``stats`` the traffic of the autoscaler's window, ``problem`` the last replica failure (empty once a
    replica is ready again); the leader writes those four."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(63), index=True)
    queue_id: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    state: Mapped[str] = mapped_column(String(16))
    desired_replicas: Mapped[int] = mapped_column(Integer)
    current_replicas: Mapped[int] = mapped_column(Integer, default=0)
    next_number: Mapped[int] = mapped_column(Integer, default=0)
    decisions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    problem: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_MAX))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceReplicaRow(Base):
    """One replica of a service: the job that runs it, where it stands (``pending``, ``starting``, ``ready``,
    ``draining``) and since when, and the loopback port it listens on. The row goes once its job is final."""

    __tablename__ = "service_replicas"

    service: Mapped[str] = mapped_column(ForeignKey("services.name", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    port: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceTrafficRow(Base):
    """What one server process's proxy measured of one service since that process started: cumulative counters
    (arrivals, tokens, completions, request-seconds in flight, latency histograms) and its requests in flight per
    replica now. The leader turns the differences between two reads into one traffic interval, so the traffic of
    every API server counts."""

    __tablename__ = "service_traffic"

    service: Mapped[str] = mapped_column(ForeignKey("services.name", ondelete="CASCADE"), primary_key=True)
    process: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    counters: Mapped[dict[str, Any]] = mapped_column(JsonType)
