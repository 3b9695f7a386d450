"""The ribbon's buttons: what each does in the open workbook, and how it reports back.

The add-in's VBA calls exactly one function, through xlwings' ``RunPython``::

    RunPython "import costloop.addin.entry as e; e.on_button('RunChargeback', '0.1.0')"

with the ribbon control's id and the add-in's own version. Every button
reports in Excel, never on a console: the `Rule Check` sheet brought to the
front, the first bad cell selected (its sheet activated), and a short
message box; long runs say what they are doing in Excel's status bar. A
finance user never sees a traceback: anything unexpected is written to the
log file (`log_path`) and the message box says one sentence and where the
details are.

Only xlwings' BSD part is used: ``Book.caller()``, ``App.alert`` (a plain
message box on Windows and macOS) and ``App.status_bar``.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costloop import __version__
from costloop.addin.xlwings_book import XlwingsWorkbook, local_file, online_address
from costloop.engine.model.sheets import ITFM_SHEETS, RULE_CHECK
from costloop.engine.workbook.host import (
    ColumnReads,
    HiddenRows,
    OutputSheet,
    SavedAsFile,
    Workbook,
)

if TYPE_CHECKING:
    from costloop.engine.pipeline.run import Outcome

# The engine (pandas, lark, ...) is imported when a button runs, not with this module:
# a broken Python environment then ends in a message box and the log, not in the
# traceback window xlwings shows when the module itself cannot be imported.

TITLE = "costloop"
FORECAST_SHEETS = frozenset((*ITFM_SHEETS, RULE_CHECK))
"""What Update forecast writes: the Optimize sheets, never the bills already issued, nor
the Run Log, which stays the record of the run that wrote the Bills: Make bills and Email
bills take their Run ID, Period and Input Fingerprint from it, and its Total Billed is the
Bills sheet's."""

Confirm = Callable[[str], bool]


@dataclass
class Report:
    """What a button told the user (also returned, for scripts and tests)."""

    ok: bool
    message: str


# -- Excel's side: message box, status bar, going to a cell ---------------------------------


class Screen:
    """The few things a button does to Excel's window, each of which must never fail."""

    def __init__(self, book: Any):
        self.book = book

    def status(self, text: str | None) -> None:
        """Show ``text`` in the status bar; None gives the status bar back to Excel."""
        # Not every host has a status bar (xlwings' remote engine has none).
        with contextlib.suppress(Exception):
            self.book.app.status_bar = f"{TITLE}: {text}" if text else False

    def tell(self, report: Report) -> Report:
        try:
            self.book.app.alert(
                report.message, title=TITLE, buttons="ok", mode="info" if report.ok else "critical"
            )
        except Exception:
            log().exception("could not show a message box: %s", report.message)
        return report

    def ask(self, question: str) -> bool:
        """A yes/no message box; anything but a clear yes is no."""
        try:
            answer = self.book.app.alert(question, title=TITLE, buttons="yes_no", mode="info")
        except Exception:
            log().exception("could not ask: %s", question)
            return False
        return answer == "yes"

    def show_sheet(self, name: str) -> bool:
        try:
            self.book.sheets[name].activate()
        except Exception:
            return False
        return True

    def go_to(self, where: str) -> bool:
        """Select the cell a problem names (``Rules!B7``), activating its sheet first."""
        place = _cell_of(where)
        if place is None:
            return False
        sheet_name, cell = place
        try:
            sheet = self.book.sheets[sheet_name]
            sheet.activate()  # Excel selects only on the active sheet
            sheet.range(cell).select()
        except Exception:  # a hidden sheet or a name Excel does not know: not worth a failure
            return False
        return True


_PLACE = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Za-z]{1,3})\$?(\d+)")


def _cell_of(where: str) -> tuple[str, str] | None:
    """(sheet, cell) of a problem's location: ``Rules!B7:31`` -> (``Rules``, ``B7``)."""
    match = _PLACE.match(where or "")
    if match is None:
        return None
    sheet = (match.group(1) or "").replace("''", "'") or match.group(2)
    return sheet, f"{match.group(3).upper()}{match.group(4)}"


