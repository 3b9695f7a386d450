"""A real portal over a real workbook: the demo, run by the engine, with its own accounts.

One department's Name is a script tag, so every page that shows names shows that it
stays text. Accounts are made by the real `costloop portal user add` command.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import openpyxl

from costloop.cli import main
from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path

SCRIPT_NAME = '<script>alert("x")</script>'
PASSWORDS = {"ada": "ada-password-1", "cas": "cas-password-1", "fin": "fin-password-1"}
PERIOD = "2026-03"


def make_book(folder: Path) -> Path:
    book = folder / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    sheet = wb["Departments"]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "CAS":
            row[1].value = SCRIPT_NAME
    wb.save(book)
    assert run_book(book).ok
    return book


def add_user(book: Path, user: str, *options: str, password: str | None = None, db=None) -> int:
    argv = ["portal", "user", "add", str(book), user, *options]
    if db:
        argv += ["--db", db]
    old = sys.stdin
    sys.stdin = io.StringIO((password or PASSWORDS.get(user.lower(), "some-password")) + "\n")
    try:
        return main(argv)
    finally:
        sys.stdin = old


def add_users(book: Path, db: str | None = None) -> None:
    assert add_user(book, "ada", "--department", "ADM", db=db) == 0
    assert add_user(book, "cas", "--department", "CAS", db=db) == 0
    assert add_user(book, "fin", "--finance", db=db) == 0


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
