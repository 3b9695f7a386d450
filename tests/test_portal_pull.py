"""`costloop disputes pull`: the portal's disputes into the Disputes sheet, and back.

End to end on a copy of the closed demo, with the real application (TestClient), the
real commands and the real file write: March is billed and closed; ENG disputes two
lines in the portal; the pull types them into Disputes (exact cells, nothing else of
the file changed); a second pull adds nothing; finance accepts one and rejects the
other, adds April's usage and runs April; the credit memo is on April's bill and the
portal, once it has reloaded the workbook, shows finance's answers.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import postgres_cluster
import pytest
from closed_books import PERIOD, make_closed_book
from fastapi.testclient import TestClient
from portal_fixtures import add_user, csrf_of

from costloop.cli import main
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.portal.app import PortalConfig, create_app
from costloop.portal.snapshot import Bills, load_snapshot
from costloop.portal.store import Dispute, Store, default_url, now
from costloop.workbooks import demo_path

APRIL = "2026-04"
PASSWORD = "eng-password-1"
NOTE_1 = "vCPU hours counted twice (raised in the portal by eng, line {line}, rule {rule})"


def sign_in(app, user: str, password: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": user, "password": password, "csrf_token": token}
    )
    assert answer.status_code == 303
    return client


def sheet(book: Path, name: str) -> list[list]:
    return FileWorkbook(book).read_sheet(name)


def parts_of(book: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(book) as z:
        return {n: z.read(n) for n in z.namelist()}


def sheet_part(book: Path, name: str) -> str:
    from costloop.engine.xlsx import parts

    package = parts.Package.read(book.read_bytes())
    return parts.WorkbookPart(package).sheet(name).part


def add_april_usage(book: Path) -> None:
    """Finance's next month: March's meter readings again, as April's."""
    wb = openpyxl.load_workbook(book)
    usage = wb["Usage"]
    march = [[c.value for c in row] for row in usage.iter_rows(min_row=2) if row[0].value == PERIOD]
    for row in march:
        usage.append([APRIL, *row[1:]])
    wb.save(book)


