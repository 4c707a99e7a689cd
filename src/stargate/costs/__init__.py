"""Costs adapter: the ledger as a FOCUS 1.0 CSV, a provider's FOCUS bill read back, and the two reconciled.

See docs/reference/costs.md. The ledger itself is pure and lives in :mod:`stargate.engine.ledger`.
"""

from stargate.costs.bill import REQUIRED_COLUMNS, BillError, BillRow, read_bill
from stargate.costs.columns import EXPORT_COLUMNS, FOCUS_COLUMNS, STARGATE_COLUMNS
from stargate.costs.focus import write_focus
from stargate.costs.reconcile import TOLERANCE, Difference, Reconciliation, reconcile

__all__ = [
    "EXPORT_COLUMNS",
    "FOCUS_COLUMNS",
    "REQUIRED_COLUMNS",
    "STARGATE_COLUMNS",
    "TOLERANCE",
    "BillError",
    "BillRow",
    "Difference",
    "Reconciliation",
    "read_bill",
    "reconcile",
    "write_focus",
]
