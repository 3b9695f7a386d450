"""The ribbon's buttons, clicked in a real `xlwings.Book`.

The Book is xlwings' remote engine (PRO, here under ``XLWINGS_LICENSE_KEY=noncommercial``,
for tests only). What a button does in Excel (message box, active sheet, selected
cell) is queued as actions on that Book; ``addin_remote.Excel`` carries them out so
the tests read what the user would see. The status bar is not part of the remote
engine, so progress is checked through `XlwingsWorkbook`'s progress callback in
``test_addin_xlwings_book.py``.
"""

from __future__ import annotations

import csv
import shutil
import sys

import openpyxl
import pytest
from addin_remote import Excel, needs_remote, payload_of, xw

import costloop
from costloop.addin import entry
from costloop.addin.entry import FORECAST_SHEETS, on_button
from costloop.addin.xlwings_book import XlwingsWorkbook
from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path

pytestmark = needs_remote

VERSION = costloop.__version__


@pytest.fixture(autouse=True)
def log_dir(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    monkeypatch.setenv("COSTLOOP_LOG_DIR", str(folder))
    return folder


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), path)
    return path


def click(excel: Excel, button: str, version: str = VERSION, **options):
    """Click ``button`` in the workbook as Excel holds it now; Excel then does what it asked."""
    book = excel.open()
    report = on_button(button, version, book=book, **options)
    excel.carry_out(book)
    return report


def active_sheet(excel: Excel) -> str:
    return excel.sheets[excel.payload["book"]["active_sheet_index"]]["name"]


