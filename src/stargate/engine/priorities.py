"""Which priority a job runs at: one rule for the server's submissions and the simulator's arrivals.

A job names a priority class or none. The classes its queue may use are the queue's ``priority_classes`` (empty:
every class of the fleet). With no class named, the queue's ``default_priority_class`` applies, else the lowest the
queue may use. A class the fleet does not define, or the queue does not allow, is refused
(:attr:`~stargate.engine.types.Reason.PRIORITY_CLASS_NOT_ALLOWED`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stargate.domain import Fleet


@dataclass(frozen=True, slots=True)
class Resolved:
    """A job's priority class, its value, and whether it may preempt lower-priority work."""

    name: str
    value: int
    preempts_lower: bool


class PriorityRule:
    """The fleet's priority classes and each queue's allowed classes and default, indexed once per fleet."""

    def __init__(self, fleet: Fleet) -> None:
        """Index ``fleet``'s classes and queues."""
        self._classes = {p.name: Resolved(p.name, p.value, p.preempts_lower) for p in fleet.priority_classes}
        self._allowed: dict[str, tuple[str, ...]] = {}
        self._default: dict[str, Resolved | None] = {}
        self._memo: dict[tuple[str, str | None], Resolved | None] = {}
        for q in fleet.queues:
            allowed = tuple(n for n in self._classes if not q.priority_classes or n in q.priority_classes)
            self._allowed[q.id] = allowed
            name = q.default_priority_class or min(allowed, key=lambda n: self._classes[n].value, default=None)
            self._default[q.id] = self._classes.get(name) if name in allowed else None

    def resolve(self, queue: str, priority_class: str | None) -> Resolved | None:
        """The priority of a job of ``queue`` naming ``priority_class`` (None: none named); None when refused."""
        key = (queue, priority_class)
        if key not in self._memo:
            if priority_class is None:
                found = self._default.get(queue)
            else:
                found = self._classes.get(priority_class)
                if found is not None and priority_class not in self._allowed.get(queue, ()):
                    found = None
            self._memo[key] = found
        return self._memo[key]

    def allowed(self, queue: str) -> tuple[str, ...]:
        """The class names a job of ``queue`` may use, in the fleet's order (empty for an unknown queue)."""
        return self._allowed.get(queue, ())
