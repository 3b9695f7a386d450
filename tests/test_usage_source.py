"""Settings UsageSource: usage from CSV, Parquet and FinOps FOCUS files, summed by DuckDB.

The demo workbook with its Usage rows moved into a file must bill exactly what
it bills with them in the sheet; bad rows get the Usage sheet's messages at the
file's cells; FOCUS columns map onto Usage's as docs/scale.md says.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest

from costloop.engine.pipeline.commands import run_book
from costloop.engine.pipeline.run import prepare
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path


def _book_with_source(folder: Path, source: str, extra: dict[str, str] | None = None):
    """The demo with its Usage rows taken out (kept as returned rows) and UsageSource set."""
    folder.mkdir(parents=True, exist_ok=True)
    book = folder / "book.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    usage = wb["Usage"]
    rows = [[c.value for c in r] for r in usage.iter_rows()]
    usage.delete_rows(2, usage.max_row)
    wb["Settings"].append(["UsageSource", source])
    for key, value in (extra or {}).items():
        wb["Settings"].append([key, value])
    wb.save(book)
    return book, rows


def _write_csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _problems(book: Path) -> list[str]:
    """Problems of reading the usage (the demo's rules also object to a thin usage file)."""
    return [
        p.render()
        for p in prepare(FileWorkbook(book)).problems
        if p.where.startswith(("usage", "focus", "Settings"))
    ]


@pytest.fixture(scope="module")
def sheet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sheet") / "out.xlsx"
    return run_book(demo_path(), output=out)


@pytest.mark.parametrize("kind", ["csv", "parquet", "folder"])
def test_usage_in_a_file_bills_exactly_what_the_sheet_bills(tmp_path, sheet_run, kind):
    source = {"csv": "usage.csv", "parquet": "usage.parquet", "folder": "usage"}[kind]
    book, rows = _book_with_source(tmp_path, source)
    if kind == "folder":
        # One file per period, as an export job would write them.
        for period in sorted({r[0] for r in rows[1:]}):
            _write_csv(
                tmp_path / "usage" / f"{period}.csv",
                [rows[0]] + [r for r in rows[1:] if r[0] == period],
            )
    else:
        _write_csv(tmp_path / "usage.csv", rows)
        if kind == "parquet":
            duckdb.sql(
                f"COPY (SELECT * FROM read_csv('{tmp_path / 'usage.csv'}')) "
                f"TO '{tmp_path / 'usage.parquet'}' (FORMAT parquet)"
            )
            (tmp_path / "usage.csv").unlink()
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert outcome.result.bills.equals(sheet_run.result.bills)
    assert outcome.result.journal.equals(sheet_run.result.journal)
    assert outcome.result.recovery.equals(sheet_run.result.recovery)


def test_repeated_rows_are_summed_before_the_engine(tmp_path):
    book, rows = _book_with_source(tmp_path, "usage.csv")
    header, first = rows[0], rows[1]
    quantity = header.index("Quantity")
    copies = []
    for q in ("0.1", "0.2", "1,000.7"):  # numeric text is read as the sheet reads it
        row = list(first)
        row[quantity] = q
        copies.append(row)
    _write_csv(tmp_path / "usage.csv", [header, *copies])
    usage = prepare(FileWorkbook(book)).book.usage
    assert len(usage) == 1
    assert repr(float(usage["Quantity"].iloc[0])) == "1001.0"
    assert list(usage.loc[0, ["Period", "Department", "Metric", "Service"]]) == [
        first[0],
        first[1],
        first[2],
        first[4],
    ]


def test_bad_rows_get_the_sheets_messages_at_the_files_cells(tmp_path):
    book, rows = _book_with_source(tmp_path, "usage.csv")
    header = rows[0]
    good = rows[1]
    bad = [list(good) for _ in range(5)]
    bad[0][3] = "n/a"  # row 2
    bad[1][3] = -5  # row 3
    bad[2][1] = ""  # row 4
    bad[3][0] = "July"  # row 5
    bad[4][1] = "ENGG"  # row 6
    _write_csv(tmp_path / "usage.csv", [header, *bad, good])
    assert _problems(book) == [
        'usage.csv!A5: Period must be a month as YYYY-MM text or a date, got "July"',
        "usage.csv!B4: Department is blank; type who used it (a department or a pool)",
        'usage.csv!D2: Quantity must be a non-negative number, got "n/a"',
        "usage.csv!D3: Quantity must be a non-negative number, got -5",
        'usage.csv!B6: "ENGG" is not a department or a cost pool; did you mean "ENG"?',
    ]


def test_a_column_of_bad_cells_is_one_message_counted_in_duckdb(tmp_path):
    book, rows = _book_with_source(tmp_path, "usage.csv")
    header, good = rows[0], rows[1]
    blank = list(good)
    blank[3] = ""
    _write_csv(tmp_path / "usage.csv", [header, good] + [blank] * 5000)
    assert _problems(book) == [
        "usage.csv!D3:D5002: Quantity must be a non-negative number, got a blank cell "
        "(5,000 cells; first D3, D4, D5 …)"
    ]


def test_usage_in_both_places_is_an_error(tmp_path):
    book, rows = _book_with_source(tmp_path, "usage.csv")
    _write_csv(tmp_path / "usage.csv", rows)
    wb = openpyxl.load_workbook(book)
    wb["Usage"].append(rows[1])
    wb.save(book)
    (message,) = _problems(book)
    assert message.endswith(
        "the Usage sheet has 1 rows and UsageSource names 'usage.csv': keep usage in one "
        "place (clear the Usage rows below the header, or the setting), or it would be "
        "billed twice"
    )


def test_a_missing_source_is_named(tmp_path):
    book, _ = _book_with_source(tmp_path, "exports/none.csv")
    (message,) = _problems(book)
    assert "UsageSource 'exports/none.csv': no such file or folder" in message


def test_focus_columns_map_onto_usage(tmp_path):
    book, _ = _book_with_source(tmp_path, "focus.parquet", {"UsageDepartmentTag": "cost-center"})
    duckdb.sql(
        f"""COPY (SELECT * FROM (VALUES
            (TIMESTAMP '2026-03-01', 'acct-1', '{{"cost-center": "ENG"}}', 'vCPU-Hours', 10.5,
             2.10, 2.50, 'EC2'),
            (TIMESTAMP '2026-03-01', 'acct-1', '{{"cost-center": "ENG"}}', 'vCPU-Hours', 4.5,
             0.90, 1.00, 'EC2'),
            (TIMESTAMP '2026-03-01', 'acct-2', '{{"cost-center": "eng"}}', NULL, NULL,
             -0.50, -0.50, 'EC2'),
            (TIMESTAMP '2026-02-01', 'acct-3', '{{"cost-center": "FIN"}}', 'GB-Mo', 100,
             3.00, 3.00, 'S3')
        ) t(ChargePeriodStart, SubAccountId, Tags, ConsumedUnit, ConsumedQuantity,
            EffectiveCost, BilledCost, ServiceName))
        TO '{tmp_path / "focus.parquet"}' (FORMAT parquet)"""
    )
    assert [p for p in _problems(book) if "focus" in p] == []
    usage = prepare(FileWorkbook(book)).book.usage
    got = sorted(
        (r.Period, r.Department, r.Metric, r.Service, r.Quantity)
        for r in usage.itertuples(index=False)
    )
    assert got == [
        ("2026-02", "FIN", "EffectiveCost", "S3", 3.0),
        ("2026-02", "FIN", "GB-Mo", "S3", 100.0),
        ("2026-03", "ENG", "EffectiveCost", "EC2", 2.5),  # 2.10 + 0.90 - 0.50 credit
        ("2026-03", "ENG", "vCPU-Hours", "EC2", 15.0),
    ]


def test_focus_without_a_tag_bills_the_sub_account(tmp_path):
    book, _ = _book_with_source(tmp_path, "focus.csv")
    _write_csv(
        tmp_path / "focus.csv",
        [
            ["ChargePeriodStart", "SubAccountId", "BilledCost", "ServiceName"],
            ["2026-03-01T00:00:00Z", "ENG", "7.25", "S3"],
            ["2026-03-01T00:00:00Z", "", "1", "S3"],
        ],
    )
    assert _problems(book) == [
        "focus.csv!B3: 1 row (row 3) has a blank SubAccountId, so no department, and "
        "BilledCost 1.00 is not billed; tag who used it, or set Settings UntaggedDepartment "
        "to the department or cost pool that takes rows without one"
    ]
    row = prepare(FileWorkbook(book)).book.usage.iloc[0]
    assert (row.Period, row.Department, row.Metric, row.Quantity) == (
        "2026-03",
        "ENG",
        "BilledCost",
        7.25,
    )


def test_focus_timestamps_are_utc_whatever_the_computers_zone(tmp_path, monkeypatch):
    # West of Greenwich, midnight UTC on 1 March is still February locally.
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    book, _ = _book_with_source(tmp_path, "focus.csv")
    _write_csv(
        tmp_path / "focus.csv",
        [
            ["ChargePeriodStart", "SubAccountId", "EffectiveCost"],
            ["2026-03-01T00:00:00Z", "ENG", "2"],
            ["2026-03-01T00:00:00+00:00", "ENG", "3"],
            ["March", "ENG", "4"],
        ],
    )
    assert _problems(book) == [
        'focus.csv!A4: ChargePeriodStart must be a month as YYYY-MM text or a date, got "March"'
    ]
    usage = prepare(FileWorkbook(book)).book.usage
    assert list(zip(usage["Period"], usage["Quantity"], strict=True)) == [("2026-03", 5.0)]


def test_a_csv_saved_by_excel_in_its_own_encoding_is_named_not_a_traceback(tmp_path):
    # Excel's "CSV (Comma delimited)" is Windows-1252: an accented name is not UTF-8.
    book, rows = _book_with_source(tmp_path, "usage.csv")
    header, good = rows[0], list(rows[1])
    accented = list(good)
    accented[header.index("Service")] = "Café"
    with (tmp_path / "usage.csv").open("w", newline="", encoding="cp1252") as handle:
        csv.writer(handle).writerows([header, good, accented])
    assert _problems(book) == [
        "usage.csv: the UsageSource file cannot be read: it is not UTF-8 text at line 3; in "
        'Excel save it as "CSV UTF-8 (Comma delimited)"; fix or re-export it and run again'
    ]


def test_a_csv_whose_columns_cannot_be_told_is_named_not_a_traceback(tmp_path):
    book, rows = _book_with_source(tmp_path, "usage")
    _write_csv(tmp_path / "usage" / "a.csv", rows[:3])
    with (tmp_path / "usage" / "b.csv").open("a", newline="") as handle:
        csv.writer(handle).writerows(rows[:3])
        handle.write("a,b,c,d,e,f,g\n")
    (message,) = _problems(book)
    assert message.startswith(
        "usage/b.csv: the UsageSource file cannot be read: its rows could not be split into "
        "columns the same way throughout"
    )


def test_excels_lock_file_in_a_usage_folder_is_not_read(tmp_path):
    # Excel keeps "~$usage.csv" beside a CSV it has open; it is not usage.
    book, rows = _book_with_source(tmp_path, "usage")
    _write_csv(tmp_path / "usage" / "usage.csv", rows)
    (tmp_path / "usage" / "~$usage.csv").write_bytes(b"\x08finance\x00\x00,,\x00\x00\n1,2\n")
    (tmp_path / "usage" / ".~lock.usage.csv#").write_text("finance,host,,\n")
    assert _problems(book) == []
    with_locks = prepare(FileWorkbook(book)).book.usage
    for lock in ("~$usage.csv", ".~lock.usage.csv#"):
        (tmp_path / "usage" / lock).unlink()
    assert with_locks.equals(prepare(FileWorkbook(book)).book.usage)


def test_a_bad_cell_is_named_by_its_own_files_column_order(tmp_path):
    # Exports of different months need not order their columns alike.
    book, rows = _book_with_source(tmp_path, "usage")
    _write_csv(tmp_path / "usage" / "a.csv", rows[:3])
    order = [3, 0, 1, 2, 4]  # Quantity first
    bad = list(rows[1])
    bad[3] = "n/a"
    _write_csv(
        tmp_path / "usage" / "b.csv", [[r[i] for i in order] for r in (rows[0], rows[1], bad)]
    )
    assert _problems(book) == ['usage/b.csv!A3: Quantity must be a non-negative number, got "n/a"']


def test_a_bad_value_past_the_rows_duckdb_guesses_types_from_is_named_at_its_cell(tmp_path):
    # DuckDB guesses a CSV column's type from its first 20,480 rows: numbers and dates
    # there, a word far below. The word is still a located message, not a failed read.
    book, rows = _book_with_source(tmp_path, "usage.csv")
    header, good = rows[0], list(rows[1])
    good[0] = f"{good[0]}-01"  # a date, as an export writes one
    good[3] = 5
    late_quantity, late_period = list(good), list(good)
    late_quantity[3] = "n/a"
    late_period[0] = "July"
    _write_csv(tmp_path / "usage.csv", [header] + [good] * 30_000 + [late_quantity, late_period])
    assert _problems(book) == [
        'usage.csv!A30003: Period must be a month as YYYY-MM text or a date, got "July"',
        'usage.csv!D30002: Quantity must be a non-negative number, got "n/a"',
    ]
    (period,) = set(prepare(FileWorkbook(book)).book.usage["Period"])
    assert period == rows[1][0]


def test_focus_tags_as_a_parquet_map_give_the_department(tmp_path):
    # FOCUS Parquet exports often store Tags as a map rather than JSON text.
    book, _ = _book_with_source(tmp_path, "focus.parquet", {"UsageDepartmentTag": "cost-center"})
    duckdb.sql(
        f"""COPY (SELECT * FROM (VALUES
            (TIMESTAMP '2026-03-01', MAP {{'cost-center': 'ENG', 'team': 'web'}}, 2.5),
            (TIMESTAMP '2026-03-01', MAP {{'cost-center': 'eng'}}, 1.5),
            (TIMESTAMP '2026-03-01', MAP {{'team': 'web'}}, 9.0)
        ) t(ChargePeriodStart, Tags, EffectiveCost))
        TO '{tmp_path / "focus.parquet"}' (FORMAT parquet)"""
    )
    assert _problems(book) == [
        'focus.parquet!B4: 1 row (row 4) has no "cost-center" tag in Tags (or it is blank, or '
        "Tags is not JSON), so no department, and EffectiveCost 9.00 is not billed; tag who "
        "used it, or set Settings UntaggedDepartment to the department or cost pool that "
        "takes rows without one"
    ]
    usage = prepare(FileWorkbook(book)).book.usage
    assert list(zip(usage["Department"], usage["Quantity"], strict=True)) == [("ENG", 4.0)]


def test_focus_tags_that_are_not_json_are_named_at_their_cell(tmp_path):
    book, _ = _book_with_source(tmp_path, "focus.csv", {"UsageDepartmentTag": "cost-center"})
    _write_csv(
        tmp_path / "focus.csv",
        [
            ["ChargePeriodStart", "Tags", "EffectiveCost"],
            ["2026-03-01T00:00:00Z", '{"cost-center": "ENG"}', "2"],
            ["2026-03-01T00:00:00Z", "cost-center=ENG", "3"],
        ],
    )
    assert _problems(book) == [
        'focus.csv!B3: 1 row (row 3) has no "cost-center" tag in Tags (or it is blank, or '
        "Tags is not JSON), so no department, and EffectiveCost 3.00 is not billed; tag who "
        "used it, or set Settings UntaggedDepartment to the department or cost pool that "
        "takes rows without one"
    ]


def test_a_where_on_a_usage_header_the_files_do_not_keep_fails_check_as_it_fails_run(tmp_path):
    # Only Usage's own columns are kept from the files: a "Project" header left on the Usage
    # sheet is no column a WHERE can use, and `check` must say so before `run` does.
    book, rows = _book_with_source(tmp_path, "usage.csv")
    wb = openpyxl.load_workbook(book)
    wb["Usage"].cell(1, len(rows[0]) + 1, "Project")
    for row in wb["Rules"].iter_rows(min_row=2):
        if str(row[1].value).startswith('CHARGE "Virtual Servers"'):
            row[1].value += ' WHERE Project = "X"'
    wb.save(book)
    _write_csv(tmp_path / "usage.csv", [[*rows[0], "Project"]] + [[*r, "X"] for r in rows[1:]])
    errors = [
        p.render() for p in prepare(FileWorkbook(book)).problems if p.severity.name == "ERROR"
    ]
    assert [e.splitlines()[0] for e in errors] == [
        'Rules!B11, character 60: unknown column "Project" in WHERE — did you mean Parent?'
    ]
