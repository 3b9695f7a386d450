"""A department's bill lines as a FOCUS file, to load into its own FinOps tools.

FOCUS (the FinOps Foundation's billing format) describes charges from a provider
to the one who pays. Here the provider is central IT (Settings `Organization`) and
the billing account and sub-account are the department. One row per bill line:

| FOCUS column | From the bill line |
|---|---|
| BillingAccountId, SubAccountId | the department's code |
| BillingAccountName, SubAccountName | the department's name |
| ProviderName, PublisherName, InvoiceIssuerName | Settings Organization |
| BillingCurrency | Settings Currency |
| BillingPeriodStart/End, ChargePeriodStart/End | the billed month (UTC, end exclusive) |
| ChargeCategory | `Usage`; `Credit` for a line below zero |
| ChargeClass | blank (a correction to an earlier period comes with issue 18) |
| ChargeDescription | what the rule did, in words naming no other department |
| ServiceName | the pool |
| ConsumedQuantity, ConsumedUnit | the quantity and the metric |
| PricingQuantity, PricingUnit, ContractedUnitPrice | quantity, metric and rate of a rated line |
| BilledCost, EffectiveCost, ContractedCost | the line's amount, exact |
| Tags | `{"costloop-rule": ID, "costloop-rule-cell": "Rules!B5", "costloop-run": ID}` |
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from costloop.bills.statement import Statement
from costloop.engine.model.periods import add_months
from costloop.portal.views import blank, csv_cell, csv_text

FOCUS_COLUMNS = [
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ServiceName",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ContractedUnitPrice",
    "BilledCost",
    "EffectiveCost",
    "ContractedCost",
    "Tags",
]


def _month_start(period: str) -> str:
    return f"{period}-01T00:00:00Z"


def _text(value: object) -> str:
    return "" if blank(value) else str(value)


def focus_csv(statement: Statement) -> bytes:
    """The statement's lines as FOCUS rows (UTF-8 CSV, the columns of `FOCUS_COLUMNS`)."""
    start, end = _month_start(statement.period), _month_start(add_months(statement.period, 1))
    org = statement.organization
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FOCUS_COLUMNS)
    for line in statement.lines.to_dict("records"):
        amount = str(Decimal(line["Amount"]))
        rated = not blank(line["Rate"])
        tags = {
            "costloop-rule": _text(line["Rule"]),
            "costloop-rule-cell": _text(line["Rule Cell"]),
            "costloop-run": statement.run.run_id,
        }
        # Text from the workbook is guarded against formula injection (`csv_text`);
        # numbers are written as they are, so a credit stays -120.00.
        department, name, org_text = (
            csv_text(statement.department),
            csv_text(statement.display_name),
            csv_text(org),
        )
        writer.writerow(
            [
                department,
                name,
                department,
                name,
                org_text,
                org_text,
                org_text,
                csv_text(statement.currency),
                start,
                end,
                start,
                end,
                "Credit" if Decimal(line["Amount"]) < 0 else "Usage",
                "",
                csv_cell(line["How"]),
                csv_cell(line["Pool"]),
                csv_cell(line["Quantity"]),
                csv_cell(line["Metric"]),
                csv_cell(line["Quantity"]) if rated else "",
                csv_cell(line["Metric"]) if rated else "",
                csv_cell(line["Rate"]),
                amount,
                amount,
                amount,
                json.dumps(tags, ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue().encode("utf-8")
