"""Headless recalculation against the real LibreOffice.

Finance keeps a Summary sheet of its own formulas over costloop's output
sheets. After ``costloop run --recalc`` those formulas must show the engine's
own numbers to a reader that does not calculate (python-calamine here), the
formulas LibreOffice cannot compute must keep their values with a located
warning, and a LibreOffice that hangs must be stopped, all of it, in time.

CI installs LibreOffice; there these tests fail rather than skip without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import python_calamine
from corpus import CORPUS_DIR
from programs import needs_libreoffice
from test_recalc_merge import add_user_sheet, cell_xml, sheet_xml

from costloop.cli import main
from costloop.engine.pipeline.commands import run_book
from costloop.engine.recalc.command import recalc_books
from costloop.engine.recalc.libreoffice import find_soffice
from costloop.engine.xlsx import parts
from costloop.problems import Reason
from costloop.workbooks import demo_path

pytestmark = needs_libreoffice

STALE = -1  # the value every Summary formula caches before the run

CENT = Decimal("0.01")


def summary_sheet(departments: list[str]) -> bytes:
    """The user's Summary: lookups over Bills, Run Log, Recovery and Journal, all stale."""
    cells = [
        cell_xml(f"{col}1", None, title)
        for col, title in zip(
            "ABCDEF",
            ["Department", "SUMIFS", "SUMPRODUCT", "VLOOKUP first line", "INDEX/MATCH", "Lines"],
            strict=True,
        )
    ]
    for row, department in enumerate(departments, start=2):
        cells += [
            cell_xml(f"A{row}", None, department),
            cell_xml(f"B{row}", f"SUMIFS(Bills!$H:$H,Bills!$B:$B,$A{row})", STALE),
            cell_xml(f"C{row}", f"SUMPRODUCT((Bills!$B$2:$B$5000=$A{row})*Bills!$H$2:$H$5000)", 0),
            cell_xml(f"D{row}", f"VLOOKUP($A{row},Bills!$B:$H,7,FALSE)", STALE),
            cell_xml(f"E{row}", f"INDEX(Bills!$D:$D,MATCH($A{row},Bills!$B:$B,0))", "stale"),
            cell_xml(f"F{row}", f"COUNTIFS(Bills!$B:$B,$A{row})", STALE),
        ]
    totals = len(departments) + 3
    formulas = [
        ("Total billed", "SUM(Bills!H:H)", STALE),
        ("Run Log total", "VLOOKUP(\"Total Billed\",'Run Log'!$A:$B,2,FALSE)", STALE),
        ("Period", "INDEX('Run Log'!$B:$B,MATCH(\"Period\",'Run Log'!$A:$A,0))", "stale"),
        ("First bill line", "Bills!H2", STALE),
        ("Recovered", f"SUMIFS(Recovery!$D:$D,Recovery!$A:$A,B{totals + 2})", STALE),
        ("Journal debits", "SUM(Journal!G:G)", STALE),
    ]
    for offset, (label, formula, cached) in enumerate(formulas):
        cells += [
            cell_xml(f"A{totals + offset}", None, label),
            cell_xml(f"B{totals + offset}", formula, cached),
        ]
    return sheet_xml(cells)


@pytest.fixture(scope="module")
def march(tmp_path_factory) -> tuple[Path, object]:
    """A demo workbook billed for February with a stale Summary, and the engine's March result."""
    folder = tmp_path_factory.mktemp("march")
    book = folder / "finance.xlsx"
    shutil.copyfile(demo_path(), book)
    assert run_book(book, period="2026-02").ok
    twin = folder / "twin.xlsx"
    shutil.copyfile(book, twin)
    result = run_book(twin, period="2026-03").result
    departments = list(dict.fromkeys(result.bills["Department"]))
    add_user_sheet(book, "Summary", summary_sheet(departments))
    return book, result


def read_summary(path: Path) -> list[list]:
    with python_calamine.CalamineWorkbook.from_path(str(path)) as workbook:
        return workbook.get_sheet_by_name("Summary").to_python(skip_empty_area=False)


def cents(value: float) -> Decimal:
    return Decimal(repr(round(value, 2))).quantize(CENT)


