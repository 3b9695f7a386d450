"""Where the tests find the Excel-authored workbook corpus, and a loud failure if it is not there.

The corpus is vendored in this repository (`tests/corpus/excel-authored/`, licences in
`tests/corpus/README.md`), so a plain clone runs every corpus test. A missing or empty
folder must fail the run at collection: an empty parameter list would let every
write-back test pass by running nothing.

Use it from a test module as ``from corpus import CORPUS_DIR, corpus_files``: pytest's
default (prepend) import mode puts ``tests/`` on ``sys.path``, as for ``engine_fixtures``.
This module wins over the ``tests/corpus/`` data folder of the same name because that
folder is not a package (it has no ``__init__.py``; keep it that way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).resolve().parent / "corpus" / "excel-authored"

# Fewer files than this means the folder was only partly copied; 64 are vendored.
MINIMUM_BOOKS = 60


def corpus_files() -> list[Path]:
    """Every workbook of the corpus (.xlsx and .xlsm), sorted by name; fails the run if none."""
    books = sorted(CORPUS_DIR.glob("*.xls[xm]")) if CORPUS_DIR.is_dir() else []
    if len(books) < MINIMUM_BOOKS:
        found = "is missing" if not CORPUS_DIR.is_dir() else f"holds {len(books)} workbooks"
        pytest.fail(
            f"the Excel-authored test corpus {CORPUS_DIR} {found}; expected at least "
            f"{MINIMUM_BOOKS} .xlsx/.xlsm files. It is part of the repository: restore it "
            "with `git checkout -- tests/corpus` or a fresh clone.",
            pytrace=False,
        )
    return books
