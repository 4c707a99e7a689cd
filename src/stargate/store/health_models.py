"""SQLAlchemy model of the executors whose engine's health checks are failing now (kept apart from
:mod:`stargate.store.models` to keep each module short; registered on the same ``Base``, and imported by the
``stargate.store`` package so the metadata always holds it)."""

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stargate.store.models import Base, UTCDateTime


class ExecutorCheckRow(Base):
    """An executor whose engine failed its last health check: since when its checks fail (the first failed check of
    the streak), how many failed in a row, what the last one found, when it was made, and whether the engine did
    not answer (else: it answered with every node failed). No row: its last check did not fail, or it was never
    checked. The scheduler's leader writes it with each failed check and deletes it at the first check that does
    not fail, so a new leader counts ``health.down_after_s`` from the streak's first failure, not from its start."""

    __tablename__ = "executor_checks"

    executor: Mapped[str] = mapped_column(String(64), primary_key=True)
    failing_since: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_checks: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    unreachable: Mapped[bool] = mapped_column(Boolean)
