"""Costs through the API: runs charged from their start to their end (a running run up to now) at the price they
were placed with, grouped by team, contract, provider, day, queue or job; members and viewers see their own team's;
the ledger as a FOCUS CSV; a provider's bill reconciled, a bad bill refused with its line and column."""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from integration.server.money_support import Money, money_harness
from stargate.server.scheduling import run_cycle
from stargate.store import RunRow, parse_job_id
from stargate.store.repositories import procurement as repo

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _run(m: Money, team: str, **values: object) -> str:
    """A job of ``team`` with one run row of the given cost columns; its id."""
    job = m.h.submit(team=team, queue=f"{team}-q")
    row_id = parse_job_id(str(job["id"]))
    assert row_id is not None
    run = {
        "job_id": row_id,
        "attempt": 0,
        "executor": "local",
        "cluster": "lab-h100",
        "created_at": T0,
        "ended": values.get("ended_at") is not None,
        "gpus": 4,
        "price_usd_per_gpu_hour": Decimal("2.5"),
        "list_price_usd_per_gpu_hour": Decimal("2.5"),
        "provider": "lab",
        "gpu_model": "H100-SXM",
        "region": "local",
        "started_at": T0,
    } | values
    with m.h.ctx.db.write() as session:
        session.add(RunRow(**run))
    return str(job["id"])


@pytest.fixture
def runs(m: Money) -> dict[str, str]:
    """alpha: 4 GPUs × 2.5 USD × 4 h across midnight (40 USD: 20 on each day), under no contract; beta: 2 GPUs ×
    10 USD × 1 h under contract 'oracle-frame' at Oracle (20 USD); alpha: a run still running since 01:00 (1 GPU ×
    2.5 USD, up to now = 12:00, 27.5 USD)."""
    m.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    return {
        "a": _run(m, "alpha", ended_at=T0 + timedelta(hours=4)),
        "b": _run(
            m,
            "beta",
            gpus=2,
            price_usd_per_gpu_hour=Decimal("10"),
            list_price_usd_per_gpu_hour=Decimal("11"),
            contract="oracle-frame",
            provider="oracle",
            cluster="oracle-gb200",
            started_at=T0 + timedelta(hours=3),
            ended_at=T0 + timedelta(hours=4),
        ),
        "c": _run(m, "alpha", gpus=1, started_at=T0 + timedelta(hours=3)),
    }


def _by(m: Money, by: str, headers: dict[str, str] | None = None, **params: str) -> dict[str, Decimal]:
    out = m.ok("GET", "/costs", headers, params={"by": by, **params})
    rows = {r["key"]: Decimal(r["cost_usd"]) for r in out["rows"]}
    assert sum(rows.values()) == Decimal(out["total_usd"])
    return rows


def test_costs_group_the_runs_exactly(m: Money, runs: dict[str, str]) -> None:
    assert _by(m, "team") == {"alpha": Decimal("67.5"), "beta": Decimal("20")}
    assert _by(m, "contract") == {"(none)": Decimal("67.5"), "oracle-frame": Decimal("20")}
    assert _by(m, "provider") == {"lab": Decimal("67.5"), "oracle": Decimal("20")}
    assert _by(m, "day") == {"2026-11-30": Decimal("20"), "2026-12-01": Decimal("67.5")}
    assert _by(m, "queue") == {"alpha-q": Decimal("67.5"), "beta-q": Decimal("20")}
    assert _by(m, "job") == {runs["a"]: Decimal("40"), runs["b"]: Decimal("20"), runs["c"]: Decimal("27.5")}
    assert _by(m, "team", since="2026-12-01") == {"alpha": Decimal("47.5"), "beta": Decimal("20")}
    contracts = {c["id"]: c for c in m.ok("GET", "/contracts")}
    assert Decimal(contracts["oracle-frame"]["spent_usd"]) == Decimal("20")
    assert m.ok("GET", "/contracts", m.h.headers("member", "alpha"))[0]["spent_usd"] is None


