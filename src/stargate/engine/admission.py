"""Quotas per GPU class and borrowing inside a cohort (as in Kueue).

A queue with no quotas is unlimited. Otherwise a job of ``n`` GPUs of model ``m`` is charged to the quota key
``k = m`` when the queue has a quota for ``m``, else ``k = '*'``; with neither, the queue may not use ``m``.
With ``u(q, k)`` the GPUs queue ``q`` runs under key ``k``, ``N(q, k)`` its nominal quota, ``B(q, k)`` its
borrowing limit and ``C`` its cohort, the job is admitted when::

    u(q, k) + n <= N(q, k)                                    (inside its own quota), or
    u(q, k) + n - N(q, k) <= B(q, k)  and  sum_{p in C} u(p, k) + n <= sum_{p in C} N(p, k)   (borrowing)

A queue without a cohort cannot borrow. A job is rejected outright (``exceeds_quota``) when even an idle
cohort could not admit it: ``n > N(q, k) + min(B(q, k), sum_{p in C} N(p, k) - N(q, k))`` for every key.
"""

from __future__ import annotations

from collections import defaultdict

from stargate.domain.teams import ANY_GPU
from stargate.engine.index import FleetIndex


class Admission:
    """Quota usage per queue and cohort, and the admission test above."""

    def __init__(self, index: FleetIndex) -> None:
        """Start with no usage."""
        self.queues = index.queues
        self.usage: list[dict[str, int]] = [defaultdict(int) for _ in self.queues]
        self.cohort_nominal: dict[tuple[str, str], int] = defaultdict(int)
        self.cohort_usage: dict[tuple[str, str], int] = defaultdict(int)
        for q in self.queues:
            if q.cohort is not None:
                for key, (nominal, _) in q.quotas.items():
                    self.cohort_nominal[(q.cohort, key)] += nominal
        self.unlimited = [not q.quotas for q in self.queues]
        self.star_only = [set(q.quotas) == {ANY_GPU} for q in self.queues]
        """Queues whose only quota is '*': one check covers every GPU model."""

    def allowed(self, queue: int, models: tuple[str, ...], n: int) -> tuple[str, ...]:
        """The models among ``models`` on which ``n`` more GPUs may be admitted for ``queue`` now."""
        if self.unlimited[queue]:
            return models
        if self.star_only[queue]:
            return models if models and self.fits(queue, models[0], n) else ()
        return tuple(m for m in models if self.fits(queue, m, n))

    def key(self, queue: int, model: str) -> str | None:
        """The quota key a job of ``queue`` on ``model`` is charged to (None: not allowed)."""
        quotas = self.queues[queue].quotas
        if model in quotas:
            return model
        return ANY_GPU if ANY_GPU in quotas else None

    def fits(self, queue: int, model: str, n: int) -> bool:
        """True when ``n`` more GPUs of ``model`` may be admitted for ``queue`` now."""
        return self._admits(queue, model, n, idle=False)

    def ever_fits(self, queue: int, model: str, n: int) -> bool:
        """True when an idle cohort could admit ``n`` GPUs of ``model`` for ``queue``."""
        return self._admits(queue, model, n, idle=True)

    def _admits(self, queue: int, model: str, n: int, *, idle: bool) -> bool:
        """The quota rule, on current usage or (``idle``) on an idle cohort: within the nominal quota, or
        borrowing at most ``borrow`` GPUs while the cohort stays within its summed nominal quota."""
        if self.unlimited[queue]:
            return True
        q = self.queues[queue]
        k = self.key(queue, model)
        if k is None:
            return False
        nominal, borrow = q.quotas[k]
        used = n if idle else self.usage[queue][k] + n
        if used <= nominal:
            return True
        if q.cohort is None or used - nominal > borrow:
            return False
        cohort_used = 0 if idle else self.cohort_usage[(q.cohort, k)]
        return cohort_used + n <= self.cohort_nominal[(q.cohort, k)]

    def charge(self, queue: int, model: str, n: int) -> None:
        """Account ``n`` GPUs (negative to release) of ``model`` to ``queue``."""
        if self.unlimited[queue]:
            return
        k = self.key(queue, model)
        assert k is not None
        self.usage[queue][k] += n
        cohort = self.queues[queue].cohort
        if cohort is not None:
            self.cohort_usage[(cohort, k)] += n
