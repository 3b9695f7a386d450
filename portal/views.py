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
from costloop.bills.workbook import bill_workbook, month_label
from costloop.engine.pipeline.lineage import usage_behind
from costloop.rules.ast import Statement as Rule


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
    return f"/d/{quote(statement.department, safe='')}/{statement.period}"


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
            )
        )
    return rows


def months(statement: Statement) -> list[tuple[str, str]]:
    """The fiscal year's months and this department's charges (blank: not billed yet)."""
    return [(month_label(p), "" if m is None else statement.money(m)) for p, m in statement.months]


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
