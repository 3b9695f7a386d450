"""The names costloop reads and writes, defined once: sheets, output columns, Run Log keys.

docs/contract.md names them; the reader, the run, the report, the scenario
naming, the bill workbooks and the add-in take them from here, so a renamed
sheet or column is one edit. A `--scenario` run writes each output under
``<name>@<scenario>`` (engine/pipeline/scenario.py): a message pointing into
an output must take the sheet's name from the run, never from these constants.
"""

from __future__ import annotations

# --- input sheets (docs/contract.md#input-sheets) -------------------------------------

SETTINGS = "Settings"
DEPARTMENTS = "Departments"
BUDGET = "Budget"
ACTUALS = "Actuals"
USAGE = "Usage"
RATES = "Rates"
RULES = "Rules"
INPUT_SHEETS = (SETTINGS, DEPARTMENTS, BUDGET, ACTUALS, USAGE, RATES, RULES)
REQUIRED_SHEETS = (SETTINGS, DEPARTMENTS, BUDGET, USAGE, RULES)
"""``Actuals`` and ``Rates`` may be left out."""

# --- output sheets (docs/contract.md#output-sheets, docs/outputs.md) ------------------

BILLS = "Bills"
JOURNAL = "Journal"
RECOVERY = "Recovery"
FORECAST = "Forecast"
VARIANCE = "Variance"
COMPLIANCE = "Compliance"
RULE_CHECK = "Rule Check"
RUN_LOG = "Run Log"
ISSUED = "Issued"
"""Owned too, but written only by `costloop close` (engine/model/issued.py), never by a run."""
DISPUTES = "Disputes"
"""An optional input sheet (engine/model/disputes.py)."""
OUTPUT_SHEETS = (BILLS, JOURNAL, RECOVERY, FORECAST, VARIANCE, COMPLIANCE, RULE_CHECK, RUN_LOG)
"""Every sheet the engine owns, in the order a new workbook gets them."""
ITFM_SHEETS = (FORECAST, VARIANCE, COMPLIANCE)
"""The sheets of the ITFM loop over a run's result (the add-in's Forecast button writes them)."""

# --- their columns, in the contract's order -------------------------------------------

BILL_COLUMNS = ["Period", "Department", "Name", "Pool", "Metric", "Quantity", "Rate", "Amount",
                "Rule", "Charge Period", "Line Type"]  # fmt: skip
"""A bill line's Period is the period it is billed in; its Charge Period the period the
charge belongs to (earlier for a Reversal or a Correction of a closed period, or a
Credit memo of a dispute). Line Type is one of `costloop.engine.model.issued.LINE_TYPES`."""
JOURNAL_COLUMNS = ["Entry", "Period", "Fund", "Account", "Department", "Pool", "Debit", "Credit",
                   "Memo", "Rule"]  # fmt: skip
RECOVERY_COLUMNS = ["Period", "Pool", "Cost", "Recovered", "OverUnder", "RecoveryPct",
                    "Unallocated"]  # fmt: skip
FORECAST_COLUMNS = ["Period", "Kind", "Name", "Plan", "Actual", "Forecast", "Adjustment", "Method"]
VARIANCE_COLUMNS = ["Kind", "Name", "Periods", "Plan YTD", "Actual YTD", "Variance", "Variance %",
                    "Status"]  # fmt: skip
COMPLIANCE_COLUMNS = [
    "Check", "Pool", "Metric", "Period", "Department", "Months", "Cost YTD", "Revenue YTD",
    "Over/Under YTD", "Recovery %", "Annualised Cash Expenses", "Reserve Days", "Limit Days",
    "Excess Over Limit", "Rate Billed", "Standard Rate", "Same Rate", "Status", "Finding",
]  # fmt: skip
RULE_CHECK_COLUMNS = ["ID", "Cell", "Status", "Message", "Amount"]
RUN_LOG_COLUMNS = ["Key", "Value"]


class RunLogKey:
    """The Run Log's keys (docs/outputs.md#run-log), for the run that writes them and the
    commands that read them back (`costloop bills`, `costloop email`)."""

    RUN_ID = "Run ID"
    RUN_TIME = "Run Time (UTC)"
    VERSION = "costloop Version"
    WORKBOOK = "Workbook"
    FINGERPRINT = "Input Fingerprint"
    ORGANIZATION = "Organization"
    CURRENCY = "Currency"
    PERIOD = "Period"
    SCENARIO = "Scenario"
    ROWS = "Rows "
    """A prefix: ``Rows Usage`` counts the Usage rows read."""
    RULES_ENABLED = "Rules Enabled"
    RULES_DISABLED = "Rules Disabled"
    TIE_OUT = "Tie-out: "
    """A prefix: ``Tie-out: Journal balances`` and its PASS or FAIL."""
    BILL_LINES = "Bill Lines"
    DEPARTMENTS_BILLED = "Departments Billed"
    TOTAL_BILLED = "Total Billed"
    JOURNAL_LINES = "Journal Lines"
    ERRORS = "Errors"
    WARNINGS = "Warnings"
    STATUS = "Status"
    FAILURE = "Failure"
