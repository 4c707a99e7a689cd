"""The FOCUS export (what ``stargate costs --export focus`` writes, via ``write_focus``) checked by the FinOps
Foundation's focus-validator 1.0.0, which scripts/setup-focus.sh installs in .venv-focus/ from requirements-focus.lock.

The validator exits 0 even when rules fail, so the test reads its JUnit report and asserts that every rule passed
but the 13 of its "1.0" set that name pre-1.0 columns (focus_validator_overrides.yaml says which and why; the
FOCUS 1.0 columns they stand for are checked here instead); a tampered file must fail.
"""

import csv
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from focus_validation import OVERRIDES, RULES_IN_1_0, validate
from stargate.costs import FOCUS_COLUMNS, write_focus
from stargate.engine.ledger import Ledger, RunCharge

pytestmark = pytest.mark.slow


def sample_ledger() -> Ledger:
    t0 = datetime(2027, 1, 31, 20, 0, tzinfo=UTC)
    shapes = [
        # (team, queue, provider, contract, cluster, region, model, gpus, hours, price, list price)
        (
            "research",
            "training",
            "oracle",
            "oracle-2027",
            "abilene-gb200",
            "us-central",
            "GB200",
            4096,
            30.5,
            "6.20",
            "10.50",
        ),
        ('ops, "core"', "inference", "coreweave", None, "cw-h100", "us-east", "H100", 8, 0.25, "4.25", "4.25"),
        ("research", "eval", "self", None, "owned-a100", "eu-west", "A100", 64, 49.0, "0", "2.00"),
        (
            "product",
            "training\nlong",
            "microsoft",
            "msft-commit",
            "azure-ndv5",
            "us-west",
            "H100",
            512,
            0.0001,
            "3.999",
            "5",
        ),
    ]
    runs = []
    for i, (team, queue, provider, contract, cluster, region, model, gpus, hours, price, lst) in enumerate(shapes * 3):
        start = t0 + timedelta(hours=7 * i, microseconds=1234 * i)
        runs.append(
            RunCharge(
                run_id=f"run-{i}",
                job_id=f"job-{i % 5}",
                queue=queue,
                team=team,
                provider=provider,
                contract=contract,
                cluster=cluster,
                region=region,
                gpu_model=model,
                gpus=gpus,
                start=start,
                end=start + timedelta(hours=hours),
                price=Decimal(price),
                list_price=Decimal(lst),
            )
        )
    return Ledger(runs)


def export(tmp_path: Path) -> Path:
    path = tmp_path / "focus.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        assert write_focus(sample_ledger(), out, billing_account="stargate-demo") > 12  # midnights split runs
    return path


def test_the_export_passes_focus_validator_1_0(tmp_path: Path) -> None:
    path = export(tmp_path)
    statuses = validate(path, tmp_path)
    skipped = set(yaml.safe_load(OVERRIDES.read_text())["overrides"])
    assert {name for name, s in statuses.items() if s == "skipped"} == skipped
    assert {name: s for name, s in statuses.items() if s not in ("passed", "skipped")} == {}
    assert sum(s == "passed" for s in statuses.values()) == RULES_IN_1_0 - len(skipped)

    # What the skipped rules stand for, on the FOCUS 1.0 columns: present, strings, not null where required.
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert set(FOCUS_COLUMNS) <= set(rows[0])
    for row in rows:
        for column in ("InvoiceIssuerName", "ProviderName", "PublisherName", "ResourceId", "SkuPriceId"):
            assert row[column], column
        assert row["ChargeCategory"] == "Usage" and row["ChargeClass"] == ""
        assert isinstance(json.loads(row["Tags"]), dict)


def test_a_tampered_export_fails_validation(tmp_path: Path) -> None:
    path = export(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace(",USD,", ",XYZ,", 1)  # an unknown currency
    lines[2] = lines[2].replace(",Usage-Based,", ",Sometimes,", 1)  # not a ChargeFrequency
    lines[3] = lines[3].replace("T00:00:00Z", "T00:00:00+02:00", 1)  # BillingPeriodEnd not in UTC
    tampered = tmp_path / "tampered.csv"
    tampered.write_text("".join(lines), encoding="utf-8")
    statuses = validate(tampered, tmp_path)
    failed = {name for name, s in statuses.items() if s == "failed"}
    assert failed == {"BillingCurrency_IsCurrencyCode", "ChargeFrequency_Enum", "BillingPeriodEnd_IsDateTime"}