def test_check_rules_writes_rule_check_and_brings_it_to_the_front(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    report = click(excel, "CheckRules")
    # The demo's one warning: R13 leaves its Marketplace rows to Procurement.
    assert report.ok and report.message == (
        "Rules checked: 20 rule(s), no errors. 1 warning(s): see the Rule Check sheet."
    )
    assert excel.sheet_names()[-1] == "Rule Check"
    assert active_sheet(excel) == "Rule Check"
    assert excel.alerts == [[report.message, "costloop", "ok", "info", ""]]


def test_run_chargeback_writes_every_output_sheet_and_says_what_was_billed(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    report = click(excel, "RunChargeback")
    assert report.ok
    assert report.message.startswith("Period 2026-03: billed ")
    assert report.message.endswith(
        "All tie-outs passed (4 checks). 1 warning(s): see the Rule Check sheet."
    )
    assert excel.sheet_names()[-len(OUTPUT_SHEETS) :] == list(OUTPUT_SHEETS)
    assert active_sheet(excel) == "Rule Check"
    assert excel.alerts[-1][0] == report.message


def test_update_forecast_leaves_the_bills_alone(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    report = click(excel, "UpdateForecast")
    assert report.ok, report.message
    assert report.message == (
        "Forecast updated (Forecast, Variance, Compliance) for period 2026-03. "
        "1 warning(s): see the Rule Check sheet."
    )
    written = [n for n in excel.sheet_names() if n in OUTPUT_SHEETS]
    assert set(written) == FORECAST_SHEETS
    assert "Bills" not in excel.sheet_names()


def test_update_forecast_after_a_run_changes_the_forecast_not_the_bills(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    assert click(excel, "RunChargeback").ok
    bills, forecast = excel.values("Bills"), excel.values("Forecast")
    run_log = excel.values("Run Log")
    usage = excel.values("Usage")
    quantity = usage[0].index("Quantity")
    for row in usage[1:]:  # this month's usage doubles after the bills went out
        if isinstance(row[quantity], int | float):
            row[quantity] *= 2
    assert click(excel, "UpdateForecast").ok
    assert excel.values("Bills") == bills
    assert excel.values("Forecast") != forecast
    # The Run Log stays the record of the run that wrote the Bills (Make bills takes its
    # Run ID, Period and Input Fingerprint from it; its Total Billed is the Bills sheet's).
    assert excel.values("Run Log") == run_log


def test_an_error_selects_the_first_bad_cell_and_says_where_it_is(demo):
    payload = payload_of(FileWorkbook(demo), "demo.xlsx")
    rules = next(s for s in payload["sheets"] if s["name"] == "Rules")["values"]
    header = rules[0]
    row = next(i for i, r in enumerate(rules) if str(r[header.index("Rule")]).startswith("ALLOC"))
    column = header.index("Rule")
    rules[row][column] = rules[row][column].replace("ALLOCATE", "ALOCATE", 1)
    cell = f"{'ABCDEFGH'[column]}{row + 1}"

    excel = Excel(payload)
    report = click(excel, "RunChargeback")
    assert not report.ok
    assert report.message.startswith(
        f"1 error to fix; the Rule Check sheet lists them. The first: Rules!{cell}, character "
    )
    assert (active_sheet(excel), excel.payload["book"]["selection"]) == ("Rules", cell)
    assert excel.alerts[-1][3] == "critical"
    # A failed run writes only Rule Check and Run Log (docs/contract.md, errors).
    assert [n for n in excel.sheet_names() if n in OUTPUT_SHEETS] == ["Rule Check", "Run Log"]


def test_a_different_addin_version_is_refused_before_anything_changes(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    sheets = excel.sheet_names()
    report = click(excel, "RunChargeback", version="0.0.1")
    assert not report.ok
    assert (
        f"add-in is version 0.0.1, but the costloop installed for Python is version {VERSION}"
        in report.message
    )
    assert "Nothing was changed" in report.message
    assert excel.sheet_names() == sheets
    assert [a[3] for a in excel.alerts] == ["critical"]


def test_an_unknown_button_says_so(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    assert click(excel, "Frobnicate").message == "costloop has no button called 'Frobnicate'."


def test_a_crash_is_one_sentence_in_excel_and_a_traceback_in_the_log(demo, log_dir):
    payload = payload_of(FileWorkbook(demo), "demo.xlsx")
    usage = next(s for s in payload["sheets"] if s["name"] == "Usage")
    usage["values"] = None  # a client payload Excel never sends: xlwings itself fails
    excel = Excel(payload)
    report = click(excel, "RunChargeback")
    assert not report.ok
    assert report.message.startswith("costloop stopped unexpectedly (")
    assert report.message.endswith(f"Details are in {log_dir / 'addin.log'}.")
    assert "Traceback" not in report.message and "\n" not in report.message
    logged = (log_dir / "addin.log").read_text()
    assert "RunChargeback failed on demo.xlsx" in logged and "Traceback" in logged


def test_a_broken_python_environment_is_a_message_not_a_traceback(demo, monkeypatch, log_dir):
    monkeypatch.setitem(sys.modules, "costloop.engine.pipeline.run", None)  # cannot be imported
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    report = click(excel, "RunChargeback")
    assert report.message == (
        "costloop's Python environment is incomplete, so nothing was changed; ask whoever "
        'installed costloop to run pip install "costloop[excel]" again. '
        f"Details are in {log_dir / 'addin.log'}."
    )
    assert "costloop.engine.pipeline.run" in (log_dir / "addin.log").read_text()
    assert "Rule Check" not in excel.sheet_names()


def test_book_caller_is_the_default_workbook(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    book = excel.open()
    book.set_mock_caller()  # what xlwings.Book.caller() returns outside Excel
    try:
        report = on_button("CheckRules", VERSION)
    finally:
        del xw.Book._mock_caller
    excel.carry_out(book)
    assert report.ok and excel.sheet_names()[-1] == "Rule Check"


def test_bills_need_the_workbook_saved_first(demo):
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))  # a name, not a saved file
    for button, words in (("MakeBills", "Make bills"), ("EmailBills", "Email bills")):
        report = click(excel, button)
        assert not report.ok
        assert report.message == (
            "Save the workbook first (File > Save As, as an Excel Workbook), "
            f"then click {words} again."
        )


def test_a_workbook_open_only_online_is_asked_for_a_local_copy(demo):
    online = "https://contoso.sharepoint.com/sites/finance/FY26.xlsx"
    excel = Excel(payload_of(FileWorkbook(demo), online))
    report = click(excel, "MakeBills")
    assert not report.ok
    assert report.message.startswith(f"The workbook is open from {online}, not from a folder")
    assert excel.saved == 0


def test_make_bills_saves_the_workbook_and_writes_a_folder_beside_it(demo):
    assert run_book(demo).ok
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))  # the Book's fullname is the file
    report = click(excel, "MakeBills")
    assert excel.saved == 1  # saved before reading it from disk
    outdir = demo.parent / "demo bills"
    assert report.ok, report.message
    assert report.message.endswith(f"Bills are in the folder {outdir}.")
    bills = FileWorkbook(demo).read_sheet("Bills")
    departments = {row[bills[0].index("Department")] for row in bills[1:]}
    made = sorted(p.stem for p in outdir.iterdir() if p.suffix == ".xlsx")
    assert len(made) == len(departments) > 1  # one workbook per billed department
    assert f"{len(departments)} department bill(s)" in report.message


def test_make_bills_says_which_bills_have_no_pdf(demo, monkeypatch, tmp_path):
    """Without LibreOffice no bill is complete: the button fails and goes to the first one."""
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(tmp_path / "no-such-soffice"))
    assert run_book(demo).ok
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    report = click(excel, "MakeBills")
    assert not report.ok
    assert report.message.startswith(
        "FAILED: 25 bill(s) without their PDF (not to be sent): ADM, ATH, BKS,"
    )
    missing = tmp_path / "no-such-soffice"
    assert report.message.endswith(
        f". First: LibreOffice: COSTLOOP_SOFFICE={missing} is not a program that can be run; "
        "point it at LibreOffice's soffice; so the bills have no PDF."
    )


def test_make_bills_before_a_run_names_the_button_not_the_command(demo):
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    report = click(excel, "MakeBills")
    assert not report.ok
    assert "the workbook has not been run yet: click Run chargeback first" in report.message
    assert "costloop" not in report.message


def test_email_bills_asks_first(demo, monkeypatch):
    assert run_book(demo).ok
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    questions: list[str] = []

    def say_no(question: str) -> bool:
        questions.append(question)
        return False

    report = click(excel, "EmailBills", confirm=say_no)
    assert questions == ["Email every billed department its bill now?"]
    assert report.ok and report.message == "No bills were emailed."


def test_email_bills_without_a_mail_server_names_the_setting(demo, monkeypatch):
    for name in ("HOST", "PORT", "USER", "PASSWORD", "SECURITY"):
        monkeypatch.delenv(f"COSTLOOP_SMTP_{name}", raising=False)
    assert run_book(demo).ok
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    report = click(excel, "EmailBills", confirm=lambda question: True)
    assert not report.ok
    assert "COSTLOOP_SMTP_HOST" in report.message


def test_the_log_goes_where_the_admin_says(monkeypatch, tmp_path):
    monkeypatch.setenv("COSTLOOP_LOG_DIR", str(tmp_path / "x"))
    assert entry.log_path() == tmp_path / "x" / "addin.log"


def test_the_status_bar_names_sheets_as_they_are_spelt(demo):
    shown: list[str | None] = []

    class Recorded(entry.Screen):
        def status(self, text: str | None) -> None:
            shown.append(text)

    book = Excel(payload_of(FileWorkbook(demo), "demo.xlsx")).open()
    entry.check_rules(book, Recorded(book), confirm=lambda question: False)
    assert shown[0] == "checking the rules…"
    assert "reading Usage…" in shown and "writing Rule Check…" in shown


def _usage_in_a_csv_beside(demo) -> list[list]:
    """The demo's Usage rows moved to usage.csv beside it, named by Settings UsageSource."""
    book = openpyxl.load_workbook(demo)
    usage = book["Usage"]
    rows = [[c.value for c in r] for r in usage.iter_rows()]
    usage.delete_rows(2, usage.max_row)
    book["Settings"].append(["UsageSource", "usage.csv"])
    book.save(demo)
    with (demo.parent / "usage.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return rows


@pytest.mark.parametrize("button", ["RunChargeback", "UpdateForecast"])
def test_usage_source_files_are_found_beside_the_saved_workbook(demo, tmp_path, button):
    by_file = tmp_path / "by-file.xlsx"
    assert run_book(demo, output=by_file).ok
    _usage_in_a_csv_beside(demo)
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))  # the Book's fullname is the file
    report = click(excel, button)
    assert report.ok, report.message
    live = XlwingsWorkbook(excel.open())
    assert live.read_sheet("Forecast") == FileWorkbook(by_file).read_sheet("Forecast")


def test_usage_source_in_a_workbook_never_saved_asks_for_a_save(demo):
    _usage_in_a_csv_beside(demo)
    excel = Excel(payload_of(FileWorkbook(demo), "Book1"))  # a new workbook has no folder
    report = click(excel, "RunChargeback")
    assert not report.ok
    assert "has not been saved as a file yet; save it, then run again" in report.message


def test_close_period_asks_first_then_records_the_last_run_as_issued(demo):
    assert run_book(demo).ok
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    questions: list[str] = []

    def answer(yes: bool):
        def ask(question: str) -> bool:
            questions.append(question)
            return yes

        return ask

    report = click(excel, "ClosePeriod", confirm=answer(False))
    assert report.ok and report.message == "2026-03 was not closed."
    assert "Issued" not in excel.sheet_names()
    assert questions == [
        "Close 2026-03? Its bills and journal become issued: they are never rerun, and later "
        "changes to its inputs are billed as corrections in the next period."
    ]
    report = click(excel, "ClosePeriod", confirm=answer(True))
    bills = len(FileWorkbook(demo).read_sheet("Bills")) - 1
    assert report.ok, report.message
    assert report.message == f"Closed 2026-03: {bills} bill line(s) recorded in the Issued sheet."
    assert excel.sheet_names()[-1] == "Issued"
    assert active_sheet(excel) == "Issued"
    # Closing twice is refused, with the reason, and nothing changes.
    again = click(excel, "ClosePeriod", confirm=answer(True))
    assert not again.ok
    assert "period 2026-03 is already closed" in again.message


def test_close_period_before_any_run_says_what_to_click(demo):
    excel = Excel(payload_of(FileWorkbook(demo), str(demo)))
    report = click(excel, "ClosePeriod", confirm=lambda q: True)
    assert not report.ok
    assert report.message.startswith("Nothing to close yet: click Run chargeback first")
