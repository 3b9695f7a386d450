"""The real programs some tests drive, found once.

Where they are not installed those tests are skipped, so the README's test
command still passes on a bare machine; under CI (``CI`` set, as `.ci/run`
does) a missing program is an error instead, so a broken install step can
never turn into a green run of skipped tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOTEXT = shutil.which("pdftotext")


def needs(**programs: str | None) -> pytest.MarkDecorator:
    """Skip unless every named program was found: ``needs(LibreOffice=SOFFICE)``."""
    missing = [name for name, path in programs.items() if path is None]
    if missing and os.environ.get("CI"):
        raise RuntimeError(f"CI must install {' and '.join(missing)} (see .ci/run)")
    return pytest.mark.skipif(bool(missing), reason=f"{' and '.join(missing)} not installed")


needs_libreoffice = needs(LibreOffice=SOFFICE)
