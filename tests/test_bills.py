"""`costloop bills`: a workbook (and a PDF) per department, with only its own rows.

Runs against the demo workbook after a real `costloop run`; the totals are
checked against the main workbook's own Bills and Recovery sheets.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
import time
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from programs import PDFTOTEXT, SOFFICE, needs, needs_libreoffice

from costloop.bills import make_bills
from costloop.bills.lineage import describe
from costloop.bills.pdf import convert_to_pdf
from costloop.bills.source import load_billed_year
from costloop.bills.statement import build_statements, file_stems, pool_charges
from costloop.bills.workbook import bill_workbook
from costloop.cli import main
from costloop.engine.pipeline.commands import run_book
from costloop.rules import parse_rules
from costloop.rules.ast import RuleCell
from costloop.workbooks import demo_path

CENT = Decimal("0.01")


def run_demo(folder: Path, name: str = "demo.xlsx") -> Path:
    book = folder / name
    shutil.copyfile(demo_path(), book)
    assert run_book(book).ok
    return book


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def sheet_rows(path: Path, sheet: str) -> list[dict]:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[sheet].iter_rows(values_only=True))
    wb.close()
    header = rows[0]
    return [dict(zip(header, r, strict=False)) for r in rows[1:] if any(v is not None for v in r)]


def main_totals(book: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in sheet_rows(book, "Bills"):
        totals[row["Department"]] += money(row["Amount"])
    return dict(totals)


def departments(book: Path) -> list[dict]:
    return sheet_rows(book, "Departments")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bills")
    book = run_demo(folder)
    report = make_bills(book, folder / "out")
    assert report.ok, report.problems
    return book, report


def test_every_billed_department_gets_one_workbook_named_by_department_and_period(made):
    book, report = made
    billed = main_totals(book)
    names = sorted(p.name for p in report.outdir.glob("*.xlsx"))
    assert names == sorted(f"{code} 2026-03.xlsx" for code in billed)
    assert "PRES" not in billed  # not billable: no bill, although it has usage


def test_each_workbook_total_equals_its_total_in_the_main_workbook(made):
    book, report = made
    billed = main_totals(book)
    for bill in report.bills:
        code = bill.statement.department
        lines = sheet_rows(bill.workbook, "Bills")
        assert {r["Department"] for r in lines} == {code}
        assert sum(money(r["Amount"]) for r in lines) == billed[code], code
        summary = openpyxl.load_workbook(bill.workbook, data_only=True)["Summary"]
        assert summary["A5"].value == "Total charges"
        assert money(summary["B5"].value) == billed[code]
    assert sum(b.statement.total for b in report.bills) == sum(billed.values())


def test_year_to_date_and_months_tie_out_to_recovery(made):
    """Every department's months, added up, are what the pools recovered in each month."""
    book, report = made
    recovered: dict[str, Decimal] = defaultdict(Decimal)
    for row in sheet_rows(book, "Recovery"):
        recovered[row["Period"]] += money(row["Recovered"])
    by_month: dict[str, Decimal] = defaultdict(Decimal)
    for bill in report.bills:
        months = dict(bill.statement.months)
        assert next(iter(months)) == "2025-07" and len(months) == 12
        assert months["2026-04"] is None  # after the billed period: not billed yet
        for period, amount in months.items():
            if amount is not None:
                by_month[period] += amount
        assert bill.statement.year_to_date == sum(a for a in months.values() if a is not None)
    assert dict(by_month) == dict(recovered)


def test_change_against_last_period_uses_last_period_bills(made, tmp_path):
    book, report = made
    february = tmp_path / "feb.xlsx"
    assert run_book(book, period="2026-02", output=february).ok
    feb = main_totals(february)
    for bill in report.bills:
        s = bill.statement
        assert s.previous_period == "2026-02"
        assert s.previous == feb.get(s.department, Decimal(0))
        assert s.change == s.total - s.previous
        summary = openpyxl.load_workbook(bill.workbook, data_only=True)["Summary"]
        assert money(summary["B6"].value) == s.previous
        assert money(summary["B7"].value) == s.change


