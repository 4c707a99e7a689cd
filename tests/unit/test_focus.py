"""FOCUS 1.0 export of the ledger: every column of a row, CSV quoting, streaming, and a lossless round trip."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.costs import EXPORT_COLUMNS, FOCUS_COLUMNS, focus, read_bill, reconcile, write_focus
from stargate.engine.ledger import Ledger, RunCharge

T0 = datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
D = Decimal


def run(run_id: str = "r1", **kw: object) -> RunCharge:
    fields: dict[str, object] = {
        "run_id": run_id,
        "job_id": "job-1",
        "queue": "training",
        "team": "research",
        "provider": "oracle",
        "contract": "oracle-2027",
        "cluster": "abilene-gb200",
        "region": "us-central",
        "gpu_model": "GB200",
        "gpus": 8,
        "start": T0,
        "end": T0 + timedelta(hours=2, milliseconds=500),
        "price": D("10.50"),
        "list_price": D("12"),
    }
    fields.update(kw)
    return RunCharge(**fields)  # type: ignore[arg-type]


def export(ledger: Ledger, **kw: str) -> list[dict[str, str]]:
    out = io.StringIO(newline="")
    n = write_focus(ledger, out, billing_account="acct-1", **kw)
    out.seek(0)
    reader = csv.DictReader(out)
    rows = list(reader)
    assert reader.fieldnames == list(EXPORT_COLUMNS)
    assert len(rows) == n
    return rows


def test_header_is_the_43_focus_1_0_columns_then_x_columns() -> None:
    assert len(FOCUS_COLUMNS) == 43 and len(set(EXPORT_COLUMNS)) == len(EXPORT_COLUMNS)
    assert all(c.startswith("x_") for c in EXPORT_COLUMNS[43:])
    spec = [
        "AvailabilityZone",
        "BilledCost",
        "BillingAccountId",
        "BillingAccountName",
        "BillingCurrency",
        "BillingPeriodEnd",
        "BillingPeriodStart",
        "ChargeCategory",
        "ChargeClass",
        "ChargeDescription",
        "ChargeFrequency",
        "ChargePeriodEnd",
        "ChargePeriodStart",
        "CommitmentDiscountCategory",
        "CommitmentDiscountId",
        "CommitmentDiscountName",
        "CommitmentDiscountStatus",
        "CommitmentDiscountType",
        "ConsumedQuantity",
        "ConsumedUnit",
        "ContractedCost",
        "ContractedUnitPrice",
        "EffectiveCost",
        "InvoiceIssuerName",
        "ListCost",
        "ListUnitPrice",
        "PricingCategory",
        "PricingQuantity",
        "PricingUnit",
        "ProviderName",
        "PublisherName",
        "RegionId",
        "RegionName",
        "ResourceId",
        "ResourceName",
        "ResourceType",
        "ServiceCategory",
        "ServiceName",
        "SkuId",
        "SkuPriceId",
        "SubAccountId",
        "SubAccountName",
        "Tags",
    ]
    assert sorted(FOCUS_COLUMNS) == spec  # the FOCUS 1.0 cost and usage columns


def test_every_column_of_a_run_split_at_midnight_and_a_month_end() -> None:
    rows = export(Ledger([run()]))
    assert len(rows) == 2
    first, second = rows
    assert first == {
        "AvailabilityZone": "",
        "BilledCost": "84.000000",
        "BillingAccountId": "acct-1",
        "BillingAccountName": "acct-1",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": "2027-02-01T00:00:00Z",
        "BillingPeriodStart": "2027-01-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "ChargeDescription": "8 GB200 GPUs on cluster abilene-gb200",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": "2027-02-01T00:00:00Z",
        "ChargePeriodStart": "2027-01-31T00:00:00Z",
        "CommitmentDiscountCategory": "",
        "CommitmentDiscountId": "",
        "CommitmentDiscountName": "",
        "CommitmentDiscountStatus": "",
        "CommitmentDiscountType": "",
        "ConsumedQuantity": "8.000000",
        "ConsumedUnit": "GPU-Hours",
        "ContractedCost": "84.000000",
        "ContractedUnitPrice": "10.50",
        "EffectiveCost": "84.000000",
        "InvoiceIssuerName": "oracle",
        "ListCost": "96.000000",
        "ListUnitPrice": "12.0",
        "PricingCategory": "Standard",
        "PricingQuantity": "8.000000",
        "PricingUnit": "GPU-Hours",
        "ProviderName": "oracle",
        "PublisherName": "oracle",
        "RegionId": "us-central",
        "RegionName": "us-central",
        "ResourceId": "r1",
        "ResourceName": "job-1",
        "ResourceType": "GPU job run",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": "GPU compute",
        "SkuId": "GB200",
        "SkuPriceId": "abilene-gb200:oracle-2027:10.50",
        "SubAccountId": "research",
        "SubAccountName": "research",
        "Tags": '{"stargate/cluster":"abilene-gb200","stargate/contract":"oracle-2027",'
        '"stargate/queue":"training","stargate/team":"research"}',
        "x_RunId": "r1",
        "x_JobId": "job-1",
        "x_Queue": "training",
        "x_Team": "research",
        "x_Contract": "oracle-2027",
        "x_Cluster": "abilene-gb200",
        "x_GpuModel": "GB200",
        "x_Gpus": "8",
        "x_UsageStart": "2027-01-31T23:00:00.000000Z",
        "x_UsageEnd": "2027-02-01T00:00:00.000000Z",
    }
    # 1 h 0.5 s of 8 GPUs at 10.50 USD: 84.011667 USD; the February row is in February's billing period.
    assert (second["BilledCost"], second["ConsumedQuantity"], second["ListCost"]) == (
        "84.011667",
        "8.001111",
        "96.013333",
    )
    assert (second["BillingPeriodStart"], second["BillingPeriodEnd"]) == (
        "2027-02-01T00:00:00Z",
        "2027-03-01T00:00:00Z",
    )
    assert (second["ChargePeriodStart"], second["ChargePeriodEnd"]) == ("2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z")
    assert (second["x_UsageStart"], second["x_UsageEnd"]) == (
        "2027-02-01T00:00:00.000000Z",
        "2027-02-01T01:00:00.500000Z",
    )


def test_options_and_a_run_without_contract() -> None:
    (row,) = export(
        Ledger([run(contract=None, start=T0 - timedelta(hours=3), end=T0 - timedelta(hours=2))]),
        billing_account_name="Stargate LLC",
        invoice_issuer="Broker Inc",
        service_name="GB200 on demand",
    )
    assert (row["BillingAccountName"], row["InvoiceIssuerName"], row["ServiceName"]) == (
        "Stargate LLC",
        "Broker Inc",
        "GB200 on demand",
    )
    assert row["x_Contract"] == "" and "stargate/contract" not in json.loads(row["Tags"])
    assert row["SkuPriceId"] == "abilene-gb200:list:10.50"


def test_awkward_names_are_quoted_and_read_back_unchanged() -> None:
    awkward = 'ops, "core"\nteam'
    (row,) = export(Ledger([run(team=awkward, job_id="j,1", queue='q"x', end=T0 + timedelta(minutes=1))]))
    assert (row["SubAccountId"], row["x_Team"], row["ResourceName"], row["x_Queue"]) == (awkward, awkward, "j,1", 'q"x')
    assert json.loads(row["Tags"])["stargate/team"] == awkward


def test_the_export_streams_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(focus, "_CHUNK", 4096)

    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            Counting.writes += 1
            return super().write(s)

    ledger = Ledger([run(f"r{i}", end=T0 + timedelta(minutes=30)) for i in range(10_000)])
    out = Counting()
    assert write_focus(ledger, out, "acct") == 10_000
    assert Counting.writes == 4  # header, then chunks of 4096 rows


def test_the_export_reads_back_as_a_bill_that_reconciles_exactly() -> None:
    ledger = Ledger(
        [
            run("a"),
            run("b", provider="coreweave", contract=None, start=T0 - timedelta(days=3), end=T0),
            run("c", gpus=0),
        ]
    )
    out = io.StringIO(newline="")
    write_focus(ledger, out, "acct")
    out.seek(0)
    bill = read_bill(out, name="export.csv")
    assert sum(r.billed_cost for r in bill) == ledger.total()
    result = reconcile(ledger, bill)
    assert result.ok and result.matched == len(bill) and result.bill_total == result.ledger_total == ledger.total()
    assert result.providers == ("coreweave", "oracle")


runs_st = st.lists(
    st.tuples(
        st.integers(0, 3 * 86_400_000_000),
        st.integers(0, 2 * 86_400_000_000),
        st.integers(0, 10_000),
        st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False),
        st.sampled_from(["oracle", "coreweave"]),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(runs_st)
def test_round_trip_property(specs: list) -> None:  # type: ignore[type-arg]
    ledger = Ledger(
        run(
            f"r{i}",
            provider=provider,
            gpus=gpus,
            price=price,
            list_price=price,
            start=T0 + timedelta(microseconds=s),
            end=T0 + timedelta(microseconds=s + dur),
        )
        for i, (s, dur, gpus, price, provider) in enumerate(specs)
    )
    out = io.StringIO(newline="")
    write_focus(ledger, out, "acct")
    out.seek(0)
    bill = read_bill(out)
    assert sum((r.billed_cost for r in bill), D(0)) == ledger.total()
    assert [(r.run_id, r.day, r.billed_cost) for r in bill] == [(i.run_id, i.day, i.cost) for i in ledger.items()]
    assert reconcile(ledger, bill).ok


def test_amount_text_is_exact_at_every_size() -> None:
    import numpy as np

    values = [0, 1, 999_999, 1_000_000, 65_535_999_999, 65_536_000_000, 123_456_789_012_345]

    def text(micro: object) -> list[str]:
        whole, high, low = focus._amounts(micro)  # type: ignore[arg-type]
        return [w + h + lo.removesuffix(",") for w, h, lo in zip(whole, high, low, strict=True)]

    assert text(np.array(values, dtype=np.int64)) == [
        "0.000000",
        "0.000001",
        "0.999999",
        "1.000000",
        "65535.999999",
        "65536.000000",
        "123456789.012345",
    ]
    assert text(np.array([5, 10**30], dtype=object)) == ["0.000005", "1" + "0" * 24 + ".000000"]
    assert text(np.array([-1_500_000], dtype=np.int64)) == ["-1.500000"]


def test_huge_amounts_take_exact_python_ints_and_export_exactly() -> None:
    # 10 million GPUs for ten years at 123.456789 USD: products beyond int64, so the ledger uses Python ints.
    big = run("big", gpus=10_000_000, price=D("123.456789"), end=T0 + timedelta(days=3650))
    ledger = Ledger([big, run("small")])
    assert ledger.rows().cost.dtype == object
    hours = D(3650 * 24)
    assert ledger.run_cost(0) == D("123.456789") * 10_000_000 * hours
    rows = export(ledger)
    assert sum(D(r["BilledCost"]) for r in rows) == ledger.total()
    assert len(rows) == 3651 + 2


def test_equal_prices_in_distinct_objects_share_a_group_numbered_by_first_appearance() -> None:
    runs = [run("a", price=D("10.50")), run("b", price=D("4")), run("c", price=D("10.50"))]
    ledger = Ledger(runs)
    assert ledger.group_codes.tolist() == [0, 1, 0]
    assert [g.run_id for g in ledger.groups] == ["a", "b"]
