"""The command line end to end on real files: exit codes, messages, what gets written."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path

INPUTS = ["Settings", "Departments", "Budget", "Actuals", "Usage", "Rates", "Rules"]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def sheet_parts(path: Path) -> dict[str, bytes]:
    """Sheet name -> bytes of its worksheet XML part."""
    wb = openpyxl.load_workbook(path, read_only=True)
    names = wb.sheetnames
    wb.close()
    with zipfile.ZipFile(path) as z:
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        workbook = z.read("xl/workbook.xml").decode()
        import re

        targets = dict(re.findall(r'Id="(rId\d+)"[^>]*Target="([^"]+)"', rels))
        targets |= {k: v for v, k in re.findall(r'Target="([^"]+)"[^>]*Id="(rId\d+)"', rels)}
        out = {}
        for name, rid in re.findall(r'<sheet [^>]*name="([^"]+)"[^>]*r:id="(rId\d+)"', workbook):
            target = targets[rid].lstrip("/")
            part = target if target.startswith("xl/") else "xl/" + target
            out[name.replace("&amp;", "&")] = z.read(part)
    assert set(out) == set(names)
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def break_rules(path: Path, edits: dict[str, str]) -> None:
    """Replace rule texts (by ID) using openpyxl: a test input, not the engine's writer."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Rules"]
    for row in ws.iter_rows(min_row=2):
        if row[0].value in edits:
            row[1].value = edits[row[0].value]
    wb.save(path)


