"""PDFs of the bills' Summary sheets, through LibreOffice headless.

LibreOffice takes about three seconds to start and a fraction of a second per
document after that, so every department's Summary is converted in one start
(or, past a few hundred bills, in as few starts as Windows' 32,767-character
command line allows).
It runs with a private, throw-away profile (a user's open LibreOffice, or a
second costloop, then cannot lock it or be disturbed by it) in its own process
group, so a hung conversion is ended whole when the timeout passes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from costloop.problems import Problem, Reason, Severity

PDF_TYPE = "application/pdf"
DEFAULT_TIMEOUT = 300.0
"""Seconds for one start of LibreOffice (its start plus every document given to it)."""
MAX_COMMAND = 30_000
"""Characters of one LibreOffice command line: Windows refuses more than 32,767."""


@dataclass
class PdfBatch:
    """What one LibreOffice run produced."""

    pdfs: dict[Path, Path] = field(default_factory=dict)
    """Source workbook -> its PDF (only those that were made)."""
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    process_group: int | None = None
    """The last LibreOffice's process group (ended whole on a timeout)."""
    starts: int = 0
    """How many times LibreOffice was started (more than once only for hundreds of bills)."""


def find_soffice() -> str | None:
    """LibreOffice's command, or None when it is not installed."""
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _problem(where: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(Reason.NO_DATA, severity, where, message)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _batches(sources: list[Path], room: int) -> list[list[Path]]:
    """``sources`` in order, split so that no batch's paths take more than ``room`` characters."""
    batches: list[list[Path]] = [[]]
    used = 0
    for source in sources:
        size = len(str(source)) + 3  # quotes and a space on Windows
        if batches[-1] and used + size > room:
            batches.append([])
            used = 0
        batches[-1].append(source)
        used += size
    return batches


def convert_to_pdf(
    sources: list[Path],
    outdir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    max_command: int = MAX_COMMAND,
    soffice: str | Path | None = None,
) -> PdfBatch:
    """Convert every workbook in ``sources`` to ``outdir/<stem>.pdf``, in as few starts of
    LibreOffice as the command line allows (one, up to a few hundred bills)."""
    batch = PdfBatch()
    if not sources:
        return batch
    soffice = soffice or find_soffice()
    if soffice is None:
        batch.problems.append(
            _problem(
                "LibreOffice",
                "LibreOffice is not installed, so the bills have no PDF; install it "
                "(e.g. apt-get install libreoffice-calc-nogui) and make the bills again",
            )
        )
        return batch
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="costloop-lo-") as profile:
        command = [
            str(soffice),
            f"-env:UserInstallation={Path(profile).as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--nodefault",
            "--convert-to",
            "pdf",
            "--outdir",
            str(outdir),
        ]
        room = max_command - sum(len(part) + 3 for part in command)
        for sources_now in _batches(sources, room):
            if not _convert(command, sources_now, outdir, timeout, batch):
                break  # stopped or not startable: the next start would fare no better
    batch.seconds = time.perf_counter() - started
    return batch


def _convert(
    command: list[str], sources: list[Path], outdir: Path, timeout: float, batch: PdfBatch
) -> bool:
    """One LibreOffice start for ``sources``; False when it could not start or was stopped."""
    try:
        process = subprocess.Popen(
            [*command, *(str(s) for s in sources)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout ends all of it
        )
    except OSError as exc:
        batch.problems.append(
            _problem(
                "LibreOffice",
                f"LibreOffice ({command[0]}) could not be started ({exc.strerror or exc}), "
                "so the bills have no PDF; reinstall it and make the bills again",
            )
        )
        return False
    batch.starts += 1
    batch.process_group = process.pid
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        batch.problems.append(
            _problem(
                "LibreOffice",
                f"LibreOffice did not finish converting {len(sources)} bill(s) to PDF "
                f"within {timeout:.0f} s and was stopped; the workbooks were made, "
                "the PDFs were not",
            )
        )
        return False
    except BaseException:
        # Ctrl-C reaches only the terminal's process group, not this one: end it here,
        # or it would run on with its profile folder removed under it.
        _kill_group(process)
        raise
    for source in sources:
        pdf = outdir / (source.stem + ".pdf")
        if pdf.exists() and pdf.stat().st_size > 0:
            batch.pdfs[source] = pdf
        else:
            detail = stderr.decode("utf-8", "replace").strip().splitlines()
            why = f" ({detail[-1]})" if detail else ""
            batch.problems.append(
                _problem(source.name, f"LibreOffice made no PDF of {source.name}{why}")
            )
    return True