def test_summary_has_a_real_chart_of_the_fiscal_years_twelve_months(made):
    _, report = made
    with zipfile.ZipFile(report.bills[0].workbook) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 1
        chart = z.read(charts[0]).decode()
    assert "<c:barChart>" in chart
    refs = re.findall(r"<c:f>Summary!\$([A-Z])\$(\d+):\$[A-Z]\$(\d+)</c:f>", chart)
    assert {col for col, _, _ in refs} == {"A", "B"}  # categories and values
    assert all(int(last) - int(first) + 1 == 12 for _, first, last in refs)


def test_bill_lines_carry_lineage_without_naming_other_departments(made):
    book, report = made
    fin = next(b for b in report.bills if b.statement.department == "FIN")
    lines = sheet_rows(fin.workbook, "Bills")
    erp = next(r for r in lines if r["Pool"] == "ERP")
    # R07 reads: ALLOCATE "ERP" TO DEPARTMENTS BY 40% "FIN", 25% "HRO", 20% "REG", 15% "RES"
    assert erp["Rule"] == "R07"
    assert erp["How"] == 'fixed share 40% of "ERP"'
    rule_cells = {r["ID"]: r["Cell"] for r in sheet_rows(book, "Rule Check")}
    for line in lines:
        assert line["Rule Cell"] == rule_cells[line["Rule"]]
        assert line["How"]


def test_tier_lines_show_their_band_and_rate_date_and_flat_lines_none(made):
    _, report = made
    eng = next(b for b in report.bills if b.statement.department == "ENG")
    lines = sheet_rows(eng.workbook, "Bills")
    shown = [(r["Pool"], r["Rule"], r["Rate"], r["Band"], r["Rate Date"]) for r in lines
             if r["Band"] is not None or r["Rate Date"] is not None]  # fmt: skip
    assert shown == [
        # R12: TIERED FIRST 5000 AT 0.12, NEXT 45000 AT 0.09, ABOVE AT 0.07 (no Rates row)
        ("Cloud", "R12", 0.12, "0 to 5,000", None),
        ("Cloud", "R12", 0.09, "5,000 to 50,000", None),
        ("Cloud", "R12", 0.07, "50,000 up", None),
        # R11: the Storage card's tier rows, EffectiveFrom 2025-07
        ("Storage", "R11", 0.08, "0 to 10,000", "2025-07"),
        ("Storage", "R11", 0.04, "10,000 up", "2025-07"),
    ]
    flat = [r for r in lines if r["Pool"] not in ("Cloud", "Storage")]
    # The flat rate card (R10, 88.00 from 2026-01), the fixed rate (R13), the allocations.
    assert {r["Rule"] for r in flat} >= {"R10", "R13", "R04", "R05"}
    assert all(r["Band"] is None and r["Rate Date"] is None for r in flat)
    # A department below the first band has one line, in that band.
    fin = next(b for b in report.bills if b.statement.department == "FIN")
    storage = [r for r in sheet_rows(fin.workbook, "Bills") if r["Pool"] == "Storage"]
    assert [(r["Band"], r["Rate Date"]) for r in storage] == [("0 to 10,000", "2025-07")]


@pytest.mark.parametrize(
    ("text", "how"),
    [
        (
            'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Department <> "PRES"',
            'equal share of "Network" where Department <> another department',
        ),
        (
            'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "FIN", 40% "ENG"',
            'fixed share 40% of "ERP"',
        ),
        (
            'CHARGE "Cloud" FOR "vCPU-Hours" AT 0.05 '
            'WHERE Department IN ("ENG", "Research Office")',
            'charge for "vCPU-Hours" at 0.05 a unit by "Cloud" where Department IN ("ENG", '
            "another department)",
        ),
        (
            # Cost-centre numbers as codes: compared for equality, a number names a department.
            'ALLOCATE "Network" TO DEPARTMENTS EVENLY '
            "WHERE Department IN (1010, 2020) AND Headcount >= 1010",
            'equal share of "Network" where Department IN (another department, 2020) '
            "and Headcount >= 1,010",
        ),
    ],
)
def test_lineage_keeps_this_department_and_hides_the_others(text, how):
    (rule,), problems = parse_rules([RuleCell("R1", "Rules!B2", text)])
    assert problems == []
    own = frozenset({"eng", "college of engineering", "2020"})
    private = frozenset({"fin", "pres", "res", "research office", "01010", "snan"})
    assert describe(rule, own, private) == how


