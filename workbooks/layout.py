"""The input sheets' layout (docs/contract.md#input-sheets): headers, widths, formats, help.

One place describes every column, so the template, the demo and the tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass

MONEY = "#,##0.00"
RATE = "#,##0.0000"
QUANTITY = "#,##0.##"
WHOLE = "#,##0"
TEXT = "@"


@dataclass(frozen=True)
class Col:
    header: str
    width: int
    help: str
    number_format: str | None = None
    required: bool = False


@dataclass(frozen=True)
class SheetLayout:
    name: str
    columns: tuple[Col, ...]
    purpose: str

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def letter(self, header: str) -> str:
        from openpyxl.utils import get_column_letter

        return get_column_letter(self.headers.index(header) + 1)


PERIOD_HELP = "The month, as text YYYY-MM (e.g. 2025-07) or a date in that month."

SETTINGS = SheetLayout(
    "Settings",
    (
        Col(
            "Key", 24, "The setting's name (see the list below; unknown keys are kept).", TEXT, True
        ),
        # No column-wide text format: FiscalYearStart and ReserveDays are numbers, and a
        # number typed into a text cell would fail their whole-number validation.
        Col("Value", 40, "The setting's value. Leave blank to use the default.", None, True),
        Col("Meaning", 90, "What the setting does (for people; costloop ignores this column)."),
    ),
    "Organization-wide choices: currency, billed period, fiscal year, accounts.",
)

DEPARTMENTS = SheetLayout(
    "Departments",
    (
        Col(
            "Department",
            14,
            "The department's code, as Usage and Rules name it. Unique.",
            TEXT,
            True,
        ),
        Col("Name", 34, "The name printed on bills."),
        Col(
            "Fund",
            12,
            "The fund the department is paid from (General, Grants, IT, ...).",
            TEXT,
            True,
        ),
        Col("Parent", 10, "The department this one rolls up to (optional)."),
        Col("Billable", 9, "Y (default) or N. N: the department never receives charges."),
        Col("Email", 32, "Where its bill is emailed."),
        Col("Headcount", 12, "A driver: any numeric column can be used as BY <column>.", WHOLE),
    ),
    "Who is billed: one row per department, its fund and its numeric drivers.",
)

BUDGET = SheetLayout(
    "Budget",
    (
        Col("Period", 10, PERIOD_HELP, TEXT, True),
        Col(
            "Pool",
            22,
            "The cost pool (a pool exists if it appears in Budget or Actuals).",
            None,
            True,
        ),
        Col("Amount", 15, "Planned cost of the pool for the period.", MONEY, True),
        Col("Metric", 16, "The pool's billing metric (for charged pools)."),
        Col("Volume", 14, "Planned quantity of that metric for the period.", QUANTITY),
        Col("Tower", 20, "ITFM tower, for reporting (optional)."),
        Col("Service", 34, "Service description, for reporting (optional)."),
    ),
    "The plan: cost per pool per period, and planned volume for charged pools.",
)

ACTUALS = SheetLayout(
    "Actuals",
    (
        Col("Period", 10, PERIOD_HELP, TEXT, True),
        Col("Pool", 22, "The cost pool the spend belongs to.", None, True),
        Col(
            "Amount",
            15,
            "Actual cost (several lines per pool and period are added up).",
            MONEY,
            True,
        ),
        Col("Account", 10, "General-ledger account (optional).", TEXT),
        Col("Description", 34, "What the spend was (optional)."),
    ),
    "What the pools actually cost, from the general ledger.",
)

USAGE = SheetLayout(
    "Usage",
    (
        Col("Period", 10, PERIOD_HELP, TEXT, True),
        Col(
            "Department",
            16,
            "The department (or, for pool-to-pool drivers, the pool) using it.",
            None,
            True,
        ),
        Col("Metric", 16, "What was measured (Server Hours, GB-Month, ...).", None, True),
        Col("Quantity", 14, "How much: a non-negative number.", QUANTITY, True),
        Col("Service", 16, "Optional: usable in WHERE Service = ... / IN (...)."),
        Col("Reference", 16, "Optional: meter, invoice or ticket reference."),
    ),
    "Metered consumption per department, metric and period.",
)

RATES = SheetLayout(
    "Rates",
    (
        Col("Metric", 16, "The metric the rate applies to.", None, True),
        Col("Rate", 12, "Price per unit of the metric.", RATE, True),
        Col("Pool", 22, "The pool the rate recovers (optional)."),
        Col("Unit", 16, "Unit label for bills (optional)."),
        Col("TierFrom", 12, "Tiered rates: band starts above this quantity.", QUANTITY),
        Col("TierTo", 12, "Tiered rates: band ends at this quantity (blank: no limit).", QUANTITY),
        Col(
            "EffectiveFrom",
            14,
            "First period the rate applies (YYYY-MM); the latest one not "
            "after the billed period wins.",
            TEXT,
        ),
    ),
    "The rate card read by CHARGE ... AT RATE CARD.",
)

RULES = SheetLayout(
    "Rules",
    (
        Col("ID", 8, "A unique rule ID (R01, F01, ...).", TEXT, True),
        Col("Rule", 110, "One statement of the rules language (see Instructions).", None, True),
        Col("Enabled", 9, "Y (default) or N: N keeps the rule but skips it."),
        Col("Note", 70, "Why the rule is there (for people)."),
    ),
    "The chargeback rules: one ALLOCATE, CHARGE or FORECAST statement per row.",
)

INPUT_LAYOUTS = (SETTINGS, DEPARTMENTS, BUDGET, ACTUALS, USAGE, RATES, RULES)

# Settings keys: (Key, default value, meaning) — docs/contract.md#settings.
SETTING_KEYS: tuple[tuple[str, object, str], ...] = (
    ("Organization", None, "Name printed on bills. Default: blank."),
    ("Currency", "USD", "ISO 4217 code; amounts round to its minor unit (USD: cents)."),
    ("Period", None, "The period to bill, YYYY-MM. Default: the latest period in Usage."),
    ("FiscalYearStart", 7, "Month number the fiscal year starts in (7 = July)."),
    (
        "CostBasis",
        "ACTUAL",
        "ACTUAL or BUDGET: which pool cost ALLOCATE spreads. ACTUAL falls "
        "back to BUDGET (with a warning) for a pool with no actuals in the period.",
    ),
    ("ITFund", "IT", "Fund code of the IT internal service fund."),
    ("RevenueAccount", "4400", "IT fund account credited for charges to other funds."),
    ("ExpenseAccount", "6400", "Account debited in the department's fund."),
    (
        "ReimbursementAccount",
        "6499",
        "IT account credited when the department is in the IT fund itself.",
    ),
    ("DueFromAccount", "1300", "Interfund receivable (in the IT fund)."),
    ("DueToAccount", "2300", "Interfund payable (in the department's fund)."),
    ("ReserveDays", 60, "Working-capital limit of the IT fund, in days of expenses."),
    (
        "EmailFrom",
        None,
        "Sender address for `costloop email` (SMTP settings come from the "
        "environment, never from the workbook).",
    ),
    ("EmailSubject", None, "Email subject; placeholders {department}, {period}, {total}."),
    ("EmailBody", None, "Email body; same placeholders."),
)


DISPUTES = SheetLayout(
    "Disputes",
    (
        Col("Dispute", 12, "The dispute's id (the department's reference). Unique.", TEXT, True),
        Col("Department", 12, "The department's code, as in Departments.", TEXT, True),
        Col("Period", 10, "The closed period of the bill disputed, YYYY-MM.", TEXT, True),
        Col("Pool", 22, "The pool of the line disputed.", None, True),
        Col("Reason", 12, "Rate, Volume, Allocation, Duplicate or Other.", None, True),
        Col("Amount", 12, "The amount disputed.", MONEY, True),
        Col("Status", 10, "Open, Accepted or Rejected.", None, True),
        Col("Resolution", 12, "The amount credited (an Accepted dispute).", MONEY, True),
        Col("Note", 44, "For people.", None, True),
        Col("Raised", 12, "The date it was raised (checked against DisputeDays).", "yyyy-mm-dd"),
    ),
    "A department questioning a line of an issued bill: an Accepted one is credited once.",
)
