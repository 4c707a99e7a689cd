"""Retention of the cluster events: the pure rule (older than the days kept, but never a cluster's latest event) and
the store's pruning, which deletes exactly what the rule names, in batches, given a session or a database, on both
databases (``db``: tests/integration/store/conftest.py); the clusters' observed statuses (``cluster_health``) are
left as they are."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select

from stargate.store import Database
from stargate.store.models import ClusterEventRow
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change, expired, prune_cluster_events

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_the_rule_deletes_what_is_older_than_the_days_kept_but_each_clusters_latest() -> None:
    events = [
        (1, "a", _days_ago(200)),  # old, a newer event of a exists: deleted
        (2, "b", _days_ago(150)),  # old, b's latest: kept however old
        (3, "a", _days_ago(90)),  # exactly 90 days: kept
        (4, "a", _days_ago(90.001)),  # a moment more: deleted (a has a newer event)
        (5, "a", _days_ago(1)),  # a's latest
        (6, "c", _days_ago(120)),  # old, c's newest known is itself
        (7, "d", _days_ago(120)),  # a cluster whose latest is not known: kept
    ]
    latest = {"a": 5, "b": 2, "c": 6}
    assert expired(events, latest, NOW, 90) == [1, 4]
    assert expired(events, latest, NOW, 0) == [1, 3, 4]  # 0 days: all but each cluster's latest
    assert expired(events, latest, NOW, 365) == []


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_the_rule_refuses_a_negative_or_not_finite_number_of_days(bad: float) -> None:
    with pytest.raises(ValueError, match=r"keep_days: found .*; expected a number of days, 0 or more"):
        expired([], {}, NOW, bad)


def _fill(db: Database, count: int, seed: int) -> list[tuple[int, str, datetime]]:
    """``count`` events of five clusters at random times over the last 400 days, in time order (as the health step
    writes them), with a current status for each cluster; their (id, cluster, at)."""
    rng = random.Random(seed)
    times = sorted(_days_ago(rng.uniform(0, 400)) for _ in range(count))
    clusters = [f"c{rng.randrange(5)}" for _ in range(count)]
    with db.write() as s:
        health_repo.record(s, [Change(c, "slurm", "up", "down", "unreachable") for c in sorted(set(clusters))], NOW)
        s.execute(delete(ClusterEventRow))  # only the events below, not those record() wrote
        rows = [
            {"at": at, "cluster": c, "executor": "slurm", "from_status": "up", "to_status": "down", "reason": "x"}
            for at, c in zip(times, clusters, strict=True)
        ]
        s.execute(insert(ClusterEventRow), rows)
    return _stored(db)


def _stored(db: Database) -> list[tuple[int, str, datetime]]:
    with db.read() as s:
        query = select(ClusterEventRow.id, ClusterEventRow.cluster, ClusterEventRow.at).order_by(ClusterEventRow.id)
        return [(i, c, at) for i, c, at in s.execute(query)]


@pytest.mark.parametrize(("given", "seed"), [("database", 1), ("session", 2)])
def test_pruning_deletes_exactly_what_the_rule_names_in_batches(
    db: Database, given: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_repo, "PRUNE_BATCH", 7)  # many batches, some with nothing to delete
    before = _fill(db, 300, seed)
    latest: dict[str, int] = {}
    for i, cluster, _ in before:
        latest[cluster] = i
    doomed = set(expired(before, latest, NOW, 90))
    assert 100 < len(doomed) < 300  # the history reaches past the 90 days, and some of it is kept
    with db.read() as s:
        observed = health_repo.observed(s)
    if given == "database":
        deleted = prune_cluster_events(db, NOW, 90)
    else:
        with db.write() as s:
            deleted = prune_cluster_events(s, NOW, 90)
    after = _stored(db)
    assert deleted == len(doomed)
    assert after == [e for e in before if e[0] not in doomed]
    assert {c for _, c, _ in after} == set(latest)  # every cluster keeps its latest event
    assert all(at >= _days_ago(90) or latest[c] == i for i, c, at in after)
    with db.read() as s:
        assert health_repo.observed(s) == observed  # the current statuses and their 'since' stay
    assert prune_cluster_events(db, NOW, 90) == 0  # nothing more to prune


def test_pruning_a_log_with_nothing_old_deletes_nothing_and_bad_days_read_nothing(db: Database) -> None:
    assert prune_cluster_events(db, NOW) == 0
    with db.write() as s:
        health_repo.record(s, [Change("a", "slurm", "up", "down", "unreachable")], _days_ago(1000))
        health_repo.record(s, [Change("a", "slurm", "down", "up", "healthy again")], _days_ago(999))
    assert prune_cluster_events(db, NOW) == 1  # the default: 90 days; a's latest stays
    assert [(c, at) for _, c, at in _stored(db)] == [("a", _days_ago(999))]
    with pytest.raises(ValueError, match="keep_days: found -1"):
        prune_cluster_events(db, NOW, -1)