def test_charges_by_pool_say_graduated_only_for_one_rules_bands():
    """Two CHARGE rules at different rates in one pool are not a graduated charge, and a
    pool partly charged and partly allocated shows no rate that its amount does not obey."""
    D = Decimal
    lines = pd.DataFrame(
        [
            ("Cloud", "vCPU-Hours", D(5000), D("0.12"), D("600.00"), "R1"),
            ("Cloud", "vCPU-Hours", D(1000), D("0.09"), D("90.00"), "R1"),
            ("Storage", "GB-Month", D(100), D("0.08"), D("8.00"), "R2"),
            ("Storage", "Backup-GB", D(50), D("0.02"), D("1.00"), "R3"),
            ("Network", "Ports", D(10), D("2.00"), D("20.00"), "R4"),
            ("Network", "Ports", None, None, D("55.50"), "R5"),
        ],
        columns=["Pool", "Metric", "Quantity", "Rate", "Amount", "Rule"],
    )
    by_pool = {p.pool: p for p in pool_charges(lines)}
    assert (by_pool["Cloud"].basis, by_pool["Cloud"].rate) == ("graduated", None)
    assert by_pool["Cloud"].quantity == 6000 and by_pool["Cloud"].amount == D("690.00")
    assert (by_pool["Storage"].basis, by_pool["Storage"].rate) == ("several rates", None)
    assert by_pool["Storage"].quantity is None  # two metrics do not add up
    assert (by_pool["Network"].basis, by_pool["Network"].rate) == (
        "rate and allocated share",
        None,
    )
    assert by_pool["Network"].amount == D("75.50")


def test_usage_sheet_holds_its_own_usage_rows_of_the_period(made):
    book, report = made
    usage = sheet_rows(book, "Usage")
    for bill in report.bills:
        code = bill.statement.department
        own = [r for r in usage if r["Department"] == code and r["Period"] == "2026-03"]
        rows = sheet_rows(bill.workbook, "Usage")
        assert len(rows) == len(own) > 0
        assert {r["Department"] for r in rows} == {code}
        assert sorted((r["Metric"], r["Quantity"]) for r in rows) == sorted(
            (r["Metric"], r["Quantity"]) for r in own
        )


# --- privacy: nothing of another department anywhere in the package ---------------


def tokens_pattern(text: str) -> re.Pattern:
    """``text`` as a whole token: "RES" must not match inside "PRES" or "RESULT"."""
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(text) + r"(?![A-Za-z0-9])", re.IGNORECASE)


def package_texts(path: Path) -> dict[str, str]:
    """Every part of the zip (and its name), XML entities decoded (``&amp;`` -> ``&``)."""
    with zipfile.ZipFile(path) as z:
        texts = {name: html.unescape(z.read(name).decode("utf-8")) for name in z.namelist()}
    texts["(part names)"] = "\n".join(texts)
    texts["(file name)"] = path.name
    return texts


def leaks(texts: dict[str, str], others: list[dict]) -> list[str]:
    found = []
    for dep in others:
        for label in (dep["Department"], dep["Name"]):
            pattern = tokens_pattern(label)
            found += [f"{label!r} in {part}" for part, t in texts.items() if pattern.search(t)]
    return found


def test_no_workbook_contains_another_departments_id_or_name_in_any_part(made):
    book, report = made
    everyone = departments(book)
    codes = {d["Department"] for d in everyone}
    # The demo makes the check meaningful: RES is inside PRES, and each bill's own code
    # and name must be found by the same scanner that must find no one else's.
    assert {"RES", "PRES"} <= codes
    for bill in report.bills:
        code = bill.statement.department
        texts = package_texts(bill.workbook)
        own = next(d for d in everyone if d["Department"] == code)
        assert leaks(texts, [own]), f"the scanner does not see {code}'s own name"
        others = [d for d in everyone if d["Department"] != code]
        assert leaks(texts, others) == [], code


def test_the_privacy_scanner_finds_departments_in_the_main_workbook(made):
    """A control: the same scan over the main workbook finds every department."""
    book, _ = made
    everyone = departments(book)
    texts = package_texts(book)
    for dep in everyone:
        assert leaks(texts, [dep]), dep["Department"]


