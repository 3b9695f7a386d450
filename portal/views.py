"""A statement in the shapes the pages and downloads show: text cells, exact money.

Numbers are formatted here, once, from the engine's Decimals (never through a
float), so the page, the CSV and the bill workbook agree to the last digit.
"""

from __future__ import annotations

import csv
import io
import tempfile
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from costloop.bills.pdf import convert_to_pdf
from costloop.bills.statement import LINE_COLUMNS, Statement
from costloop.bills.workbook import (
    CORRECTIONS_TITLE,
    CREDITS_TITLE,
    WHY_COLUMNS,
    bill_workbook,
    month_label,
    section_total,
    why_title,
)
from costloop.engine.model.issued import CORRECTION, CREDIT_MEMO, REVERSAL
from costloop.engine.pipeline.lineage import usage_behind
from costloop.rules.ast import Statement as Rule
from costloop.rules.ast import name_key


def blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def number(value: object) -> str:
    """``3283.4`` -> ``3,283.4``; ``1483.0`` -> ``1,483``; blank -> empty."""
    if blank(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    if d == d.to_integral_value():
        return f"{d.to_integral_value():,}"
    return f"{d.normalize():,}"


def cell(value: object) -> str:
    """Any cell of the workbook as text (numbers as `number` writes them)."""
    if blank(value):
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return number(value)
    return str(value)


def dept_url(statement: Statement) -> str:
    """``/d/ENG/2026-03``; a code with ``/`` or ``?`` in it is percent-encoded."""
    return period_url(statement, statement.period)


def period_url(statement: Statement, period: str) -> str:
    """The department's bill of another ``period`` (``/d/ENG/2026-02``)."""
    return f"/d/{quote(statement.department, safe='')}/{period}"


@dataclass(frozen=True)
class LineRow:
    number: int
    pool: str
    metric: str
    quantity: str
    rate: str
    amount: str
    rule: str
    rule_cell: str
    how: str
    url: str
    line_type: str = "Charge"
    charge_period: str = ""


def line_rows(statement: Statement) -> list[LineRow]:
    base = dept_url(statement)
    rows = []
    for n, line in enumerate(statement.lines.to_dict("records"), start=1):
        rows.append(
            LineRow(
                number=n,
                pool=cell(line["Pool"]),
                metric=cell(line["Metric"]),
                quantity=number(line["Quantity"]),
                rate=number(line["Rate"]),
                amount=statement.money(Decimal(line["Amount"])),
                rule=cell(line["Rule"]),
                rule_cell=cell(line["Rule Cell"]),
                how=cell(line["How"]),
                url=f"{base}/lines/{n}",
                line_type=cell(line["Line Type"]),
                charge_period=cell(line["Charge Period"]),
            )
        )
    return rows


def months(statement: Statement) -> list[tuple[str, str]]:
    """The fiscal year's months and this department's charges (blank: not billed yet)."""
    return [(month_label(p), "" if m is None else statement.money(m)) for p, m in statement.months]


@dataclass(frozen=True)
class ChangeRow:
    """A line of the bill's corrections or credits, with what it corrects or settles."""

    line: LineRow
    charge_period: str
    """``Feb 2026``: the period the line is for."""
    what: str
    issued_url: str
    """The bill it corrects, when the portal shows it (a closed period of the year)."""


def _sum(s: Statement, frame: pd.DataFrame) -> str:
    return s.money(sum((Decimal(a) for a in frame["Amount"]), Decimal(0)))


def corrections(s: Statement, shown_periods: set[str]) -> tuple[list[ChangeRow], str]:
    """The Reversal and Correction lines, each saying what it corrects; and their total."""
    rows = []
    for row in line_rows(s):
        if row.line_type not in (REVERSAL, CORRECTION):
            continue
        month = month_label(row.charge_period)
        if row.line_type == REVERSAL:
            what = f"takes back the {row.pool} charge of {month} as it was issued"
        else:
            what = f"the {row.pool} charge of {month} as it is now, from the corrected inputs"
        url = period_url(s, row.charge_period) if row.charge_period in shown_periods else ""
        rows.append(ChangeRow(row, month, what, url))
    return rows, _sum(s, s.corrections)


def credits(s: Statement) -> tuple[list[ChangeRow], str]:
    """The credit memos, each with the accepted dispute it settles; and their total."""
    rows = []
    for row in line_rows(s):
        if row.line_type != CREDIT_MEMO:
            continue
        d = s.credited.get(row.rule)
        if d is None:
            what = f"dispute {row.rule}"
        else:
            claimed = "" if d.amount is None else f" for {s.money(d.amount)}"
            what = f"dispute {d.dispute} ({d.reason}{claimed}) on {d.pool}, {month_label(d.period)}"
            what += f", accepted: {s.money(d.resolution)} credited"
            if d.note:
                what += f". {d.note}"
        rows.append(ChangeRow(row, month_label(row.charge_period), what, ""))
    return rows, _sum(s, s.credits)


@dataclass(frozen=True)
class WhyRow:
    pool: str
    last: str
    this: str
    volume: str
    rate: str
    share: str


def why(s: Statement) -> list[WhyRow]:
    """The "why it changed" table as the emailed Summary has it, in the bill's money."""
    return [
        WhyRow(w.pool, *(s.money(v) for v in (w.last, w.this, w.volume, w.rate, w.share)))
        for w in s.why
    ]


@dataclass(frozen=True)
class BudgetRow:
    month: str
    budget: str
    actual: str
    difference: str
    """Actual − budget: above zero, billed more than the budget."""


def budget_rows(s: Statement) -> tuple[list[BudgetRow], BudgetRow | None]:
    """Budget against actual by month up to the bill's month, and the year to date (the
    months that have both). A month without a budget says so rather than show zero."""
    rows: list[BudgetRow] = []
    planned_ytd = actual_ytd = Decimal(0)
    both = False
    for (period, planned), (_, actual) in zip(s.budget, s.charged, strict=True):
        if planned is None and actual is None:
            continue
        if planned is not None and actual is not None:
            planned_ytd, actual_ytd, both = planned_ytd + planned, actual_ytd + actual, True
        rows.append(
            BudgetRow(
                month_label(period),
                "no budget" if planned is None else s.money(planned),
                "" if actual is None else s.money(actual),
                "" if planned is None or actual is None else s.money(actual - planned),
            )
        )
    if not both:
        return rows, None
    ytd = BudgetRow(
        "Year to date",
        s.money(planned_ytd),
        s.money(actual_ytd),
        s.money(actual_ytd - planned_ytd),
    )
    return rows, ytd


@dataclass(frozen=True)
class RunSummary:
    """Finance's line above the first page: the open period's bills, corrections and credits."""

    period: str
    departments: int
    total: str
    correction_lines: int
    corrections_net: str
    credit_lines: int
    credits_total: str


def run_summary(statements: list[Statement]) -> RunSummary | None:
    """Every department's bill of the open period, added up (none: no bills)."""
    if not statements:
        return None
    first = statements[0]
    zero = Decimal(0)
    total = sum((s.total for s in statements), zero)
    changes = [Decimal(a) for s in statements for a in s.corrections["Amount"]]
    memos = [Decimal(a) for s in statements for a in s.credits["Amount"]]
    return RunSummary(
        first.period,
        len(statements),
        first.money(total),
        len(changes),
        first.money(sum(changes, zero)),
        len(memos),
        first.money(sum(memos, zero)),
    )


@dataclass(frozen=True)
class UsageTable:
    columns: list[str]
    rows: list[list[str]]


def usage_table(frame: pd.DataFrame) -> UsageTable:
    columns = [str(c) for c in frame.columns]
    return UsageTable(columns, [[cell(v) for v in row] for row in frame.itertuples(index=False)])


def usage_of_line(statement: Statement, rule: Rule | None) -> UsageTable | None:
    """The department's usage rows a line of ``rule`` was made from; None if no usage drove
    it. Every line of one rule (a tier's bands) reads the same rows: the rule decides."""
    rows = usage_behind(rule, statement.usage)
    return None if rows is None else usage_table(rows)


def bill_pdf(statement: Statement, slots: threading.BoundedSemaphore) -> tuple[bytes | None, str]:
    """The bill's Summary as a PDF, made by LibreOffice as `costloop bills` makes it;
    (None, why) when it cannot be made."""
    with slots, tempfile.TemporaryDirectory(prefix="costloop-portal-pdf-") as tmp:
        source = Path(tmp) / "bill.xlsx"
        source.write_bytes(bill_workbook(statement, summary_only=True))
        batch = convert_to_pdf([source], Path(tmp) / "pdf")
        made = batch.pdfs.get(source)
        if made is None:
            return None, "The PDF cannot be made right now; download the bill workbook instead."
        return made.read_bytes(), ""


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection")."""


def csv_text(text: str) -> str:
    """A text cell for a CSV download: a department name or rule text that starts like a
    formula (``=HYPERLINK(…)``, ``-2+3``, ``@SUM(…)``) gets a single quote in front, so
    Excel or LibreOffice opening the file shows it as text instead of running it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: object) -> str:
    """Any cell for a CSV download. Only text is guarded: numbers (a credit of -120.00)
    stay numbers a spreadsheet can add up."""
    if blank(value):
        return ""
    return csv_text(value) if isinstance(value, str) else str(value)


def lines_csv(statement: Statement) -> bytes:
    """The bill lines as CSV: the main workbook's Bills columns, then the lineage."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LINE_COLUMNS)
    for row in statement.lines[LINE_COLUMNS].itertuples(index=False):
        writer.writerow([csv_cell(v) for v in row])
    # A byte-order mark so Excel opens accented department names as UTF-8.
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def attachment(file_name: str) -> str:
    """A Content-Disposition header that survives any department code."""
    plain = "".join(c if (c.isascii() and c.isalnum()) or c in "-_ ." else "_" for c in file_name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(file_name)}"


def bill_sections(s: Statement, snapshot) -> dict:
    """The bill page's sections: charges, corrections, credits, why, the year, budget (the
    live page and the static export render the same; ``snapshot`` a `Snapshot`, whose
    `page` keeps what is worked out of it)."""
    lines = snapshot.page(s, line_rows)
    shown = set(snapshot.periods_of(name_key(s.department)))
    budget, budget_ytd = budget_rows(s)
    return {
        "lines": lines,
        "charges": [row for row in lines if row.line_type == "Charge"],
        "corrections": corrections(s, shown - {s.period}),
        "credits": credits(s),
        "why": why(s),
        "why_title": why_title(s),
        "months": months(s),
        "budget": budget,
        "budget_ytd": budget_ytd,
        "charges_total": s.money(sum((Decimal(a) for a in s.charges["Amount"]), Decimal(0))),
        "corrected_links": [(month_label(p), period_url(s, p)) for p in s.corrected_in],
        "why_columns": WHY_COLUMNS,
        "corrections_title": CORRECTIONS_TITLE,
        "credits_title": CREDITS_TITLE,
        "corrections_total_label": section_total(CORRECTIONS_TITLE),
        "credits_total_label": section_total(CREDITS_TITLE),
    }