def test_members_and_viewers_see_their_own_teams_costs_only(m: Money, runs: dict[str, str]) -> None:
    for role in ("member", "viewer"):
        out = m.ok("GET", "/costs", m.h.headers(role, "beta"), params={"by": "job"})
        assert out["team"] == "beta" and [r["key"] for r in out["rows"]] == [runs["b"]]
    assert m.call("GET", "/costs", m.provider("oracle")).status_code == 403
    bad = m.call("GET", "/costs", params={"by": "colour"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("by: found 'colour'")
    backwards = m.call("GET", "/costs", params={"since": "2026-12-02", "until": "2026-12-01"})
    assert backwards.status_code == 422 and "until" in backwards.json()["detail"]


def _focus(m: Money, headers: dict[str, str] | None = None) -> str:
    response = m.call("GET", "/costs/focus", headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return str(response.text)


def test_focus_export_has_a_row_per_run_and_day_and_reconciles_with_itself(m: Money, runs: dict[str, str]) -> None:
    text = _focus(m)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4  # run a on two days, b and c on one each
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("87.5")
    assert {r["BillingCurrency"] for r in rows} == {"USD"} and rows[0]["BillingAccountId"] == "money"
    assert {r["SubAccountId"] for r in _rows(_focus(m, m.h.headers("member", "beta")))} == {"beta"}
    same = m.ok("POST", "/costs/reconcile", content=text.encode(), headers=m.h.headers() | {"content-type": "text/csv"})
    assert same["ok"] and same["matched"] == 4


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _post_bill(m: Money, text: str, headers: dict[str, str] | None = None) -> object:
    return m.call("POST", "/costs/reconcile", (headers or m.h.headers()) | {"content-type": "text/csv"}, content=text)


def test_reconcile_lists_missing_extra_and_amounts_off(m: Money, runs: dict[str, str]) -> None:
    rows = _rows(_focus(m))
    rows[0]["BilledCost"] = str(Decimal(rows[0]["BilledCost"]) + Decimal("1.00"))
    gone = rows.pop()
    extra = dict(rows[0]) | {"ResourceId": "j-999999/0", "x_RunId": "j-999999/0"}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows([*rows, extra])
    result = _post_bill(m, out.getvalue())
    body = result.json()  # type: ignore[attr-defined]
    assert not body["ok"]
    kinds = {(d["kind"], d["run_id"]) for d in body["differences"]}
    assert ("missing", gone["x_RunId"]) in kinds and ("extra", "j-999999/0") in kinds
    assert ("amount_off", rows[0]["x_RunId"]) in kinds
    assert m.call("POST", "/costs/reconcile", m.h.headers("member", "alpha"), content="x").status_code == 403


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.replace("BilledCost", "Colour", 1), "column Colour: unknown column"),
        (lambda t: t.replace(",USD,", ",EUR,", 1), "BillingCurrency"),
        (lambda t: "", "empty file"),
    ],
)
def test_a_bad_bill_is_refused_naming_where_and_nothing_is_written(
    m: Money, runs: dict[str, str], change: object, words: str
) -> None:
    text = change(_focus(m))  # type: ignore[operator]
    with m.h.ctx.db.read() as session:
        before = repo.counts(session)
    response = _post_bill(m, text)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    assert detail.startswith("body:") and words in detail
    with m.h.ctx.db.read() as session:
        assert repo.counts(session) == before


def test_the_scheduler_records_what_each_run_costs(m: Money) -> None:
    job = m.h.submit(team="alpha", gpus=2, gpu_models=["GB200"])
    now = datetime.now(UTC)
    run_cycle(m.h.ctx, now)
    with m.h.ctx.db.read() as session:
        run = session.query(RunRow).filter(RunRow.job_id == parse_job_id(str(job["id"]))).one()
        assert (run.gpus, run.price_usd_per_gpu_hour, run.list_price_usd_per_gpu_hour) == (
            2,
            Decimal("6.25"),
            Decimal("6.25"),
        )
        assert (run.provider, run.gpu_model, run.region, run.contract) == ("lab", "GB200", "local", None)
        assert run.started_at is not None and run.started_at >= now


def test_a_run_ended_before_its_recorded_start_costs_nothing_and_breaks_nothing(m: Money) -> None:
    """Two servers with skewed clocks may record an end before the start: the run costs 0, the rest is counted."""
    m.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    skewed = _run(m, "alpha", started_at=T0 + timedelta(hours=1), ended_at=T0)
    fine = _run(m, "alpha", ended_at=T0 + timedelta(hours=1))  # 4 GPUs × 2.5 USD × 1 h
    assert _by(m, "job") == {fine: Decimal("10"), skewed: Decimal("0")}


def test_a_focus_export_of_a_window_holds_its_days_only(m: Money, runs: dict[str, str]) -> None:
    response = m.call("GET", "/costs/focus", params={"since": "2026-12-01", "until": "2026-12-01"})
    rows = _rows(response.text)
    assert {r["ChargePeriodStart"][:10] for r in rows} == {"2026-12-01"} and len(rows) == 3
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("67.5")
    first = _rows(m.call("GET", "/costs/focus", params={"until": "2026-11-30"}).text)
    assert [(r["x_RunId"], Decimal(r["BilledCost"])) for r in first] == [(f"{runs['a']}/0", Decimal("20"))]