def part_bytes(path: Path) -> dict[str, bytes]:
    package = parts.Package.read(path.read_bytes())
    return dict(package.parts)


def test_run_recalc_makes_the_users_formulas_show_the_engines_numbers(march, tmp_path, capsys):
    source, result = march
    book = tmp_path / source.name
    shutil.copyfile(source, book)

    assert main(["run", str(book), "--period", "2026-03", "--recalc"]) == 0
    out = capsys.readouterr().out
    assert "finance.xlsx: recalculated" in out and "updated on Summary" in out

    bills = result.bills
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    for department, amount in zip(bills["Department"], bills["Amount"], strict=True):
        amounts[department] += amount
    grid = read_summary(book)
    departments = list(amounts)
    rows = grid[1 : len(departments) + 1]  # a row per department, then the totals
    for row, department in zip(rows, departments, strict=True):
        lines = bills[bills["Department"] == department]
        assert row[0] == department
        assert cents(row[1]) == amounts[department], f"SUMIFS for {department}"
        assert cents(row[2]) == amounts[department], f"SUMPRODUCT for {department}"
        assert cents(row[3]) == lines["Amount"].iloc[0], f"VLOOKUP for {department}"
        assert row[4] == lines["Pool"].iloc[0], f"INDEX/MATCH for {department}"
        assert row[5] == len(lines), f"COUNTIFS for {department}"
    totals = {row[0]: row[1] for row in grid[len(departments) + 2 :] if row and row[0]}
    total = sum(bills["Amount"], Decimal(0))
    assert cents(totals["Total billed"]) == total
    assert cents(totals["Run Log total"]) == total
    assert totals["Period"] == "2026-03"
    assert cents(totals["First bill line"]) == bills["Amount"].iloc[0]
    recovery = result.recovery
    recovered = sum(recovery[recovery["Period"] == "2026-03"]["Recovered"], Decimal(0))
    assert cents(totals["Recovered"]) == recovered
    debits = sum((d for d in result.journal["Debit"] if d is not None), Decimal(0))
    assert cents(totals["Journal debits"]) == debits


def test_run_recalc_with_output_recalculates_the_output_and_leaves_the_book(march, tmp_path):
    source, result = march
    book = tmp_path / source.name
    shutil.copyfile(source, book)
    before = book.read_bytes()
    output = tmp_path / "out" / "march.xlsx"
    output.parent.mkdir()
    assert main(["run", str(book), "--period", "2026-03", "--output", str(output), "--recalc"]) == 0
    assert book.read_bytes() == before
    totals = {row[0]: row[1] for row in read_summary(output) if row and row[0]}
    assert cents(totals["Total billed"]) == sum(result.bills["Amount"], Decimal(0))


def test_recalc_changes_only_the_summary_values_and_asks_excel_to_recalculate(march, tmp_path):
    source, _ = march
    book = tmp_path / source.name
    shutil.copyfile(source, book)
    before = part_bytes(book)

    (outcome,), seconds = recalc_books([book])
    assert outcome.ok and outcome.written and outcome.changed_sheets == ["Summary"]
    assert seconds > 0
    after = part_bytes(book)
    workbook = parts.WorkbookPart(parts.Package.read(book.read_bytes()))
    summary_part = workbook.sheet("Summary").part
    changed = {name for name in before if after.get(name) != before[name]}
    # workbook.xml changes only if it lacked fullCalcOnLoad (the demo already has it).
    assert changed - {workbook.part} == {summary_part}
    assert set(after) == set(before)
    calc = workbook.root.find(f"{{{workbook.ns}}}calcPr")
    assert calc.get("fullCalcOnLoad") == "1"

    # Recalculating again finds every value current and leaves the file alone.
    again = book.read_bytes()
    (outcome,), _ = recalc_books([book])
    assert outcome.ok and not outcome.written and outcome.cells_updated == 0
    assert book.read_bytes() == again


