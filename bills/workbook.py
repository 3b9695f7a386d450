"""One department's bill as an Excel workbook, written with XlsxWriter.

Sheets: `Summary` (who, what period, the total, the change against last period,
the year to date, the charges by pool, and a real Excel chart of the fiscal
year's months), `Bills` (its bill lines with their lineage, the main
workbook's columns first) and `Usage` (its own usage rows that drove them).

The file is byte-for-byte the same for the same statement: XlsxWriter is given
the run's time as the document's creation time, so nothing depends on the clock.
"""

from __future__ import annotations

import datetime as dt
import io
import numbers
from decimal import Decimal
from pathlib import Path

import pandas as pd
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from costloop.bills.statement import LINE_COLUMNS, Statement
from costloop.engine.model.formats import PERCENT_FORMAT, QUANTITY_FORMAT, money_format, rate_format

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_EPOCH = dt.datetime(2000, 1, 1)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def month_label(period: str) -> str:
    """``2026-03`` -> ``Mar 2026``."""
    year, month = period.split("-")
    return f"{_MONTHS[int(month) - 1]} {year}"


# The Summary's section wording, shared with the portal's bill page (one wording, two places).
WHY_COLUMNS = ("Pool", "Last period", "This period", "Volume", "Rate", "Share")
CORRECTIONS_TITLE, CREDITS_TITLE = "Corrections to earlier periods", "Credits"
SECTION_COLUMNS = ("Pool", "Charge Period", "Line Type", "Quantity", "Amount", "Reference")


def why_title(s: Statement) -> str:
    """``Why it changed (Feb 2026 to Mar 2026)``."""
    return f"Why it changed ({month_label(s.previous_period)} to {month_label(s.period)})"


def section_total(title: str) -> str:
    """``Total corrections to earlier periods``, ``Total credits``."""
    return f"Total {title[0].lower()}{title[1:]}"