def test_demo_command_runs_clean(tmp_path: Path, capsys):
    assert main(["demo", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "All tie-outs passed" in out
    assert "Demo workbook:" in out
    book = tmp_path / "d" / "costloop-demo.xlsx"
    names = FileWorkbook(book).sheet_names()
    for sheet in OUTPUT_SHEETS:
        assert sheet in names


def test_run_changes_only_owned_sheets(demo: Path, capsys):
    before = sheet_parts(demo)
    assert main(["run", str(demo)]) == 0
    after = sheet_parts(demo)
    for sheet, xml in before.items():
        assert after[sheet] == xml, f"{sheet} changed"
    assert set(after) - set(before) == set(OUTPUT_SHEETS)
    assert FileWorkbook(demo).owned_sheets() == set(OUTPUT_SHEETS)


def test_rerun_gives_identical_outputs_apart_from_run_id_and_time(demo: Path):
    assert main(["run", str(demo)]) == 0
    first = sheet_parts(demo)
    assert main(["run", str(demo)]) == 0
    second = sheet_parts(demo)
    assert set(first) == set(second)
    for sheet in OUTPUT_SHEETS:
        if sheet != "Run Log":
            assert first[sheet] == second[sheet], sheet
    log1 = dict(row[:2] for row in FileWorkbook(demo).read_sheet("Run Log")[1:])
    assert "Run ID" in log1 and "Input Fingerprint" in log1


def test_run_log_records_every_tieout(demo: Path):
    assert main(["run", str(demo)]) == 0
    log = {row[0]: row[1] for row in FileWorkbook(demo).read_sheet("Run Log")[1:]}
    tieouts = {k: v for k, v in log.items() if k.startswith("Tie-out")}
    assert len(tieouts) >= 4
    assert all(str(v).startswith("PASS") for v in tieouts.values())
    assert log["Status"] == "OK"
    assert log["Period"] == "2026-03"


def test_check_clean_exits_0_and_writes_rule_check(demo: Path, capsys):
    assert main(["check", str(demo)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    wb = FileWorkbook(demo)
    assert "Rule Check" in wb.sheet_names()
    assert "Bills" not in wb.sheet_names()


def test_check_reports_every_broken_rule_with_its_cell(demo: Path, capsys):
    break_rules(
        demo,
        {
            "R01": 'ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 20% "Network"',
            "R04": 'ALLOCATE "Data Center" TO DEPARTMENTS BY usgae "Server Hours"',
            "R06": 'ALLOCATE "Service Desk" TO DEPARTMENTS BY USAGE "Servce Tickets"',
        },
    )
    assert main(["check", str(demo)]) == 1
    out = capsys.readouterr().out
    assert "Rules!B2" in out and "90%" in out
    assert "Rules!B5, character" in out and "USAGE" in out
    assert "Rules!B7" in out and 'did you mean "Service Tickets"' in out
    assert "Traceback" not in out
    rows = FileWorkbook(demo).read_sheet("Rule Check")
    errors = {r[1] for r in rows[1:] if r[2] == "ERROR"}
    assert {"Rules!B2", "Rules!B5", "Rules!B7"} <= errors


def test_failed_run_writes_only_rule_check_and_run_log(demo: Path, capsys):
    assert main(["run", str(demo)]) == 0  # a previous good run's outputs
    break_rules(demo, {"R04": 'ALLOCATE "Data Center" TO DEPARTMENTS BY usgae "Server Hours"'})
    broken = sheet_parts(demo)
    assert main(["run", str(demo)]) == 1
    after = sheet_parts(demo)
    changed = {s for s in after if after[s] != broken[s]}
    assert changed == {"Rule Check", "Run Log"}
    assert len(FileWorkbook(demo).read_sheet("Bills")) > 1  # the previous bills are still there
    log = {row[0]: row[1] for row in FileWorkbook(demo).read_sheet("Run Log")[1:]}
    assert log["Status"] == "FAILED"
    assert "Rules!B5" in log["Failure"]


def test_failed_run_with_output_writes_no_file(demo: Path, tmp_path: Path):
    break_rules(demo, {"R04": 'ALLOCATE "Data Center" TO DEPARTMENTS BY usgae "Server Hours"'})
    original = digest(demo)
    out = tmp_path / "out.xlsx"
    assert main(["run", str(demo), "--output", str(out)]) == 1
    assert not out.exists()
    assert digest(demo) == original


def test_run_with_output_leaves_source_untouched(demo: Path, tmp_path: Path):
    original = digest(demo)
    out = tmp_path / "out.xlsx"
    assert main(["run", str(demo), "--output", str(out), "--period", "2026-02"]) == 0
    assert digest(demo) == original
    bills = FileWorkbook(out).read_sheet("Bills")
    assert {row[0] for row in bills[1:]} == {"2026-02"}


def test_user_sheet_with_an_output_name_is_an_error_not_a_casualty(demo: Path, capsys):
    wb = openpyxl.load_workbook(demo)
    wb.create_sheet("Bills")["A1"] = "my own notes"
    wb.save(demo)
    assert main(["run", str(demo)]) == 1
    out = capsys.readouterr().out
    assert "Bills!A1" in out and "not made by costloop" in out
    assert FileWorkbook(demo).read_sheet("Bills") == [["my own notes"]]


def test_unknown_period_is_a_located_error(demo: Path, capsys):
    assert main(["run", str(demo), "--period", "2031-01"]) == 1
    assert (
        "--period: no Usage, Budget or Actuals rows for period 2031-01" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "argv",
    [["run"], ["frobnicate"], ["run", "x.xlsx", "--bogus"], ["run", "missing.xlsx"]],
)
def test_usage_errors_exit_2(argv, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(argv))
    assert exc.value.code == 2


def test_not_a_workbook_is_a_clear_message_without_traceback(tmp_path: Path):
    fake = tmp_path / "usage.xlsx"
    fake.write_text("Period,Department\n2026-01,ADM\n")
    proc = subprocess.run(
        [sys.executable, "-m", "costloop.cli", "run", str(fake)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "xlsx" in proc.stderr


def test_scenario_leaves_base_sheets_byte_identical(demo: Path):
    assert main(["run", str(demo)]) == 0
    wb = openpyxl.load_workbook(demo)
    copy = wb.copy_worksheet(wb["Rates"])
    copy.title = "Rates@High"
    headers = [c.value for c in copy[1]]
    for row in copy.iter_rows(min_row=2):
        rate = row[headers.index("Rate")]
        if isinstance(rate.value, (int, float)):
            rate.value = round(rate.value * 1.1, 4)
    wb.save(demo)
    before = sheet_parts(demo)
    assert main(["run", str(demo), "--scenario", "High"]) == 0
    after = sheet_parts(demo)
    for sheet, xml in before.items():
        assert after[sheet] == xml, f"{sheet} changed"
    assert "Bills@High" in after and "Forecast@High" in after
    base = dict(row[:2] for row in FileWorkbook(demo).read_sheet("Run Log")[1:])
    high = dict(row[:2] for row in FileWorkbook(demo).read_sheet("Run Log@High")[1:])
    assert base["Total Billed"] != high["Total Billed"]
    assert high["Scenario"] == "High"


def test_structure_protected_workbook_is_refused_unchanged(demo: Path, capsys):
    from openpyxl.workbook.protection import WorkbookProtection

    wb = openpyxl.load_workbook(demo)
    wb.security = WorkbookProtection(lockStructure=True)
    wb.save(demo)
    original = digest(demo)
    assert main(["run", str(demo)]) == 1
    err = capsys.readouterr().err
    assert "structure is protected" in err and "Review > Protect Workbook" in err
    assert "Traceback" not in err
    assert digest(demo) == original


def test_a_failed_tie_out_fails_the_run_and_writes_only_the_reports(demo: Path, monkeypatch):
    from costloop.engine.chargeback import execute

    real = execute.build_journal

    def journal_missing_a_line(*args, **kwargs):
        return real(*args, **kwargs).iloc[:-1]  # a credit goes missing: entries stop balancing

    monkeypatch.setattr(execute, "build_journal", journal_missing_a_line)
    before = sheet_parts(demo)
    assert main(["run", str(demo)]) == 1
    after = sheet_parts(demo)
    assert set(after) - set(before) == {"Rule Check", "Run Log"}
    log = {row[0]: row[1] for row in FileWorkbook(demo).read_sheet("Run Log")[1:]}
    assert log["Status"] == "FAILED" and "tie-out" in log["Failure"]
    assert log["Tie-out: Journal balances"].startswith("FAIL")
