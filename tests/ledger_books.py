"""A small real workbook for the period-close tests, and helpers to edit and read it.

Three departments in three funds (one of them the IT fund), a pool charged at a rate
and a pool allocated by usage, a whole fiscal year (July 2025 to June 2026) of
usage and actuals. Built with openpyxl, as a user's Excel file would be: the
engine reads and writes it through `FileWorkbook`, like any workbook.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl

from costloop.engine.chargeback.execute import execute
from costloop.engine.model.periods import add_months
from costloop.engine.pipeline.run import prepare
from costloop.engine.xlsx.file_workbook import FileWorkbook

YEAR = [add_months("2025-07", i) for i in range(12)]
DEPARTMENTS = [("ENG", "Engineering", "General"), ("BIO", "Biology", "Grants"),
               ("ITS", "IT Services", "IT")]  # fmt: skip
RULES = [
    ("R1", 'CHARGE "Cloud" FOR "vCPU-Hours" AT 0.10'),
    ("R2", 'ALLOCATE "Network" TO DEPARTMENTS BY USAGE "Ports"'),
]


def usage_of(period: str) -> list[tuple]:
    month = YEAR.index(period) if period in YEAR else 0
    return [
        (period, "ENG", "vCPU-Hours", 1000 + 10 * month),
        (period, "BIO", "vCPU-Hours", 250.5),
        (period, "ITS", "vCPU-Hours", 40),
        (period, "ENG", "Ports", 30),
        (period, "BIO", "Ports", 12 + month % 3),
        (period, "ITS", "Ports", 5),
    ]


def build(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Settings"
    for row in (("Key", "Value"), ("Organization", "Test University"), ("Currency", "USD"),
                ("FiscalYearStart", 7)):  # fmt: skip
        ws.append(row)
    ws = wb.create_sheet("Departments")
    ws.append(("Department", "Name", "Fund"))
    for row in DEPARTMENTS:
        ws.append(row)
    ws = wb.create_sheet("Budget")
    ws.append(("Period", "Pool", "Amount"))
    for period in YEAR:
        ws.append((period, "Cloud", 150))
        ws.append((period, "Network", 1000))
    ws = wb.create_sheet("Actuals")
    ws.append(("Period", "Pool", "Amount"))
    for i, period in enumerate(YEAR):
        ws.append((period, "Cloud", 140 + i))
        ws.append((period, "Network", 1000 + 3.33 * i))
    ws = wb.create_sheet("Usage")
    ws.append(("Period", "Department", "Metric", "Quantity"))
    for period in YEAR:
        for row in usage_of(period):
            ws.append(row)
    ws = wb.create_sheet("Rules")
    ws.append(("ID", "Rule"))
    for row in RULES:
        ws.append(row)
    wb.save(path)
    return path


def append_rows(path: Path, sheet: str, rows: list[tuple]) -> None:
    """Add rows to an input sheet, as a user typing them in Excel would."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    for row in rows:
        ws.append(row)
    wb.save(path)


def set_cell(path: Path, sheet: str, cell: str, value: object) -> None:
    wb = openpyxl.load_workbook(path)
    wb[sheet][cell] = value
    wb.save(path)


def records(path: Path, sheet: str) -> list[dict[str, object]]:
    grid = FileWorkbook(path).read_sheet(sheet)
    return [dict(zip(grid[0], row, strict=True)) for row in grid[1:]]


def money(value: object) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01")) if value is not None else Decimal(0)


def by_department(rows, kinds: tuple[str, ...]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row["Line Type"] in kinds:
            out[row["Department"]] += money(row["Amount"])
    return dict(out)


def fresh_bills(path: Path, period: str) -> dict[str, Decimal]:
    """What a fresh run of ``period`` bills each department today, ignoring what was issued."""
    outcome = prepare(FileWorkbook(path))
    bills = execute(outcome.book, outcome.plan, period).bills
    out: dict[str, Decimal] = defaultdict(Decimal)
    for dep, amount in zip(bills["Department"], bills["Amount"], strict=True):
        out[dep] += amount
    return dict(out)