@needs(LibreOffice=SOFFICE, pdftotext=PDFTOTEXT)
def test_pdf_of_each_summary_shows_its_own_department_and_no_other(made):
    book, report = made
    everyone = departments(book)
    billed = main_totals(book)
    for bill in report.bills:
        code = bill.statement.department
        assert bill.pdf is not None and bill.pdf.name == f"{code} 2026-03.pdf"
        text = subprocess.run(
            [PDFTOTEXT, "-layout", str(bill.pdf), "-"], capture_output=True, check=True, text=True
        ).stdout
        assert text.count("\f") == 1  # one page
        assert bill.statement.display_name in text
        assert f"{billed[code]:,.2f}" in text
        assert "Charges by month" in text
        others = [d for d in everyone if d["Department"] != code]
        assert leaks({"pdf": text}, others) == [], code


@needs_libreoffice
def test_a_libreoffice_that_overruns_its_timeout_is_stopped_whole(made, tmp_path):
    _, report = made
    batch = convert_to_pdf([report.bills[0].workbook], tmp_path / "pdf", timeout=0.5)
    assert batch.pdfs == {}
    assert "was stopped" in batch.problems[0].message
    deadline = time.monotonic() + 10  # SIGKILL is immediate; the kernel may take a moment
    while live_members(batch.process_group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_members(batch.process_group) == []  # soffice.bin included, not just the script


@needs_libreoffice
def test_an_interrupted_conversion_leaves_no_libreoffice_running(made, tmp_path, monkeypatch):
    """Ctrl-C reaches only the terminal's process group; LibreOffice runs in its own."""
    _, report = made
    groups = []

    def interrupted(process, *args, **kwargs):
        groups.append(process.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_to_pdf([report.bills[0].workbook], tmp_path / "pdf")
    deadline = time.monotonic() + 1  # killed, not left to finish (its start alone takes longer)
    while live_members(groups[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_members(groups[0]) == []


@needs_libreoffice
def test_more_bills_than_one_command_line_holds_are_converted_in_several_starts(made, tmp_path):
    """Windows refuses a command line over 32,767 characters: a few hundred bills' paths."""
    _, report = made
    sources = [b.workbook for b in report.bills[:3]]
    longest = max(len(str(s)) for s in sources)
    batch = convert_to_pdf(sources, tmp_path / "pdf", max_command=longest + 10)
    assert batch.problems == []
    assert sorted(batch.pdfs) == sorted(sources)
    assert batch.starts == 3


def test_a_libreoffice_that_cannot_be_started_is_a_warning_not_a_traceback(made, tmp_path):
    _, report = made
    not_a_program = tmp_path / "soffice"
    not_a_program.write_text("not a program")  # found on PATH, but not executable
    batch = convert_to_pdf([report.bills[0].workbook], tmp_path / "pdf", soffice=not_a_program)
    assert batch.pdfs == {}
    (problem,) = batch.problems
    assert problem.where == "LibreOffice" and "could not be started" in problem.message


def live_members(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies are dead already)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def test_without_libreoffice_every_bill_is_an_error_at_its_department(made, tmp_path, monkeypatch):
    """A bill is its workbook and its PDF: without LibreOffice none is complete (exit 1)."""
    book, _ = made
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(tmp_path / "no-such-soffice"))
    out = tmp_path / "out"
    assert main(["bills", str(book), "--outdir", str(out)]) == 1
    assert len(list(out.glob("*.xlsx"))) == 25
    assert not list(out.glob("*.pdf"))
    report = make_bills(book, tmp_path / "again")
    assert not report.ok and len(report.without_pdf) == 25
    first, *rest = report.problems
    assert first.where == "LibreOffice"
    assert first.message == (
        f"COSTLOOP_SOFFICE={tmp_path / 'no-such-soffice'} is not a program that can be run; "
        "point it at LibreOffice's soffice; so the bills have no PDF"
    )
    assert [p.where for p in rest] == [b.statement.department_cell for b in report.bills]
    assert rest[0].where == "Departments!A13"  # ADM's code, the first bill
    assert rest[0].is_error and rest[0].message == (
        "ADM's bill has its workbook but no PDF (LibreOffice is not installed); it will not "
        "be emailed. Make the bills again; if the same department fails again, open its "
        "workbook in LibreOffice to see why"
    )


def test_no_pdf_makes_the_workbooks_alone_on_purpose(made, tmp_path, monkeypatch, capsys):
    book, _ = made
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(tmp_path / "no-such-soffice"))  # never asked
    out = tmp_path / "out"
    assert main(["bills", str(book), "--outdir", str(out), "--no-pdf"]) == 0
    assert len(list(out.glob("*.xlsx"))) == 25 and not list(out.glob("*.pdf"))
    assert "  25 workbook(s), no PDFs (--no-pdf)" in capsys.readouterr().out.splitlines()


def test_a_pdf_left_from_an_earlier_bill_does_not_stay_beside_the_new_workbook(
    made, tmp_path, monkeypatch
):
    book, _ = made
    out = tmp_path / "out"
    out.mkdir()
    (out / "ENG 2026-03.pdf").write_bytes(b"%PDF-1.7 last week's ENG bill")
    report = make_bills(book, out, pdf=False)
    assert report.ok
    assert (out / "ENG 2026-03.xlsx").exists() and not (out / "ENG 2026-03.pdf").exists()


def test_codes_that_make_the_same_file_name_get_a_file_each(tmp_path, monkeypatch):
    """ "R&D" and "R/D" are both "R_D" as file names: neither bill may replace the other."""
    book = tmp_path / "clash.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    renamed = {"BKS": "R&D", "PRK": "R/D"}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in renamed:
                    cell.value = renamed[cell.value]
    wb.save(book)
    assert run_book(book).ok
    report = make_bills(book, tmp_path / "out", pdf=False)  # the workbooks are the point
    assert report.ok, report.problems
    by_code = {b.statement.department: b.workbook for b in report.bills}
    assert by_code["R&D"].name == "R_D 2026-03.xlsx"
    assert by_code["R/D"].name == "R_D (2) 2026-03.xlsx"
    assert len(list((tmp_path / "out").glob("*.xlsx"))) == len(report.bills) == 25
    for code in renamed.values():
        assert {r["Department"] for r in sheet_rows(by_code[code], "Bills")} == {code}
    # Windows and macOS ignore case, so names differing only in case clash there too.
    assert file_stems(["R&D", "r_d", "ENG"], "2026-03") == [
        "R_D 2026-03",
        "r_d (2) 2026-03",
        "ENG 2026-03",
    ]


def test_usage_columns_of_dates_and_yes_no_are_copied_as_such(tmp_path, monkeypatch):
    """An extra Usage column of meter-reading dates (or TRUE/FALSE) is common; it is copied."""
    book = tmp_path / "dated.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    usage = wb["Usage"]
    read_on, checked = usage.max_column + 1, usage.max_column + 2
    usage.cell(1, read_on, "Read On")
    usage.cell(1, checked, "Checked")
    for row in range(2, usage.max_row + 1):
        usage.cell(row, read_on, dt.datetime(2026, 3, 31, 17, 30))
        usage.cell(row, checked, row % 2 == 0)
    wb.save(book)
    assert run_book(book).ok
    report = make_bills(book, tmp_path / "out", pdf=False)  # the workbooks are the point
    assert report.ok, report.problems
    rows = sheet_rows(report.bills[0].workbook, "Usage")
    assert {r["Read On"] for r in rows} == {dt.datetime(2026, 3, 31, 17, 30)}
    assert {type(r["Checked"]) for r in rows} == {bool}


def test_the_same_statement_makes_the_same_bytes(made):
    book, _ = made
    year, problems = load_billed_year(book)
    assert problems == []
    statement = build_statements(year)[0]
    assert bill_workbook(statement) == bill_workbook(statement)


# --- refusals: nothing is made from a workbook that does not match its bills ------


def test_the_fiscal_years_first_month_has_no_last_period_in_this_workbook(tmp_path):
    july = tmp_path / "july.xlsx"
    shutil.copyfile(demo_path(), july)
    wb = openpyxl.load_workbook(july)
    rules = wb["Rules"]
    header = [c.value for c in rules[1]]
    for row in rules.iter_rows(min_row=2):
        if str(row[header.index("ID")].value).startswith("F"):
            row[header.index("Enabled")].value = "N"  # a trend needs more than one month
    wb.save(july)
    assert run_book(july, period="2025-07").ok
    report = make_bills(july, tmp_path / "out")
    assert report.ok, report.problems
    bill = report.bills[0]
    assert bill.statement.previous is None  # 2025-06 is before the demo's data
    assert bill.statement.year_to_date == bill.statement.total
    summary = openpyxl.load_workbook(bill.workbook, data_only=True)["Summary"]
    assert (summary["A6"].value, summary["B6"].value) == (
        "Last period (Jun 2025)",
        "not in this workbook",
    )


def test_a_workbook_never_run_makes_no_bills(tmp_path):
    book = tmp_path / "fresh.xlsx"
    shutil.copyfile(demo_path(), book)
    report = make_bills(book, tmp_path / "out")
    assert not report.ok
    assert report.problems[0].where == "Run Log!A1"
    assert "costloop run" in report.problems[0].message
    assert not (tmp_path / "out").exists()


def test_inputs_edited_after_the_run_make_no_bills(tmp_path):
    book = run_demo(tmp_path)
    wb = openpyxl.load_workbook(book)
    quantity = wb["Usage"]["D2"]
    quantity.value += 1  # one meter reading corrected after the run
    wb.save(book)
    report = make_bills(book, tmp_path / "out")
    assert not report.ok
    assert "inputs changed since run" in report.problems[-1].message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("column", ["Department", "Amount"])
def test_a_bills_sheet_without_its_column_is_a_located_refusal(tmp_path, column):
    book = run_demo(tmp_path)
    wb = openpyxl.load_workbook(book)
    header = next(c for c in wb["Bills"][1] if c.value == column)
    header.value = f"{column} (edited)"
    wb.save(book)
    report = make_bills(book, tmp_path / "out")
    assert not report.ok
    (problem,) = report.problems
    assert problem.where == "Bills!A1"
    assert column in problem.message and "costloop run" in problem.message
    assert not (tmp_path / "out").exists()


def test_cli_bills_exit_codes(made, tmp_path, capsys):
    book, _ = made
    assert main(["bills", str(book), "--outdir", str(tmp_path / "cli")]) == 0
    assert "25 department bill(s)" in capsys.readouterr().out
    assert main(["bills", str(tmp_path / "missing.xlsx"), "--outdir", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["bills", str(book)])  # --outdir is required
    assert exc.value.code == 2
    fresh = tmp_path / "fresh.xlsx"
    shutil.copyfile(demo_path(), fresh)
    assert main(["bills", str(fresh), "--outdir", str(tmp_path / "none")]) == 1


# --- every bill gets its PDF: batches, a retry, and an error when it still fails -----------

STAND_IN = '''#!{python}
"""Stands in as soffice: drops the documents whose path holds {drop!r} from the first
{times} start(s) that are given one (as LibreOffice silently drops documents), then runs
the real LibreOffice with the rest."""
import os, sys
from pathlib import Path

marker = Path({marker!r})
starts = marker.read_text().count("x") if marker.exists() else 0
args = sys.argv[1:]
if starts < {times} and any({drop!r} in a for a in args):
    marker.write_text("x" * (starts + 1))
    args = [a for a in args if {drop!r} not in a]
if not any(a.endswith(".xlsx") for a in args):
    sys.exit(0)  # nothing left to convert: LibreOffice would make nothing
os.execv({soffice!r}, [{soffice!r}, *args])
'''


def stand_in_soffice(folder: Path, drop: str, times: int) -> Path:
    """A real program standing in as soffice that fails ``drop``'s PDF ``times`` times."""
    import sys

    script = folder / "flaky-soffice"
    script.write_text(
        STAND_IN.format(
            python=sys.executable,
            drop=drop,
            times=times,
            marker=str(folder / "flaky-starts"),
            soffice=SOFFICE,
        )
    )
    script.chmod(0o755)
    return script


def test_libreoffice_is_never_given_more_documents_than_it_reads():
    """LibreOffice 7.4 acts on its first 253 arguments and ignores the rest without a word:
    a start's documents and options stay below that."""
    from costloop.bills.pdf import MAX_DOCUMENTS_PER_START, _batches

    options = 10  # soffice's own arguments in bills.pdf (the program name is not counted)
    assert MAX_DOCUMENTS_PER_START + options < 253
    sources = [Path(f"/tmp/D{i:04d} 2026-06.xlsx") for i in range(2000)]
    sizes = [len(b) for b in _batches(sources, 30_000, MAX_DOCUMENTS_PER_START)]
    assert sizes == [200] * 10


@needs_libreoffice
def test_bills_are_converted_in_batches_each_a_fresh_start(made, tmp_path):
    _, report = made
    sources = [b.workbook for b in report.bills[:5]]
    batch = convert_to_pdf(sources, tmp_path / "pdf", max_documents=2)
    assert batch.problems == [] and batch.failed == {} and batch.retried == 0
    assert sorted(batch.pdfs) == sorted(sources)
    assert batch.starts == 3


@needs_libreoffice
def test_a_document_libreoffice_fails_once_gets_its_pdf_on_the_retry(
    made, tmp_path, monkeypatch, capsys
):
    book, _ = made
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(stand_in_soffice(tmp_path, "ENG 2026-03", 1)))
    out = tmp_path / "out"
    assert main(["bills", str(book), "--outdir", str(out)]) == 0
    assert (tmp_path / "flaky-starts").read_text() == "x"  # it did fail ENG once
    assert len(list(out.glob("*.pdf"))) == 25 and (out / "ENG 2026-03.pdf").exists()
    printed = capsys.readouterr().out
    assert re.search(
        r"25 workbook\(s\), 25 PDF\(s\) in [0-9.]+ s, 2 LibreOffice start\(s\), "
        r"1 retried",
        printed,
    ), printed


@needs_libreoffice
def test_a_bill_still_without_its_pdf_is_an_error_naming_the_department(
    made, tmp_path, monkeypatch, capsys
):
    book, _ = made
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(stand_in_soffice(tmp_path, "ENG 2026-03", 2)))
    out = tmp_path / "out"
    assert main(["bills", str(book), "--outdir", str(out)]) == 1
    assert (tmp_path / "flaky-starts").read_text() == "xx"  # the first try and the retry
    assert (out / "ENG 2026-03.xlsx").exists() and not (out / "ENG 2026-03.pdf").exists()
    assert len(list(out.glob("*.pdf"))) == 24
    printed = capsys.readouterr().out.splitlines()
    eng_cell = next(
        b.statement.department_cell for b in made[1].bills if b.statement.department == "ENG"
    )
    assert (
        f"{eng_cell}: ENG's bill has its workbook but no PDF (LibreOffice made no PDF of it); "
        "it will not be emailed. Make the bills again; if the same department fails again, "
        "open its workbook in LibreOffice to see why"
    ) in printed
    assert "FAILED: 1 bill(s) without their PDF (not to be sent): ENG" in printed


@needs_libreoffice
def test_a_corrupt_workbook_is_retried_once_then_reported_with_libreoffices_words(made, tmp_path):
    _, report = made
    good = report.bills[0].workbook
    corrupt = tmp_path / "ENG 2026-03.xlsx"
    corrupt.write_bytes(report.bills[1].workbook.read_bytes()[:3000])  # cut short
    batch = convert_to_pdf([good, corrupt], tmp_path / "pdf")
    assert list(batch.pdfs) == [good]
    assert batch.failed == {
        corrupt: "LibreOffice made no PDF of it (Error: source file could not be loaded)"
    }
    assert batch.retried == 1 and batch.starts == 2
    assert batch.problems == []  # LibreOffice itself worked


def test_the_summary_names_the_first_thirty_bills_without_a_pdf(made, tmp_path):
    from dataclasses import replace as copy

    from costloop.bills.commands import Bill, BillsReport

    _, report = made
    statement = report.bills[0].statement
    many = BillsReport(
        outdir=tmp_path,
        bills=[
            Bill(copy(statement, department=f"D{i:04d}"), tmp_path / f"D{i:04d}.xlsx")
            for i in range(2000)
        ],
        period="2026-03",
        run_id="r1",
    )
    assert many.lines()[2] == (
        "FAILED: 2,000 bill(s) without their PDF (not to be sent): "
        + ", ".join(f"D{i:04d}" for i in range(30))
        + " and 1,970 more"
    )