def test_xlookup_and_let_keep_their_values_with_located_warnings(march, tmp_path, capsys):
    source, _ = march
    book = tmp_path / source.name
    shutil.copyfile(source, book)
    add_user_sheet(
        book,
        "Lookups",
        sheet_xml(
            [
                cell_xml("A2", None, "ENG"),
                cell_xml("C2", "_xlfn.XLOOKUP(A2,Bills!$B:$B,Bills!$H:$H)", 123.45),
                cell_xml("C3", "_xlfn.LET(_xlpm.x,Bills!$H$2,_xlpm.x*2)", 9.5),
                cell_xml("C4", "C2*2", 246.9),
                cell_xml("C5", "SUM(Bills!H:H)", STALE),
            ]
        ),
    )
    assert main(["recalc", str(book)]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: Lookups!C2: XLOOKUP is not computed headlessly; its value was left as it was"
        in out
    )
    assert (
        "warning: Lookups!C3: LET is not computed headlessly; its value was left as it was" in out
    )
    assert "warning: Lookups!C4: LibreOffice cannot compute this formula" in out
    with python_calamine.CalamineWorkbook.from_path(str(book)) as workbook:
        grid = workbook.get_sheet_by_name("Lookups").to_python(skip_empty_area=False)
    assert [row[2] for row in grid[1:4]] == [123.45, 9.5, 246.9]
    assert grid[4][2] > 0  # the formula LibreOffice can compute was recalculated


def test_an_xlsm_workbook_keeps_its_vba_project(tmp_path):
    source = CORPUS_DIR / "macro01.xlsm"
    book = tmp_path / "macro.xlsm"
    shutil.copyfile(source, book)
    add_user_sheet(book, "Summary", sheet_xml([cell_xml("A1", "6*7", STALE)]))
    before = part_bytes(book)
    (outcome,), _ = recalc_books([book])
    assert outcome.ok and outcome.written
    after = part_bytes(book)
    vba = [n for n in before if n.lower().endswith("vbaproject.bin")]
    assert vba and all(after[n] == before[n] for n in vba)
    with python_calamine.CalamineWorkbook.from_path(str(book)) as workbook:
        assert workbook.get_sheet_by_name("Summary").to_python(skip_empty_area=False) == [[42.0]]


def test_two_recalcs_at_once_do_not_share_a_profile(tmp_path):
    books = []
    for number in (1, 2):
        book = tmp_path / f"book{number}.xlsx"
        shutil.copyfile(demo_path(), book)
        add_user_sheet(book, "Summary", sheet_xml([cell_xml("A1", f"{number}*100", STALE)]))
        books.append(book)
    outcomes = {}

    def recalc(book):
        outcomes[book] = recalc_books([book])[0][0]

    threads = [threading.Thread(target=recalc, args=(b,)) for b in books]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for number, book in enumerate(books, start=1):
        assert outcomes[book].ok, [p.render() for p in outcomes[book].problems]
        with python_calamine.CalamineWorkbook.from_path(str(book)) as workbook:
            assert workbook.get_sheet_by_name("Summary").to_python(skip_empty_area=False) == [
                [number * 100.0]
            ]


# -- a LibreOffice that hangs ------------------------------------------------------------


def libreoffice_processes(marker: str) -> dict[int, str]:
    """pid -> program of every live (not zombie) process whose command line holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
            program = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if marker.encode() in command and stat[stat.rfind(")") + 2] != "Z":
            found[int(entry.name)] = program
    return found


class Freezer(threading.Thread):
    """Watch for LibreOffice starts and freeze the first one (SIGSTOP), as a hang would."""

    def __init__(self, marker: str, every: bool = False):
        super().__init__(daemon=True)
        self.marker = marker
        self.every = every
        self.frozen_all: set[int] = set()
        self.seen: dict[int, str] = {}
        self.frozen: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid, program in libreoffice_processes(self.marker).items():
                self.seen[pid] = program
                if program != "soffice.bin" or pid in self.frozen_all:
                    continue
                if self.frozen is None or self.every:
                    os.kill(pid, signal.SIGSTOP)
                    self.frozen = self.frozen or pid
                    self.frozen_all.add(pid)
            time.sleep(0.05)


@pytest.fixture
def private_temp(tmp_path, monkeypatch) -> str:
    """Recalc's temporary folder (and so LibreOffice's profile) under this test's folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return str(folder)