def _created(statement: Statement) -> dt.datetime:
    try:
        return dt.datetime.strptime(statement.run.run_time, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return _EPOCH


def _number(value: object) -> float | None:
    """A cell value: Decimal money and quantities to numbers, blanks to None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return float(Decimal(str(value))) if isinstance(value, Decimal) else value


class _Formats:
    def __init__(self, book: xlsxwriter.Workbook, statement: Statement):
        money = money_format(statement.minor_unit)
        self.title = book.add_format({"bold": True, "font_size": 16})
        self.subtitle = book.add_format({"font_size": 12})
        self.label = book.add_format({"bold": True})
        header = {"bold": True, "bottom": 1, "bg_color": "#DDEBF7"}
        self.header = book.add_format(header)
        self.header_number = book.add_format(header | {"align": "right"})
        self.header_basis = book.add_format(header | {"indent": 1})
        self.money = book.add_format({"num_format": money})
        self.money_bold = book.add_format({"num_format": money, "bold": True, "top": 1})
        self.total_label = book.add_format({"bold": True, "top": 1})
        self.big_money = book.add_format({"num_format": money, "bold": True, "font_size": 14})
        self.quantity = book.add_format({"num_format": QUANTITY_FORMAT})
        self.rate = book.add_format({"num_format": rate_format(statement.minor_unit)})
        self.percent = book.add_format({"num_format": PERCENT_FORMAT})
        self.note = book.add_format({"italic": True, "font_color": "#595959"})
        self.basis = book.add_format({"indent": 1})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.when = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})


def _summary(book: xlsxwriter.Workbook, ws: Worksheet, s: Statement, f: _Formats) -> None:
    ws.set_column("A:A", 36)
    ws.set_column("B:B", 18)
    ws.set_column("C:C", 14)
    ws.set_column("D:D", 12)
    ws.set_column("E:E", 16)
    ws.set_column("F:F", 18, f.basis)
    ws.write("A1", s.organization or "IT charges", f.title)
    ws.write("A2", f"IT charges for {s.display_name} ({s.department})", f.subtitle)

    ws.write("A4", "Period", f.label)
    ws.write("B4", month_label(s.period))
    ws.write("A5", "Total charges", f.label)
    ws.write_number("B5", _number(s.total), f.big_money)
    ws.write("A6", f"Last period ({month_label(s.previous_period)})", f.label)
    ws.write("A7", "Change against last period", f.label)
    if s.previous is None:
        ws.write("B6", "not in this workbook", f.note)
        ws.write("B7", "n/a", f.note)
    else:
        ws.write_number("B6", _number(s.previous), f.money)
        ws.write_number("B7", _number(s.change), f.money)
        if s.previous:
            ws.write_number("C7", float(s.change / s.previous), f.percent)
    ws.write("A8", f"Year to date ({s.fiscal_year})", f.label)
    ws.write_number("B8", _number(s.year_to_date), f.money)
    ws.write("A9", "Currency", f.label)
    ws.write("B9", s.currency)
    ws.write("A10", f"Run {s.run.run_id} at {s.run.run_time} UTC", f.note)

    top = 12  # 0-based row of the by-pool header (Excel row 13)
    headers = ["Pool", "Metric", "Quantity", "Rate", "Amount", "Basis"]
    ws.write(top - 1, 0, "Charges by pool", f.label)
    for col, header in enumerate(headers):
        numeric = header in ("Quantity", "Rate", "Amount")
        fmt = f.header_number if numeric else f.header_basis if header == "Basis" else f.header
        ws.write(top, col, header, fmt)
    for i, pool in enumerate(s.by_pool, start=top + 1):
        ws.write(i, 0, pool.pool)
        ws.write(i, 1, pool.metric)
        if pool.quantity is not None:
            ws.write_number(i, 2, _number(pool.quantity), f.quantity)
        if pool.rate is not None:
            ws.write_number(i, 3, _number(pool.rate), f.rate)
        ws.write_number(i, 4, _number(pool.amount), f.money)
        ws.write(i, 5, pool.basis, f.basis)
    last = top + len(s.by_pool) + 1
    charged = sum((p.amount for p in s.by_pool), Decimal(0))
    ws.write(last, 0, "Total" if charged == s.total else "Charges of this period", f.total_label)
    for col in (1, 2, 3, 5):
        ws.write_blank(last, col, None, f.total_label)
    ws.write_number(last, 4, _number(charged), f.money_bold)

    # The chart's data: the fiscal year's months, blank for months not billed yet.
    months_row = last + 3
    ws.write(months_row - 1, 0, f"Charges by month ({s.fiscal_year})", f.label)
    ws.write(months_row, 0, "Month", f.header)
    ws.write(months_row, 1, "Charges", f.header_number)
    for i, (period, amount) in enumerate(s.months, start=months_row + 1):
        ws.write(i, 0, month_label(period))
        if amount is not None:
            ws.write_number(i, 1, _number(amount), f.money)
    first_data, last_data = months_row + 1, months_row + len(s.months)

    chart = book.add_chart({"type": "column"})
    chart.add_series(
        {
            "name": "Charges",
            "categories": ["Summary", first_data, 0, last_data, 0],
            "values": ["Summary", first_data, 1, last_data, 1],
            "fill": {"color": "#2F5597"},
            "gap": 60,
        }
    )
    chart.set_title({"name": f"Charges by month, {s.fiscal_year}", "name_font": {"size": 11}})
    chart.set_legend({"none": True})
    # From zero: a bar chart with a cut axis makes a 1% change look like a doubling.
    chart.set_y_axis({"num_format": "#,##0", "min": 0, "major_gridlines": {"visible": True}})
    chart.set_size({"width": 430, "height": 250})
    ws.insert_chart(months_row, 2, chart, {"x_offset": 10, "y_offset": 0})

    end = _sections(ws, s, f, max(last_data, months_row + 14) + 2)
    ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    ws.print_area(0, 0, end, 5)
    ws.set_footer(f"&L{s.department} {s.period}&RPage &P of &N")


def _sections(ws: Worksheet, s: Statement, f: _Formats, row: int) -> int:
    """Why it changed, corrections to earlier periods, credits, open disputes; the last row."""
    if s.why:
        ws.write(row, 0, why_title(s), f.label)
        row += 1
        for col, header in enumerate(WHY_COLUMNS):
            ws.write(row, col, header, f.header if col == 0 else f.header_number)
        for why in s.why:
            row += 1
            ws.write(row, 0, why.pool)
            for col, value in enumerate((why.last, why.this, why.volume, why.rate, why.share), 1):
                ws.write_number(row, col, _number(value), f.money)
        row += 2
    for title, lines in ((CORRECTIONS_TITLE, s.corrections), (CREDITS_TITLE, s.credits)):
        if not len(lines):
            continue
        ws.write(row, 0, title, f.label)
        row += 1
        for col, header in enumerate(SECTION_COLUMNS):
            ws.write(row, col, header, f.header_number if header in ("Quantity", "Amount")
                     else f.header)  # fmt: skip
        for line in lines.to_dict("records"):
            row += 1
            ws.write_row(row, 0, (line["Pool"], line["Charge Period"], line["Line Type"]))
            quantity = _number(line["Quantity"])
            if quantity is not None:
                ws.write_number(row, 3, quantity, f.quantity)
            ws.write_number(row, 4, _number(line["Amount"]), f.money)
            ws.write(row, 5, line["Rule"], f.basis)
        row += 1
        ws.write(row, 0, section_total(title), f.total_label)
        ws.write_number(row, 4, _number(sum((Decimal(a) for a in lines["Amount"]), Decimal(0))),
                        f.money_bold)  # fmt: skip
        row += 2
    if s.open_disputes:
        ws.write(row, 0, "Open disputes", f.label)
        row += 1
        for col, header in enumerate(("Dispute", "Period", "Pool", "Reason", "Amount", "Note")):
            ws.write(row, col, header, f.header_number if header == "Amount" else f.header)
        for d in s.open_disputes:
            row += 1
            ws.write_row(row, 0, (d.dispute, d.period, d.pool, d.reason))
            if d.amount is not None:
                ws.write_number(row, 4, _number(d.amount), f.money)
            ws.write(row, 5, d.note, f.basis)
        row += 2
    return row


def _table(ws: Worksheet, frame: pd.DataFrame, columns: list[str], formats: dict, f) -> None:
    ws.write_row(0, 0, columns, f.header)
    for c, column in enumerate(columns):
        fmt = formats.get(column)
        values = frame[column].tolist() if column in frame else []
        for r, value in enumerate(values, start=1):
            cell = _number(value)
            if cell is None:
                continue
            # Extra Usage columns hold whatever the workbook has: dates, TRUE/FALSE, text.
            if isinstance(cell, bool):
                ws.write_boolean(r, c, cell)
            elif isinstance(cell, dt.datetime):  # pd.Timestamp too
                moment = cell.replace(tzinfo=None)
                ws.write_datetime(r, c, moment, f.date if moment.time() == dt.time() else f.when)
            elif isinstance(cell, numbers.Number):
                ws.write_number(r, c, cell, fmt)
            else:
                ws.write_string(r, c, str(cell))
    ws.freeze_panes(1, 0)
    if len(frame):
        ws.autofilter(0, 0, len(frame), len(columns) - 1)


def _bills(ws: Worksheet, s: Statement, f: _Formats) -> None:
    widths = [9, 12, 28, 20, 14, 12, 11, 14, 7, 11, 12, 14, 9, 16, 10, 11, 60]
    for c, width in enumerate(widths):
        ws.set_column(c, c, width)
    formats = {"Quantity": f.quantity, "Rate": f.rate, "Amount": f.money,
               "Pool Total": f.money, "Share": f.percent}  # fmt: skip
    _table(ws, s.lines, LINE_COLUMNS, formats, f)


def _usage(ws: Worksheet, s: Statement, f: _Formats) -> None:
    columns = list(s.usage.columns)
    for c, column in enumerate(columns):
        ws.set_column(c, c, 14 if column != "Reference" else 18)
    _table(ws, s.usage, columns, {"Quantity": f.quantity}, f)


def bill_workbook(statement: Statement, summary_only: bool = False) -> bytes:
    """The department's workbook as bytes; ``summary_only`` for the PDF's source."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    created = _created(statement)
    book.set_properties(
        {
            "title": f"IT charges {statement.period}: {statement.display_name}",
            "subject": f"IT charges for {statement.period}",
            "author": statement.organization or "costloop",
            "company": statement.organization,
            "comments": f"Made by costloop from run {statement.run.run_id}",
            "created": created,
        }
    )
    f = _Formats(book, statement)
    _summary(book, book.add_worksheet("Summary"), statement, f)
    if not summary_only:
        _bills(book.add_worksheet("Bills"), statement, f)
        _usage(book.add_worksheet("Usage"), statement, f)
    book.close()
    return out.getvalue()


def write_bill(statement: Statement, path: Path, summary_only: bool = False) -> bytes:
    """Write the workbook to ``path`` atomically; returns its bytes."""
    data = bill_workbook(statement, summary_only)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data
