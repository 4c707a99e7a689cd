"""FOCUS 1.0 column names, Stargate's ``x_`` columns, and the text formats the export and the bill reader share."""

from __future__ import annotations

FOCUS_VERSION = "1.0"

FOCUS_COLUMNS: tuple[str, ...] = (
    # per line item
    "BilledCost",
    "ContractedCost",
    "EffectiveCost",
    "ListCost",
    "ConsumedQuantity",
    "PricingQuantity",
    "ResourceId",
    "ResourceName",
    # per run group (provider, region, team, queue, contract, cluster, GPU model and count, prices)
    "AvailabilityZone",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "InvoiceIssuerName",
    "ListUnitPrice",
    "PricingCategory",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    # per UTC day
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargePeriodEnd",
    "ChargePeriodStart",
)
"""The 43 columns of the FOCUS 1.0 cost and usage dataset. FOCUS names the columns, not their order: these come
grouped by what they depend on (the line item, the run's group, the day) so rows are written from cached parts."""

STARGATE_COLUMNS: tuple[str, ...] = (
    "x_RunId",
    "x_JobId",
    "x_UsageStart",
    "x_UsageEnd",
    "x_Queue",
    "x_Team",
    "x_Contract",
    "x_Cluster",
    "x_GpuModel",
    "x_Gpus",
)
"""Stargate's own columns (FOCUS requires custom columns to start with ``x_``)."""

EXPORT_COLUMNS: tuple[str, ...] = FOCUS_COLUMNS + STARGATE_COLUMNS
"""The header of ``write_focus``'s CSV."""

CURRENCY = "USD"
UNIT = "GPU-Hours"


def csv_field(value: str) -> str:
    """``value`` as one CSV field (RFC 4180): quoted, inner quotes doubled, when it holds a comma, quote or newline."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def usd(micro: int) -> str:
    """An integer of micro-dollars as decimal text with six places (``1234500`` → ``1.234500``)."""
    if micro < 0:
        return "-" + usd(-micro)
    whole, frac = divmod(micro, 1_000_000)
    return f"{whole}.{frac:06d}"
