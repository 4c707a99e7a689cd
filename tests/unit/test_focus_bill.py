"""Reading a provider's FOCUS bill (every error located, nothing returned partially) and reconciling it."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stargate.costs import BillError, read_bill, reconcile
from stargate.engine.ledger import Ledger, RunCharge

D = Decimal
HEADER = "ResourceId,ChargePeriodStart,ChargePeriodEnd,BilledCost,BillingCurrency,ProviderName,x_Note\n"


def bill_file(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "bill.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def row(
    rid: str = "r1", day: str = "2027-01-05", cost: str = "84.00", currency: str = "USD", provider: str = "oracle"
) -> str:
    return f"{rid},{day}T00:00:00Z,{day}T01:00:00Z,{cost},{currency},{provider},\n"


def test_a_bill_is_read_with_keys_and_lines(tmp_path: Path) -> None:
    rows = read_bill(bill_file(tmp_path, row() + "\n" + row("r2", cost="1e1")))
    assert [(r.line, r.run_id, r.day, r.billed_cost, r.provider) for r in rows] == [
        (2, "r1", date(2027, 1, 5), D("84.00"), "oracle"),
        (4, "r2", date(2027, 1, 5), D("10"), "oracle"),
    ]
    assert rows[0].start == datetime(2027, 1, 5, tzinfo=UTC)


def test_x_run_id_keys_a_row_when_present(tmp_path: Path) -> None:
    header = "ResourceId,x_RunId,ChargePeriodStart,ChargePeriodEnd,BilledCost,BillingCurrency\n"
    body = (
        "i-123,run-9,2027-01-05T00:00:00+00:00,2027-01-06T00:00:00Z,1,USD\n"
        "i-124,,2027-01-05T00:00:00Z,2027-01-06T00:00:00Z,2,USD\n"
    )
    rows = read_bill(bill_file(tmp_path, body, header))
    assert [(r.run_id, r.resource_id) for r in rows] == [("run-9", "i-123"), ("i-124", "i-124")]


@pytest.mark.parametrize(
    ("header", "body", "line", "column", "says"),
    [
        (HEADER.replace("x_Note", "Colour"), row(), 1, "Colour", "unknown column"),
        (HEADER.replace("BilledCost,", ""), "", 1, "BilledCost", "missing required column"),
        (HEADER.replace("x_Note", "ResourceId"), "", 1, "ResourceId", "twice"),
        (HEADER, row() + row(currency="EUR"), 3, "BillingCurrency", "found 'EUR', expected 'USD'"),
        (HEADER, row() + row() + row(cost='"12,5"'), 4, "BilledCost", "found '12,5', expected a decimal amount in USD"),
        (HEADER, row(cost="NaN"), 2, "BilledCost", "expected a decimal"),
        (HEADER, row(cost=""), 2, "BilledCost", "expected a decimal"),
        (HEADER, row(day="2027-13-01"), 2, "ChargePeriodStart", "ISO 8601 UTC"),
        (HEADER, "r1,2027-01-05T00:00:00,2027-01-05T01:00:00Z,1,USD,oracle,\n", 2, "ChargePeriodStart", "UTC"),
        (
            HEADER,
            "r1,2027-01-05T02:00:00Z,2027-01-05T01:00:00Z,1,USD,oracle,\n",
            2,
            "ChargePeriodEnd",
            ">= ChargePeriodStart",
        ),
        (HEADER, row() + "r1,2027-01-05T00:00:00Z,USD\n", 3, None, "found 3 fields, expected 7"),
        (HEADER, '"multi\nline",' + row()[3:] + row(cost="x"), 4, "BilledCost", "found 'x'"),
        (HEADER, row() + '"r1,unclosed\n', 3, None, "not valid CSV"),
        ("", "", 1, None, "empty file"),
    ],
)
def test_a_bad_bill_is_an_error_naming_file_line_and_column(
    tmp_path: Path, header: str, body: str, line: int, column: str | None, says: str
) -> None:
    path = bill_file(tmp_path, body, header)
    with pytest.raises(BillError) as err:
        read_bill(path)
    assert (err.value.path, err.value.line, err.value.column) == (str(path), line, column)
    assert says in str(err.value) and str(err.value).startswith(f"{path}:{line}")


def test_a_file_that_is_not_utf8_or_not_there(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    path.write_bytes(HEADER.encode() + row().encode() + b"r\xff2,x\n")
    with pytest.raises(BillError, match=r"bill.csv:3: not UTF-8"):
        read_bill(path)
    with pytest.raises(BillError, match="cannot read"):
        read_bill(tmp_path / "nope.csv")


T0 = datetime(2027, 1, 5, tzinfo=UTC)


def run(run_id: str, provider: str = "oracle", start: datetime = T0, hours: float = 1.0) -> RunCharge:
    return RunCharge(
        run_id=run_id,
        job_id="j",
        queue="q",
        team="t",
        provider=provider,
        contract=None,
        cluster="c",
        region="r",
        gpu_model="H100",
        gpus=8,
        start=start,
        end=start + timedelta(hours=hours),
        price=D("10.50"),
        list_price=D("10.50"),
    )


def test_reconcile_reports_missing_extra_and_amounts_off_by_more_than_a_cent(tmp_path: Path) -> None:
    ledger = Ledger(
        [
            run("ok"),  # 84 USD, billed 84.01: within a cent
            run("off"),  # 84 USD, billed 84.011 over two hourly rows: off by 0.011
            run("missing"),
            run("split", start=T0 + timedelta(hours=23), hours=2),  # 84 + 84 over two days; the bill has day 1 only
            run("elsewhere", provider="coreweave"),  # not this provider's: not compared
            run("before", start=T0 - timedelta(days=10)),  # outside the bill's period: not compared
        ]
    )
    body = (
        row("ok", cost="84.01")
        + row("off", cost="42")
        + row("off", cost="42.011")
        + row("split", cost="84")
        + row("ghost", cost="5")
    )
    result = reconcile(ledger, read_bill(bill_file(tmp_path, body)))
    assert (result.period_start, result.period_end, result.providers) == (
        date(2027, 1, 5),
        date(2027, 1, 6),
        ("oracle",),
    )
    assert not result.ok and result.matched == 2
    assert [(d.run_id, d.day, d.ledger_usd, d.bill_usd) for d in result.missing] == [
        ("missing", date(2027, 1, 5), D("84"), None)
    ]
    assert [(d.run_id, d.bill_usd, d.bill_lines) for d in result.extra] == [("ghost", D("5"), (6,))]
    assert [(d.run_id, d.difference_usd, d.bill_lines) for d in result.amount_off] == [("off", D("0.011"), (3, 4))]
    assert (result.ledger_total, result.bill_total) == (D("336"), D("257.021"))
    text = result.to_text()
    assert "1 missing from the bill, 1 extra in the bill, 1 amount off" in text
    assert "amount_off 2027-01-05 off: ledger 84.000000 USD, bill 84.011 USD (bill line 3, 4)" in text
    report = result.as_dict()
    assert report["ok"] is False and len(report["differences"]) == 3  # type: ignore[arg-type]


def test_reconcile_scope_can_be_given(tmp_path: Path) -> None:
    ledger = Ledger([run("a"), run("b", provider="coreweave", start=T0 + timedelta(days=1))])
    bill = read_bill(bill_file(tmp_path, row("a", cost="84")))
    wide = reconcile(ledger, bill, providers={"oracle", "coreweave"}, period=(date(2027, 1, 1), date(2027, 2, 1)))
    assert [d.run_id for d in wide.missing] == ["b"] and wide.matched == 1
    assert reconcile(ledger, bill, tolerance=D("0")).ok
    assert reconcile(ledger, bill, providers=set()).ok  # every provider, but "b" ran on 6 January: not the bill's days
