"""The pressure trigger: persistent queue pressure on a GPU model raises a capacity request.

Pressure on a model holds while the GPUs of jobs waiting at least ``min_wait_hours`` (what
:meth:`stargate.engine.driver.Driver.waiting_gpus` returns) are at least ``min_waiting_gpus``. Once it has held for
``sustain_hours``, and no request for the model is open and none was raised in the last ``cooldown_days``, the gauge
raises a request for the waiting GPUs rounded up to a multiple of ``block_gpus``, starting ``lead_time_days`` after
the raise day, for ``term_days``. Pressure that drops below the threshold starts over. Pure: the caller passes
``now``; the gauge remembers when pressure began and when it last raised, per model.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from stargate.domain import PressureSettings
from stargate.engine.procurement_checks import MAX_ID_CHARS, instant
from stargate.engine.procurement_types import CapacityRequest

ANY_MODEL = "*"
"""The key of jobs that accept any GPU model in ``waiting_gpus``."""


def request_id(model: str, now: datetime) -> str:
    """``pressure-<model>-<YYYYMMDD>t<HHMMSS>``, or, when that leaves no room for the award's ids (a long custom
    model name), ``p<YYYYMMDDHHMMSS><6 hex digits of the model's CRC-32>``."""
    rid = f"pressure-{model.lower()}-{now:%Y%m%dt%H%M%S}"
    if len(f"award-{rid}-{model}") <= MAX_ID_CHARS:
        return rid
    return f"p{now:%Y%m%d%H%M%S}{zlib.crc32(model.encode()) & 0xFFFFFF:06x}"


class PressureGauge:
    """Watches waiting GPUs per model and raises capacity requests when pressure persists."""

    def __init__(
        self,
        settings: PressureSettings,
        *,
        any_gpu_model: str | None = None,
        began: Mapping[str, datetime] | None = None,
        last_raised: Mapping[str, datetime] | None = None,
    ) -> None:
        """``any_gpu_model``: the model that demand for any model ('*') counts towards (None: it is not counted);
        ``began`` and ``last_raised``: saved state (per model) for a restart."""
        self.settings = settings
        self.any_gpu_model = any_gpu_model
        self.began: dict[str, datetime] = dict(began or {})
        """When pressure on each model began (only models under pressure)."""
        self.last_raised: dict[str, datetime] = dict(last_raised or {})
        """When the gauge last raised a request for each model."""

    @property
    def min_wait_s(self) -> float:
        """How long a job must have waited to count, s (pass it to ``Driver.waiting_gpus``)."""
        return self.settings.min_wait_hours * 3600.0

    def observe(self, now: datetime, waiting_gpus: Mapping[str, int], open_models: set[str]) -> list[CapacityRequest]:
        """Update pressure at ``now`` and return the requests to raise (sorted by model), possibly none.

        ``open_models``: models with a request still open (``ProcurementBook.open_models()``).
        """
        now = instant(now, "observe.now")
        s = self.settings
        waiting: dict[str, int] = {}
        for model, gpus in waiting_gpus.items():
            key = self.any_gpu_model if model == ANY_MODEL else model
            if key is not None:
                waiting[key] = waiting.get(key, 0) + gpus
        for model in list(self.began):
            if waiting.get(model, 0) < s.min_waiting_gpus:
                del self.began[model]
        out: list[CapacityRequest] = []
        for model in sorted(waiting):
            gpus = waiting[model]
            if gpus < s.min_waiting_gpus:
                continue
            began = self.began.setdefault(model, now)
            if now - began < timedelta(hours=s.sustain_hours) or model in open_models:
                continue
            last = self.last_raised.get(model)
            if last is not None and now - last < timedelta(days=s.cooldown_days):
                continue
            block = s.block_gpus
            wanted = -(-gpus // block) * block
            out.append(
                CapacityRequest(
                    id=request_id(model, now),
                    gpu_model=model,
                    gpus=wanted,
                    start=now.date() + timedelta(days=s.lead_time_days),
                    term_days=s.term_days,
                    raised_by="pressure",
                    actor="pressure",
                    at=now,
                    reason=(
                        f"{gpus:,} {model} GPUs waited at least {s.min_wait_hours:g} h, at least "
                        f"{s.min_waiting_gpus:,} GPUs since {began.isoformat()} (sustained {s.sustain_hours:g} h); "
                        f"requested in blocks of {block:,} GPUs"
                    ),
                )
            )
            self.last_raised[model] = now
        return out