# -- the log file --------------------------------------------------------------------------


def log_path() -> Path:
    """Where the add-in logs: ``COSTLOOP_LOG_DIR`` if set, else the platform's usual place."""
    configured = os.environ.get("COSTLOOP_LOG_DIR")
    if configured:
        folder = Path(configured)
    elif sys.platform.startswith("win"):
        folder = Path(os.environ.get("LOCALAPPDATA", Path.home())) / "costloop" / "logs"
    elif sys.platform == "darwin":
        folder = Path.home() / "Library" / "Logs" / "costloop"
    else:
        folder = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        folder = folder / "costloop"
    return folder / "addin.log"


def log() -> logging.Logger:
    logger = logging.getLogger("costloop.addin")
    path = log_path()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        for handler in list(logger.handlers):  # the log folder changed (tests, a new setting)
            logger.removeHandler(handler)
            handler.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError:
            handler = logging.NullHandler()  # no writable log folder must not stop a button
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


# -- the buttons ---------------------------------------------------------------------------


def on_button(
    button_id: str,
    addin_version: str,
    book: Any = None,
    confirm: Confirm | None = None,
) -> Report | None:
    """Run the button ``button_id`` on the calling workbook; never raises.

    ``book`` defaults to ``xlwings.Book.caller()`` (the workbook the button was
    clicked in); ``confirm`` defaults to a yes/no message box.
    """
    try:
        if book is None:
            import xlwings

            book = xlwings.Book.caller()
    except Exception:
        log().exception("%s: could not reach the calling workbook", button_id)
        return None
    screen = Screen(book)
    try:
        if addin_version != __version__:
            return screen.tell(
                Report(
                    False,
                    f"This costloop add-in is version {addin_version}, but the costloop "
                    f"installed for Python is version {__version__}. Nothing was changed. "
                    "Ask whoever installed costloop to install the matching add-in "
                    "(costloop addin install).",
                )
            )
        button = BUTTONS.get(button_id)
        if button is None:
            return screen.tell(Report(False, f"costloop has no button called {button_id!r}."))
        log().info("%s on %s (costloop %s)", button_id, _book_label(book), __version__)
        report = button(book, screen, confirm or screen.ask)
        log().info("%s: %s", button_id, report.message)
        return screen.tell(report)
    except Exception as exc:
        log().exception("%s failed on %s", button_id, _book_label(book))
        known = _explained(exc)
        if isinstance(exc, ImportError):
            known = (
                "costloop's Python environment is incomplete, so nothing was changed; ask "
                'whoever installed costloop to run pip install "costloop[excel]" again'
            )
        sentence = known or f"costloop stopped unexpectedly ({type(exc).__name__})"
        return screen.tell(Report(False, f"{_sentence(sentence)} Details are in {log_path()}."))
    finally:
        screen.status(None)


