"""LibreOffice is given at most `MAX_DOCUMENTS_PER_START` documents a start.

LibreOffice 7.4 acts on its first 253 command-line arguments and ignores the rest
without a word (2,000 bills once came back with 976 PDFs, exit 0). A real program
stands in as soffice here: it writes down how many documents each start was given,
then runs the real LibreOffice with them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from programs import SOFFICE, needs_libreoffice

from costloop.engine.recalc import libreoffice
from costloop.workbooks import demo_path

pytestmark = needs_libreoffice

COUNTING = """#!{python}
import os, sys
documents = [a for a in sys.argv[1:] if a.endswith(".xlsx")]
with open({log!r}, "a") as log:
    log.write(f"{{len(documents)}}\\n")
os.execv({soffice!r}, [{soffice!r}, *sys.argv[1:]])
"""


def counting_soffice(folder: Path) -> tuple[Path, Path]:
    log = folder / "starts.log"
    script = folder / "counting-soffice"
    script.write_text(COUNTING.format(python=sys.executable, log=str(log), soffice=SOFFICE))
    script.chmod(0o755)
    return script, log


def test_the_limit_leaves_room_for_the_options():
    # recalc's start: -env, --headless, --norestore, --nolockcheck, --convert-to, the
    # filter, --outdir and the folder, then the documents: all within the 253 it reads.
    assert libreoffice.MAX_DOCUMENTS_PER_START + 8 < 253


def test_recalculation_is_split_into_starts_of_at_most_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(libreoffice, "MAX_DOCUMENTS_PER_START", 2)
    soffice, log = counting_soffice(tmp_path)
    sources = []
    for name in ("a", "b", "c"):
        copy = tmp_path / "in" / f"{name}.xlsx"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(demo_path(), copy)
        sources.append(copy)
    conversions = libreoffice.convert(
        sources, tmp_path / "out", tmp_path / "profile", soffice=str(soffice)
    )
    assert log.read_text().split() == ["2", "1"]
    assert [c.failure for c in conversions] == [None, None, None]
    assert [c.result.name for c in conversions] == ["a.xlsx", "b.xlsx", "c.xlsx"]