def book_with_summary(path: Path, formula: str) -> Path:
    shutil.copyfile(demo_path(), path)
    add_user_sheet(path, "Summary", sheet_xml([cell_xml("A1", formula, STALE)]))
    return path


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches processes through /proc")
def test_a_hung_libreoffice_is_stopped_whole_and_the_rest_of_the_batch_still_runs(
    tmp_path, private_temp
):
    hung = book_with_summary(tmp_path / "hung.xlsx", "1+1")
    fine = book_with_summary(tmp_path / "fine.xlsx", "2+2")
    hung_before = hung.read_bytes()
    freezer = Freezer(private_temp)
    freezer.start()
    started = time.monotonic()
    try:
        (first, second), _ = recalc_books([hung, fine], timeout=20)
    finally:
        freezer.done.set()
        freezer.join()
    elapsed = time.monotonic() - started

    assert freezer.frozen is not None
    # The launcher and the office process; on a loaded machine the watcher may also catch
    # the `soffice` shell script before it execs the launcher under the same pid.
    seen = set(freezer.seen.values())
    assert {"oosplash", "soffice.bin"} <= seen <= {"soffice", "oosplash", "soffice.bin"}
    # Stopped at the timeout, not hanging on: 20 s for the frozen start, one more start.
    assert elapsed < 20 + 60
    (problem,) = first.problems
    assert problem.code == Reason.RECALC_FAILED and problem.where == "hung.xlsx"
    assert problem.message.startswith(
        "LibreOffice did not finish this workbook within 20 seconds and was stopped"
    )
    assert problem.message.endswith("the workbook was not recalculated and is unchanged")
    assert hung.read_bytes() == hung_before
    # The workbook after the hung one got a fresh LibreOffice.
    assert second.ok and second.written
    with python_calamine.CalamineWorkbook.from_path(str(fine)) as workbook:
        assert workbook.get_sheet_by_name("Summary").to_python(skip_empty_area=False) == [[4.0]]
    # Nothing LibreOffice started is left: not the launcher, not the frozen soffice.bin.
    assert libreoffice_processes(private_temp) == {}
    assert not Path(f"/proc/{freezer.frozen}/cmdline").exists() or (
        Path(f"/proc/{freezer.frozen}/cmdline").read_bytes() == b""
    )


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches processes through /proc")
def test_a_timeout_on_the_command_line_is_a_clear_message_and_exit_1(
    tmp_path, private_temp, capsys
):
    book = book_with_summary(tmp_path / "slow.xlsx", "1+1")
    before = book.read_bytes()
    freezer = Freezer(private_temp)
    freezer.start()
    try:
        code = main(["recalc", str(book), "--timeout", "5"])
    finally:
        freezer.done.set()
        freezer.join()
    assert code == 1
    out = capsys.readouterr().out
    assert "slow.xlsx: LibreOffice did not finish this workbook within 5 seconds" in out
    assert "slow.xlsx: not recalculated (1 error(s)); the file is unchanged" in out
    assert book.read_bytes() == before
    assert libreoffice_processes(private_temp) == {}


def test_soffice_is_found():
    assert Path(find_soffice()).name in ("soffice", "libreoffice", "soffice.exe")
    version = subprocess.run([find_soffice(), "--version"], capture_output=True, timeout=120)
    assert b"LibreOffice" in version.stdout


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches processes through /proc")
def test_a_libreoffice_that_never_works_is_given_up_after_two_starts(tmp_path, private_temp):
    books = [book_with_summary(tmp_path / f"book{n}.xlsx", f"{n}+1") for n in range(1, 5)]
    before = [b.read_bytes() for b in books]
    freezer = Freezer(private_temp, every=True)
    freezer.start()
    started = time.monotonic()
    try:
        outcomes, _ = recalc_books(books, timeout=5)
    finally:
        freezer.done.set()
        freezer.join()
    elapsed = time.monotonic() - started
    assert len(freezer.frozen_all) == 2  # two starts, not one per workbook
    assert elapsed < 2 * 5 + 30
    messages = [o.errors[0].message for o in outcomes]
    assert "did not finish this workbook within 5 seconds" in messages[0]
    assert all("stopped responding twice within 5 seconds" in m for m in messages[1:])
    assert [b.read_bytes() for b in books] == before
    assert libreoffice_processes(private_temp) == {}
