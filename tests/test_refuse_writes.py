"""Never write over what must not be written: each refusal leaves every byte as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.engine.xlsx.write_guard import WriteRefused
from costloop.workbooks import demo_path


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder(path: Path) -> dict[str, str]:
    """Every file beside the workbook and its content: nothing added, nothing replaced."""
    return {p.name: digest(p) for p in sorted(path.parent.iterdir()) if p.is_file()}


def read_only(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


# --- read-only and open workbooks --------------------------------------------------------


def test_a_read_only_workbook_is_refused_before_anything_is_written(demo: Path, capsys):
    read_only(demo)
    before = folder(demo)
    assert main(["run", str(demo)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"costloop run: {demo}: the file is read-only, so costloop will not replace it; "
        "make it writable (untick Read-only in its Properties) or write the result elsewhere "
        "with --output — nothing was changed\n"
    )
    assert folder(demo) == before
    assert stat.S_IMODE(demo.stat().st_mode) == 0o444


@pytest.mark.parametrize(
    ("lock_name", "program"),
    [
        ("~$demo.xlsx", "Excel"),
        ("~$mo.xlsx", "Excel"),  # Office's owner file for a long name drops two characters
        (".~lock.demo.xlsx#", "LibreOffice"),
    ],
)
def test_a_workbook_open_in_excel_or_libreoffice_is_refused(
    demo: Path, capsys, lock_name: str, program: str
):
    (demo.parent / lock_name).write_bytes(b"\x05Alice")
    before = folder(demo)
    assert main(["run", str(demo)]) == 1
    assert capsys.readouterr().err == (
        f"costloop run: {demo}: the workbook is open in {program} (its lock file {lock_name} "
        f"is beside it); close it there and run again — nothing was changed. If it is not "
        f"open, delete {lock_name}\n"
    )
    assert folder(demo) == before


# --- check reads: it reports on a workbook open in Excel or read-only, writing nothing ----

TYPO = 'ALLOCATE "Network" TO DEPARTMENTS BY Headcont'
TYPO_LINES = [
    'Rules!B6, character 38: unknown column "Headcont" — did you mean Headcount?',
    "  " + TYPO,
    "  " + " " * 37 + "^",
]


def misspell_a_rule(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    for row in wb["Rules"].iter_rows(min_row=2):
        if row[0].value == "R05":
            row[1].value = TYPO
    wb.save(path)


MARKETPLACE = (
    'warning: Usage!E1385, E1404, E1506: no enabled rule reads "AWS Cost" with Service '
    '"Marketplace" (the rules reading it filter on WHERE Service), so 3 rows in 2026-03 '
    "(quantity 1,830.71, used by ENG, MED, CCR) are billed to nobody: if another process bills "
    "it, this is expected; otherwise add the Service to a rule's WHERE"
)


@pytest.mark.parametrize(
    ("lock_name", "program"),
    [("~$demo.xlsx", "Excel"), (".~lock.demo.xlsx#", "LibreOffice")],
)
@pytest.mark.parametrize("typo", [False, True], ids=["clean", "typo"])
def test_check_reports_on_a_workbook_open_in_excel_without_writing(
    demo: Path, capsys, lock_name: str, program: str, typo: bool
):
    if typo:
        misspell_a_rule(demo)
    (demo.parent / lock_name).write_bytes(b"\x05Alice")
    before = folder(demo)
    # The exit code is the findings', as if Rule Check had been written.
    assert main(["check", str(demo)]) == (1 if typo else 0)
    captured = capsys.readouterr()
    # A clean demo has its one warning (R13 leaves Marketplace to Procurement); with the
    # typo, the run's usage is not judged, so no warning.
    assert captured.out.splitlines() == [
        *(TYPO_LINES if typo else [MARKETPLACE]),
        f"{demo}: 20 rule(s) checked, {int(typo)} error(s), {int(not typo)} warning(s)",
        f"{demo}: Rule Check was not written, as it is open in {program} (its lock file "
        f"{lock_name} is beside it); the problems are listed above. To get the sheet, close it "
        f"there (or delete {lock_name} if it is not open) and check again, or write it into a "
        "copy with --output OUT.xlsx",
    ]
    assert captured.err == ""
    assert folder(demo) == before


def test_check_reports_on_a_read_only_workbook_without_writing(demo: Path, capsys):
    misspell_a_rule(demo)
    read_only(demo)  # root may still write it: costloop goes by the mode (write_guard)
    before = folder(demo)
    assert main(["check", str(demo)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        *TYPO_LINES,
        f"{demo}: 20 rule(s) checked, 1 error(s), 0 warning(s)",
        f"{demo}: Rule Check was not written, as it is read-only; the problems are listed above. "
        "To get the sheet, make it writable (untick Read-only in its Properties) and check "
        "again, or write it into a copy with --output OUT.xlsx",
    ]
    assert folder(demo) == before
    assert stat.S_IMODE(demo.stat().st_mode) == 0o444
    assert "Rule Check" not in FileWorkbook(demo).sheet_names()


def test_check_output_writes_rule_check_into_a_copy(demo: Path, tmp_path: Path, capsys):
    misspell_a_rule(demo)
    read_only(demo)
    (demo.parent / "~$demo.xlsx").write_bytes(b"\x05Alice")  # open in Excel as well
    before = folder(demo)
    out = tmp_path / "checked" / "demo-checked.xlsx"
    out.parent.mkdir()
    assert main(["check", str(demo), "--output", str(out)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        *TYPO_LINES,
        f"{demo}: 20 rule(s) checked, 1 error(s), 0 warning(s)",
        f"Wrote Rule Check to {out}",
    ]
    assert folder(demo) == before
    copy = FileWorkbook(out)
    assert copy.sheet_names() == [*FileWorkbook(demo).sheet_names(), "Rule Check"]
    r05 = [r for r in copy.read_sheet("Rule Check") if r[0] == "R05"]
    assert r05 == [["R05", "Rules!B6", "ERROR", TYPO_LINES[0].split(", ", 1)[1], None]]
    # The copy is the user's to edit (and to check into again), though the source is not.
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert main(["check", str(demo), "--output", str(out)]) == 1


def test_check_output_refuses_a_read_only_copy_and_a_wrong_name(demo: Path, tmp_path, capsys):
    out = tmp_path / "out.xlsx"
    shutil.copyfile(demo, out)
    read_only(out)
    before = digest(out)
    assert main(["check", str(demo), "--output", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"costloop check: --output {out}: the file is read-only, so costloop will not replace "
        "it; make it writable (untick Read-only in its Properties) or choose another file — "
        "nothing was changed\n"
    )
    assert digest(out) == before
    assert main(["check", str(demo), "--output", str(tmp_path / "out.csv")]) == 2
    assert capsys.readouterr().err == (
        f"costloop check: --output {tmp_path / 'out.csv'}: give a .xlsx or .xlsm file name\n"
    )


def test_the_lock_of_another_workbook_does_not_block(demo: Path):
    (demo.parent / "~$other.xlsx").write_bytes(b"\x05Alice")
    assert main(["run", str(demo)]) == 0


def test_output_may_be_written_while_the_source_is_open(demo: Path, tmp_path: Path):
    (demo.parent / "~$demo.xlsx").write_bytes(b"\x05Alice")
    out = tmp_path / "out" / "feb.xlsx"
    out.parent.mkdir()
    before = digest(demo)
    assert main(["run", str(demo), "--output", str(out)]) == 0
    assert "Bills" in FileWorkbook(out).sheet_names()
    assert digest(demo) == before


def test_a_read_only_output_file_is_refused(demo: Path, tmp_path: Path, capsys):
    out = tmp_path / "out.xlsx"
    shutil.copyfile(demo, out)
    read_only(out)
    before_out, before_book = digest(out), digest(demo)
    assert main(["run", str(demo), "--output", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"costloop run: --output {out}: the file is read-only, so costloop will not replace "
        "it; make it writable (untick Read-only in its Properties) or choose another file — "
        "nothing was changed\n"
    )
    assert (digest(out), digest(demo)) == (before_out, before_book)


def test_the_file_workbook_itself_refuses_a_locked_file(demo: Path):
    """The guard sits in the writer too: a workbook opened in Excel mid-run is still safe."""
    wb = FileWorkbook(demo)
    wb.sheet_names()
    (demo.parent / ".~lock.demo.xlsx#").write_text("alice,host,…")
    before = digest(demo)
    with pytest.raises(WriteRefused, match="open in LibreOffice"):
        wb.replace_sheets([OutputSheet("Bills", ["Period"], [("2026-03",)])])
    assert digest(demo) == before


# --- the demo command --------------------------------------------------------------------


def test_demo_reruns_over_its_own_unedited_workbook(tmp_path: Path, capsys):
    assert main(["demo", str(tmp_path / "d")]) == 0
    assert main(["demo", str(tmp_path / "d")]) == 0  # outputs differ; the user's sheets do not
    assert "Demo workbook:" in capsys.readouterr().out


def test_demo_never_overwrites_an_edited_demo_without_force(tmp_path: Path, capsys):
    book = tmp_path / "d" / "costloop-demo.xlsx"
    assert main(["demo", str(tmp_path / "d")]) == 0
    wb = openpyxl.load_workbook(book)
    wb["Budget"]["C2"] = 99999  # a finance user trying out their own numbers
    wb.save(book)
    before = folder(book)
    capsys.readouterr()
    assert main(["demo", str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err == (
        f"costloop demo: {book} has changes of your own (its Budget sheet differs from the "
        "demo's); it was not replaced. Run costloop demo --force to start again from a fresh "
        "demo, or give another folder\n"
    )
    assert folder(book) == before

    assert main(["demo", str(tmp_path / "d"), "--force"]) == 0
    assert FileWorkbook(book).read_sheet("Budget")[1][2] != 99999


def test_demo_refuses_an_added_sheet_and_a_non_workbook(tmp_path: Path, capsys):
    book = tmp_path / "costloop-demo.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    wb.create_sheet("My notes")
    wb.save(book)
    assert main(["demo", str(tmp_path)]) == 1
    assert "(its sheets are Instructions, Settings, Departments, Budget, Actuals, Usage, " in (
        capsys.readouterr().err
    )
    book.write_text("not a workbook")
    assert main(["demo", str(tmp_path)]) == 1
    assert "(it is not the demo workbook)" in capsys.readouterr().err
    assert book.read_text() == "not a workbook"


def test_demo_force_still_refuses_a_demo_open_in_excel(tmp_path: Path, capsys):
    assert main(["demo", str(tmp_path)]) == 0
    book = tmp_path / "costloop-demo.xlsx"
    (tmp_path / "~$costloop-demo.xlsx").write_bytes(b"\x05Alice")
    before = digest(book)
    capsys.readouterr()
    assert main(["demo", str(tmp_path), "--force"]) == 1
    assert "is open in Excel" in capsys.readouterr().err
    assert digest(book) == before


# --- the period and scenarios ---------------------------------------------------------------


@pytest.mark.parametrize("period", ["2025-13", "2025-00", "March", "2026/03", ""])
def test_a_malformed_period_is_a_usage_error_writing_nothing(demo: Path, capsys, period: str):
    before = folder(demo)
    assert main(["run", str(demo), "--period", period]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"costloop run: --period {period}: give a month as YYYY-MM, e.g. 2026-03; "
        "nothing was written\n"
    )
    assert captured.out == ""
    assert folder(demo) == before


def test_a_period_without_its_leading_zero_is_read_as_in_cells(demo: Path):
    assert main(["run", str(demo), "--period", "2026-2"]) == 0
    log = dict(row[:2] for row in FileWorkbook(demo).read_sheet("Run Log")[1:])
    assert log["Period"] == "2026-02"


def test_a_failed_scenario_run_does_not_claim_it_wrote_sheets(demo: Path, capsys):
    before = folder(demo)
    assert main(["run", str(demo), "--scenario", "Nope"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        '--scenario: no sheet "Budget@Nope" or "Rates@Nope" for scenario "Nope"; add a copy '
        "of Budget or Rates named that way and change its numbers",
        "FAILED: 1 error(s), 0 warning(s); nothing was written",
    ]
    assert folder(demo) == before


def add_scenario(path: Path, sheet: str, amount: object = None) -> None:
    wb = openpyxl.load_workbook(path)
    copy = wb.copy_worksheet(wb["Budget"])
    copy.title = sheet
    if amount is not None:
        copy["C2"] = amount
    wb.save(path)


def test_outputs_follow_the_spelling_of_the_scenario_sheet(demo: Path, capsys):
    add_scenario(demo, "Budget@cloud10")
    assert main(["run", str(demo), "--scenario", "CLOUD10"]) == 0
    out = capsys.readouterr().out
    names = FileWorkbook(demo).sheet_names()
    assert "Bills@cloud10" in names and "Run Log@cloud10" in names
    assert not [n for n in names if n.endswith("@CLOUD10")]
    assert "Wrote Bills@cloud10, Journal@cloud10, Recovery@cloud10" in out
    # A rerun replaces the same sheets and does not take them for scenario inputs.
    assert main(["run", str(demo), "--scenario", "Cloud10"]) == 0
    assert "is not read" not in capsys.readouterr().out
    assert sum(n.casefold() == "bills@cloud10" for n in FileWorkbook(demo).sheet_names()) == 1


def test_a_failed_scenario_run_names_the_sheets_it_did_write(demo: Path, capsys):
    add_scenario(demo, "Budget@cloud10", amount="oops")
    assert main(["run", str(demo), "--scenario", "CLOUD10"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        'Budget@cloud10!C2: Amount must be a number, got "oops"',
        "FAILED: 1 error(s), 0 warning(s); see the Rule Check@cloud10 and Run Log@cloud10 sheets",
    ]
    names = FileWorkbook(demo).sheet_names()
    assert {"Rule Check@cloud10", "Run Log@cloud10"} <= set(names)
    assert "Bills@cloud10" not in names


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_read_only_folder_is_a_clear_message(demo: Path, tmp_path: Path, capsys):
    """Writing --output into a folder costloop may not write: one sentence, no traceback."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        assert main(["run", str(demo), "--output", str(locked / "out.xlsx")]) == 1
        assert "nothing was changed" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)