def check_rules(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Check rules: parse and check every rule and the data; write Rule Check."""
    from costloop.engine.pipeline.run import check_workbook

    screen.status("checking the rules…")
    outcome = check_workbook(_workbook(book, screen), label=_book_label(book))
    rules = len(outcome.book.rules) if outcome.book else 0
    return _report(screen, outcome, f"Rules checked: {rules} rule(s), no errors.")


def run_chargeback(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Run chargeback: the whole loop for the period; every output sheet."""
    from costloop.engine.pipeline.run import run_workbook

    screen.status("running the chargeback…")
    outcome = run_workbook(_workbook(book, screen), label=_book_label(book))
    return _report(screen, outcome, _summary(outcome))


def update_forecast(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Update forecast: re-run the loop, write Forecast, Variance and Compliance (and Rule
    Check), leaving the bills already issued and the Run Log of their run untouched."""
    from costloop.engine.pipeline.run import run_workbook

    screen.status("updating the forecast…")
    view = _OnlySheets(_workbook(book, screen), FORECAST_SHEETS)
    outcome = run_workbook(view, label=_book_label(book))
    outcome.written = view.written
    written = ", ".join(s for s in view.written if s != RULE_CHECK)
    return _report(screen, outcome, f"Forecast updated ({written}) for period {outcome.period}.")


def close_period(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Close period: record the last clean run's bills as issued (Issued), after a yes."""
    from costloop.engine.pipeline.close import close_workbook, last_run

    workbook = _workbook(book, screen)
    period = last_run(workbook).get("Period")
    if not period:
        return Report(False, "Nothing to close yet: click Run chargeback first, check the bills, "
                      "then close the period.")  # fmt: skip
    question = (
        f"Close {period}? Its bills and journal become issued: they are never rerun, and "
        "later changes to its inputs are billed as corrections in the next period."
    )
    if not confirm(question):
        return Report(True, f"{period} was not closed.")
    screen.status(f"closing {period}…")
    outcome = close_workbook(workbook, str(period), label=_book_label(book))
    if outcome.ok:
        screen.show_sheet("Issued")
        lines = len(outcome.result.bills)
        return Report(True, f"Closed {period}: {lines} bill line(s) recorded in the Issued sheet.")
    return _report(screen, outcome, "")


def make_bills(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Make bills: one workbook and its PDF per department, in a folder beside the workbook."""
    from costloop import bills  # on first use: the other buttons never need it

    path = _saved_path(book, screen)
    if not isinstance(path, Path):
        return _save_first("Make bills", path)
    outdir = path.parent / f"{path.stem} bills"
    screen.status("making the department bills…")
    report = bills.make_bills(path, outdir)
    return _bills_report(screen, report, f"Bills are in the folder {outdir}.")


def email_bills(book: Any, screen: Screen, confirm: Confirm) -> Report:
    """Email bills: send each department its bill, after a yes from the user."""
    from costloop import bills  # on first use: the other buttons never need it

    path = _saved_path(book, screen)
    if not isinstance(path, Path):
        return _save_first("Email bills", path)
    if not confirm("Email every billed department its bill now?"):
        return Report(True, "No bills were emailed.")
    screen.status("emailing the bills…")
    report = bills.send_bills(path)
    return _bills_report(screen, report, "")


BUTTONS: dict[str, Callable[[Any, Screen, Confirm], Report]] = {
    "CheckRules": check_rules,
    "RunChargeback": run_chargeback,
    "UpdateForecast": update_forecast,
    "ClosePeriod": close_period,
    "MakeBills": make_bills,
    "EmailBills": email_bills,
}
"""Ribbon control id -> what the button does (the add-in's customUI uses these ids)."""


# -- helpers -------------------------------------------------------------------------------


def _workbook(book: Any, screen: Screen) -> XlwingsWorkbook:
    # "Reading Usage…" shows as "costloop: reading Usage…": only the first letter lowered,
    # so sheet names read as they are spelt on their tabs.
    return XlwingsWorkbook(book, progress=lambda text: screen.status(text[:1].lower() + text[1:]))


def _book_label(book: Any) -> str:
    try:
        return str(book.name)
    except Exception:
        return "the workbook"


def _report(screen: Screen, outcome: Outcome, success: str) -> Report:
    """Rule Check in front, the first bad cell selected, and the message box's words."""
    if RULE_CHECK in outcome.written:
        screen.show_sheet(RULE_CHECK)
    errors, warnings = outcome.errors, outcome.warnings
    if errors:
        screen.go_to(errors[0].where)
        count = "1 error" if len(errors) == 1 else f"{len(errors)} errors"
        listed = (
            "the Rule Check sheet lists them"
            if RULE_CHECK in outcome.written
            else "nothing was written"
        )
        return Report(
            False, f"{count} to fix; {listed}. The first: {_sentence(errors[0].headline())}"
        )
    message = success
    if warnings:
        message += f" {len(warnings)} warning(s): see the Rule Check sheet."
    return Report(True, message)


def _summary(outcome: Outcome) -> str:
    from costloop.engine.pipeline.commands import summary_lines

    if not outcome.ok or outcome.result is None:
        return ""
    lines = summary_lines(outcome)
    return f"{lines[0]}. {lines[-1]}."


def _explained(exc: Exception) -> str | None:
    """The command line's sentence for a failure that is not a bug (a locked file...)."""
    try:
        from costloop.engine.pipeline.commands import explain_exception
    except Exception:  # the engine itself is what failed to import
        return None
    return explain_exception(exc)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


class _OnlySheets:
    """A workbook through which only some output sheets are written (Update forecast).

    Everything else is the wrapped host's, its optional parts included
    (`costloop.engine.workbook.host`): a big Usage sheet is still read by column,
    and UsageSource files are still found beside its file.
    """

    def __init__(self, workbook: Workbook, keep: frozenset[str]):
        self.workbook = workbook
        self.keep = keep
        self.written: list[str] = []

    def sheet_names(self) -> list[str]:
        return self.workbook.sheet_names()

    def read_sheet(self, name: str) -> list[list[Any]]:
        return self.workbook.read_sheet(name)

    def read_columns(self, name: str) -> list[Any] | None:
        if isinstance(self.workbook, ColumnReads):
            return self.workbook.read_columns(name)
        return None  # the host reads by rows only: the reader then uses read_sheet

    @property
    def path(self) -> Path | None:
        return self.workbook.path if isinstance(self.workbook, SavedAsFile) else None

    def owned_sheets(self) -> set[str]:
        return self.workbook.owned_sheets()

    def hidden_rows(self, name: str) -> set[int]:
        return self.workbook.hidden_rows(name) if isinstance(self.workbook, HiddenRows) else set()

    def replace_sheets(self, sheets: list[OutputSheet]) -> None:
        kept = [s for s in sheets if s.name in self.keep]
        self.workbook.replace_sheets(kept)
        self.written += [s.name for s in kept]


def _saved_path(book: Any, screen: Screen) -> Path | str | None:
    """The workbook's file, saved now so the bills match what is on screen.

    None if the workbook has never been saved; its address if it lives only online
    (OneDrive or SharePoint without a synced local copy).
    """
    online = online_address(book)
    if online is not None:
        return online
    path = local_file(book)
    if path is None:
        return None
    screen.status("saving the workbook…")
    book.save()
    return path


def _save_first(button: str, online: str | None = None) -> Report:
    if online:
        return Report(
            False,
            f"The workbook is open from {online}, not from a folder on this computer; "
            f"use File > Save As to save a copy to a local or synced folder, then click "
            f"{button} again.",
        )
    return Report(
        False,
        f"Save the workbook first (File > Save As, as an Excel Workbook), then click "
        f"{button} again.",
    )


# The bills commands speak to the command line; in Excel the same step is a button.
_COMMANDS_AS_BUTTONS = (
    (re.compile(r"(?:run )?`costloop run(?: BOOK)?`"), "click Run chargeback"),
    (re.compile(r"(?:run )?`costloop check(?: BOOK)?`"), "click Check rules"),
)


def _in_excel_words(text: str) -> str:
    """A bills message with its command-line advice turned into the button to click."""
    for command, button in _COMMANDS_AS_BUTTONS:
        text = command.sub(button, text)
    return text


def _bills_report(screen: Screen, report: Any, success: str) -> Report:
    lines = report.lines()
    if not report.ok:
        # Bills made but some without their PDF: the FAILED line says which, not the count.
        headline = next(
            (line.strip() for line in lines if line.strip().startswith("FAILED")), lines[0]
        )
        errors = [p for p in report.problems if p.is_error]
        if errors:
            screen.go_to(errors[0].where)
            first = _in_excel_words(errors[0].headline())
            return Report(False, f"{headline}. First: {first}.")
        return Report(False, _sentence(headline))
    text = _sentence(lines[0]) if lines else ""
    return Report(True, f"{text} {success}".strip())