def answer(book: Path, rows: dict[str, tuple[str, object, str]]) -> None:
    """Finance types Status, Resolution and Note on the Disputes sheet."""
    wb = openpyxl.load_workbook(book)
    ws = wb["Disputes"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        found = rows.get(row[0].value)
        if found:
            status, resolution, note = found
            row[header.index("Status")].value = status
            row[header.index("Resolution")].value = resolution
            row[header.index("Note")].value = note
    wb.save(book)


@pytest.fixture
def closed(tmp_path) -> Path:
    book = make_closed_book(tmp_path)
    assert main(["close", str(book), "--period", PERIOD]) == 0  # March is issued
    assert add_user(book, "eng", "--department", "ENG", password=PASSWORD) == 0
    assert add_user(book, "fin", "--finance", password="fin-password-1") == 0
    return book


def eng_lines(book: Path, period: str) -> list[dict]:
    grid = sheet(book, "Bills")
    rows = [dict(zip(grid[0], r, strict=True)) for r in grid[1:]]
    return [r for r in rows if r["Department"] == "ENG" and r["Period"] == period]


def test_a_portal_dispute_goes_to_the_sheet_and_its_answer_comes_back(closed, capsys):
    book = closed
    store = Store(default_url(book))
    bills = Bills(book, check_every=0, reloader=load_snapshot)
    app = create_app(PortalConfig(book=book, check_every=0), store, bills)
    eng = sign_in(app, "eng", PASSWORD)

    # --- ENG disputes two lines of its March bill in the portal ----------------------
    lines = eng_lines(book, PERIOD)
    cloud = next(
        n for n, r in enumerate(lines, 1) if r["Pool"] == "Cloud" and r["Line Type"] == "Charge"
    )
    storage = next(n for n, r in enumerate(lines, 1) if r["Pool"] == "Storage")
    page = eng.get(f"/d/ENG/{PERIOD}/lines/{cloud}").text
    token = csrf_of(page)
    for line, reason, amount, comment in (
        (cloud, "Rate", "50.00", "vCPU hours counted twice"),
        (storage, "Volume", "10.00", "we deleted a volume"),
    ):
        raised = eng.post(
            f"/d/ENG/{PERIOD}/disputes",
            data={
                "line": line,
                "reason": reason,
                "amount": amount,
                "comment": comment,
                "csrf_token": token,
            },
        )
        assert raised.status_code == 303
    rule = lines[cloud - 1]["Rule"]

    # --- finance pulls them into the workbook -----------------------------------------
    before = parts_of(book)
    others = {n: sheet(book, n) for n in FileWorkbook(book).sheet_names() if n != "Disputes"}
    capsys.readouterr()
    assert main(["disputes", "pull", str(book)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Pulled 2 dispute(s) from the portal into Disputes:",
        "  PORTAL-1  ENG  2026-03  Cloud  Rate  50.00  -> Disputes!A4",
        "  PORTAL-2  ENG  2026-03  Storage  Volume  10.00  -> Disputes!A5",
        "Answer each on the sheet (Status Accepted with a Resolution, or Rejected with a "
        "Note), then run `costloop run closed.xlsx`: the portal shows the answers after the run",
    ]
    today = now().date()
    grid = sheet(book, "Disputes")
    assert grid[0] == [
        "Dispute",
        "Department",
        "Period",
        "Pool",
        "Reason",
        "Amount",
        "Status",
        "Resolution",
        "Note",
        "Raised",
    ]
    assert grid[1][0] == "D-2026-017" and grid[2][0] == "D-2026-018"  # finance's own, kept
    assert grid[3:] == [
        [
            "PORTAL-1",
            "ENG",
            "2026-03",
            "Cloud",
            "Rate",
            50,
            "Open",
            None,
            NOTE_1.format(line=cloud, rule=rule),
            today,
        ],
        [
            "PORTAL-2",
            "ENG",
            "2026-03",
            "Storage",
            "Volume",
            10,
            "Open",
            None,
            f"we deleted a volume (raised in the portal by eng, line {storage}, "
            f"rule {lines[storage - 1]['Rule']})",
            today,
        ],
    ]
    # Only the Disputes sheet changed (styles.xml gained the Raised column's date format).
    after = parts_of(book)
    changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    assert changed == {sheet_part(book, "Disputes"), "xl/styles.xml"}
    assert {n: sheet(book, n) for n in others} == others
    typed = openpyxl.load_workbook(book)["Disputes"]
    assert typed["J4"].number_format == "yyyy-mm-dd"
    assert typed["F4"].style_id == typed["F3"].style_id  # the row above's format carried down

    # --- a second pull adds nothing, and leaves the file byte for byte ---------------
    pulled = book.read_bytes()
    assert main(["disputes", "pull", str(book)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Nothing to pull: the portal's 2 dispute(s) are all on the Disputes sheet already"
    ]
    assert book.read_bytes() == pulled

    # The Disputes sheet is not an input of March's bills: the portal reloads at once and
    # shows both disputes as with finance.
    bills.get()
    bills.wait()
    assert bills.problems == ()
    bill = eng.get(f"/d/ENG/{PERIOD}").text
    for n in (1, 2):
        assert (
            f'<td class="dispute-status"><strong>Open</strong>: with finance (Disputes sheet, '
            f"PORTAL-{n})</td>"
        ) in bill
    home = eng.get("/").text
    march = re.search(
        r'<a href="/d/ENG/2026-03">Mar 2026</a></td>\s*<td class="state">(.*?)</td>', home
    )
    assert march.group(1) == (
        '<span class="state-issued">issued</span>, <span class="state-disputed">disputed</span>'
    )

    # --- finance answers, bills April, and the credit memo is on April's bill ----------
    answer(
        book,
        {
            "PORTAL-1": ("Accepted", 40, "agreed: 40.00 of the Cloud line"),
            "PORTAL-2": ("Rejected", None, "the volume was in use all month"),
        },
    )
    add_april_usage(book)
    assert main(["run", str(book), "--period", APRIL]) == 0
    out = capsys.readouterr().out
    assert "Credit memos: 1 (PORTAL-1), -40.00" in out
    credit = [r for r in eng_lines(book, APRIL) if r["Line Type"] == "Credit memo"]
    assert [(r["Pool"], r["Rule"], r["Charge Period"], r["Amount"]) for r in credit] == [
        ("Cloud", "PORTAL-1", PERIOD, -40)
    ]

    # --- the portal reloads the workbook and shows finance's answers ------------------
    bills.get()
    bills.wait()
    assert bills.current.stamp.period == APRIL
    bill = eng.get(f"/d/ENG/{APRIL}").text
    assert (
        '<td class="dispute-status"><strong>Accepted</strong>: USD 40.00 credited: credit memo '
        "USD -40.00 on the Apr 2026 bill<br>"
        '<span class="note">Finance: agreed: 40.00 of the Cloud line</span></td>'
    ) in bill
    assert (
        '<td class="dispute-status"><strong>Rejected</strong><br>'
        '<span class="note">Finance: the volume was in use all month</span></td>'
    ) in bill
    assert "PORTAL-1" in bill  # the credit memo line itself, its Rule the dispute id
    home = eng.get("/").text
    march = re.search(
        r'<a href="/d/ENG/2026-03">Mar 2026</a></td>\s*<td class="state">(.*?)</td>', home
    )
    assert march.group(1) == '<span class="state-issued">issued</span>'  # both answered
    finance = sign_in(app, "fin", "fin-password-1").get("/finance/disputes").text
    assert finance.count("<strong>Accepted</strong>: USD 40.00 credited") == 1
    assert finance.count("<strong>Rejected</strong>") == 1
    audit = [
        (r.user_name, r.action, r.detail)
        for r in store.audit_rows()
        if r.action == "dispute pulled"
    ]
    assert audit == [
        ("costloop disputes pull", "dispute pulled", "dispute 1 -> Disputes!A4"),
        ("costloop disputes pull", "dispute pulled", "dispute 2 -> Disputes!A5"),
    ]
    store.close()


def _raise(book: Path, department: str = "ENG", period: str = PERIOD) -> int:
    store = Store(default_url(book))
    try:
        return store.raise_dispute(
            Dispute(
                now(),
                "eng",
                department.casefold(),
                department,
                period,
                "run",
                1,
                "Cloud",
                "R13",
                "Rate",
                Decimal("5.00"),
                "too much",
            )
        )
    finally:
        store.close()


def test_an_id_on_the_sheet_for_another_dispute_is_an_error_and_nothing_changes(tmp_path, capsys):
    book = make_closed_book(tmp_path)
    wb = openpyxl.load_workbook(book)
    wb["Disputes"]["A3"] = "PORTAL-1"  # finance typed an id that looks like the portal's
    wb.save(book)
    _raise(book)
    before = book.read_bytes()
    capsys.readouterr()
    assert main(["disputes", "pull", str(book)]) == 1
    captured = capsys.readouterr()
    assert (
        "Disputes!A3: the Dispute id PORTAL-1 is already used here for another dispute "
        "(not ENG's of 2026-03), so that dispute was not added; give this row another id "
        "and add the disputes again"
    ) in captured.err + captured.out
    assert captured.out.splitlines()[-1] == (
        "FAILED: no dispute was added to closed.xlsx; nothing was changed"
    )
    assert book.read_bytes() == before


def test_a_workbook_open_in_excel_is_refused_byte_identical(tmp_path, capsys):
    book = make_closed_book(tmp_path)
    _raise(book)
    lock = tmp_path / "~$closed.xlsx"
    lock.write_text("someone")
    before = book.read_bytes()
    assert main(["disputes", "pull", str(book)]) == 1
    assert "open in" in capsys.readouterr().err
    assert book.read_bytes() == before


def test_no_portal_database_is_an_error_naming_db(tmp_path, capsys):
    book = make_closed_book(tmp_path)
    assert main(["disputes", "pull", str(book)]) == 1
    out = capsys.readouterr().out
    assert f"there is no portal database at {tmp_path / 'closed.xlsx.portal.sqlite'}" in out
    assert not (tmp_path / "closed.xlsx.portal.sqlite").exists()  # not made by asking


def test_a_workbook_without_a_disputes_sheet_gets_one(tmp_path, capsys):
    import shutil

    book = tmp_path / "plain.xlsx"
    shutil.copyfile(demo_path(), book)
    assert "Disputes" not in FileWorkbook(book).sheet_names()  # the plain demo has none
    assert main(["run", str(book)]) == 0
    _raise(book)
    capsys.readouterr()
    assert main(["disputes", "pull", str(book)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Pulled 1 dispute(s) from the portal into Disputes (a new Disputes sheet):"
    workbook = FileWorkbook(book)
    assert workbook.sheet_names()[-1] == "Disputes"
    assert "Disputes" not in workbook.owned_sheets()  # finance's to edit, not costloop's
    assert workbook.read_sheet("Disputes") == [
        [
            "Dispute",
            "Department",
            "Period",
            "Pool",
            "Reason",
            "Amount",
            "Status",
            "Resolution",
            "Note",
            "Raised",
        ],
        [
            "PORTAL-1",
            "ENG",
            "2026-03",
            "Cloud",
            "Rate",
            5,
            "Open",
            None,
            "too much (raised in the portal by eng, line 1, rule R13)",
            now().date(),
        ],
    ]
    assert main(["check", str(book)]) == 0  # the engine reads the new sheet as it is
    assert isinstance(workbook.read_sheet("Disputes")[1][9], dt.date)


def test_nothing_raised_in_the_portal_is_nothing_to_pull(tmp_path, capsys):
    book = make_closed_book(tmp_path)
    assert add_user(book, "eng", "--department", "ENG", password=PASSWORD) == 0  # the database
    before = book.read_bytes()
    capsys.readouterr()
    assert main(["disputes", "pull", str(book)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Nothing to pull: no dispute has been raised in the portal"
    ]
    assert book.read_bytes() == before


@pytest.fixture(scope="module")
def postgres():
    if not postgres_cluster.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is missing; .ci/run installs postgresql")
        pytest.skip("needs Debian's postgresql (initdb, pg_ctl)")
    with postgres_cluster.cluster() as base:
        yield base


def test_a_pull_from_a_postgresql_portal_database(tmp_path, postgres, capsys):
    """The same pull, the portal's database on a real PostgreSQL (--db, as for serve)."""
    book = make_closed_book(tmp_path)
    url = postgres_cluster.new_database(postgres)
    store = Store(url)
    number = store.raise_dispute(
        Dispute(
            now(),
            "eng",
            "eng",
            "ENG",
            PERIOD,
            "run",
            1,
            "Cloud",
            "R13",
            "Rate",
            Decimal("5.00"),
            "too much",
        )
    )
    store.close()
    capsys.readouterr()
    assert main(["disputes", "pull", str(book), "--db", url]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "Pulled 1 dispute(s) from the portal into Disputes:",
        f"  PORTAL-{number}  ENG  2026-03  Cloud  Rate  5.00  -> Disputes!A4",
    ]
    assert sheet(book, "Disputes")[3][:7] == [
        f"PORTAL-{number}",
        "ENG",
        "2026-03",
        "Cloud",
        "Rate",
        5,
        "Open",
    ]
    assert main(["disputes", "pull", str(book), "--db", url]) == 0
    assert len(sheet(book, "Disputes")) == 4
