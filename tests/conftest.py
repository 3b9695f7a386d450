"""Fixtures shared by several test modules (pytest finds them here by name)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path


@pytest.fixture(scope="module")
def ran_demo(tmp_path_factory) -> Path:
    """The demo workbook, run once per test module (Bills, Journal and Run Log written)."""
    book = tmp_path_factory.mktemp("ran") / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    assert run_book(book).ok
    return book


@pytest.fixture
def book(ran_demo, tmp_path) -> Path:
    """A fresh copy of the run demo (same Run Log), with no send log yet."""
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(ran_demo, copy)
    return copy
