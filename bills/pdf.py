"""PDFs of the bills' Summary sheets, through LibreOffice headless.

LibreOffice takes a few seconds to start and a fraction of a second per
document after that, so the Summaries are converted many to a start — but never
more than `MAX_DOCUMENTS_PER_START` (LibreOffice silently ignores the documents
past its 253rd command-line argument, see `costloop.engine.recalc.libreoffice`),
nor more than Windows' 32,767-character command line holds.
A document that still has no PDF after its start is tried once more, with the
others left over, in a new start; what fails twice is reported by file, and the
caller makes it an error for that department.

The starts have a private, throw-away profile (a user's open LibreOffice, or a
second costloop, then cannot lock it or be disturbed by it), shared while each
start ends on its own (a fresh profile costs a second or two a start) and made
anew after one was stopped (a killed LibreOffice leaves its profile locked), and
each start has its own process group, so a hung conversion is ended whole when
the timeout passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from costloop.engine.recalc.libreoffice import (
    MAX_DOCUMENTS_PER_START,
    LibreOfficeMissing,
)
from costloop.engine.recalc.libreoffice import find_soffice as find_libreoffice
from costloop.problems import Problem, Reason, Severity

PDF_TYPE = "application/pdf"
DEFAULT_TIMEOUT = 300.0
"""Seconds for one start of LibreOffice (its start plus every document given to it)."""
MAX_COMMAND = 30_000
"""Characters of one LibreOffice command line: Windows refuses more than 32,767."""


@dataclass
class PdfBatch:
    """What the LibreOffice starts for a set of workbooks produced."""

    pdfs: dict[Path, Path] = field(default_factory=dict)
    """Source workbook -> its PDF (only those that were made)."""
    failed: dict[Path, str] = field(default_factory=dict)
    """Source workbook -> why it has no PDF, after its retry (in words for the user)."""
    problems: list[Problem] = field(default_factory=list)
    """What went wrong with LibreOffice itself (not installed, not startable, stopped)."""
    seconds: float = 0.0
    process_group: int | None = None
    """The last LibreOffice's process group (ended whole on a timeout)."""
    starts: int = 0
    """How many times LibreOffice was started."""
    retried: int = 0
    """Documents that had no PDF after their first start and were tried once more."""


def find_soffice() -> str | None:
    """LibreOffice's command (``COSTLOOP_SOFFICE``, PATH, the usual places), or None."""
    try:
        return find_libreoffice()
    except LibreOfficeMissing:
        return None


def _problem(where: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(Reason.NO_DATA, severity, where, message)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _batches(sources: list[Path], room: int, most: int) -> list[list[Path]]:
    """``sources`` in order, split so that no batch's paths take more than ``room``
    characters, nor hold more than ``most`` documents."""
    batches: list[list[Path]] = [[]]
    used = 0
    for source in sources:
        size = len(str(source)) + 3  # quotes and a space on Windows
        if batches[-1] and (used + size > room or len(batches[-1]) >= most):
            batches.append([])
            used = 0
        batches[-1].append(source)
        used += size
    return batches


@dataclass
class _Starter:
    """Starts LibreOffice for one batch at a time; a new profile after a stopped start."""

    soffice: str
    outdir: Path
    profiles: Path
    timeout: float
    max_command: int
    max_documents: int
    batch: PdfBatch
    unstartable: bool = False
    """LibreOffice could not be started at all: a retry would fail the same way."""
    profile_number: int = 1
    """The profile in use (``profiles/0001``); the next after a start is stopped."""

    def command(self, profile: Path) -> list[str]:
        return [
            self.soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--nodefault",
            "--convert-to",
            "pdf",
            "--outdir",
            str(self.outdir),
        ]

    def run_pass(self, sources: list[Path]) -> dict[Path, str]:
        """Convert ``sources`` in as few starts as allowed; the ones left without a PDF,
        with why. A start that cannot run, or is stopped before it made any PDF, ends
        the pass: the next start would fare no better."""
        left: dict[Path, str] = {}
        room = self.max_command - sum(len(p) + 3 for p in self.command(self.profiles / "0000"))
        batches = _batches(sources, room, self.max_documents)
        for n, sources_now in enumerate(batches):
            outcome = self._start(sources_now)
            left.update(outcome.left)
            if outcome.give_up:
                for rest in batches[n + 1 :]:
                    left.update(dict.fromkeys(rest, outcome.give_up))
                break
        return left

    def _start(self, sources: list[Path]) -> _Start:
        self.batch.starts += 1
        profile = self.profiles / f"{self.profile_number:04d}"
        try:
            process = subprocess.Popen(
                [*self.command(profile), *(str(s) for s in sources)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout ends all of it
            )
        except OSError as exc:
            self.unstartable = True
            why = f"LibreOffice ({self.soffice}) could not be started ({exc.strerror or exc})"
            self.batch.problems.append(
                _problem(
                    "LibreOffice",
                    f"{why}, so the bills have no PDF; reinstall it and make the bills again",
                )
            )
            return _Start(dict.fromkeys(sources, why), give_up=why)
        self.batch.process_group = process.pid
        timed_out = False
        try:
            _, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            timed_out, stderr = True, b""
            self.profile_number += 1  # a killed LibreOffice leaves its profile locked
        except BaseException:
            # Ctrl-C reaches only the terminal's process group, not this one: end it here,
            # or it would run on with its profile folder removed under it.
            _kill_group(process)
            raise
        if timed_out:
            why = f"LibreOffice did not finish within {self.timeout:g} s and was stopped"
            self.batch.problems.append(
                _problem(
                    "LibreOffice",
                    f"LibreOffice did not finish converting {len(sources)} bill(s) to PDF "
                    f"within {self.timeout:g} s and was stopped",
                )
            )
        else:
            why = "LibreOffice made no PDF of it" + _reason(stderr)
        left = {}
        for source in sources:
            pdf = self.outdir / (source.stem + ".pdf")
            if pdf.exists() and pdf.stat().st_size > 0:
                self.batch.pdfs[source] = pdf
            else:
                left[source] = why
        stopped_idle = timed_out and len(left) == len(sources)
        return _Start(left, give_up=why if stopped_idle else "")


@dataclass
class _Start:
    left: dict[Path, str]
    """Documents of the start without a PDF, and why."""
    give_up: str = ""
    """Why no further start should be tried in this pass (empty: go on)."""


def _reason(stderr: bytes) -> str:
    """LibreOffice's own error lines (its warnings, e.g. about Java, are noise here)."""
    said = stderr.decode("utf-8", "replace").splitlines()
    lines = [line.strip() for line in said if line.strip().lower().startswith("error")]
    return f" ({'; '.join(lines)})" if lines else ""


def convert_to_pdf(
    sources: list[Path],
    outdir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    max_command: int = MAX_COMMAND,
    max_documents: int = MAX_DOCUMENTS_PER_START,
    soffice: str | Path | None = None,
) -> PdfBatch:
    """Convert every workbook in ``sources`` to ``outdir/<stem>.pdf``: in batches of at
    most ``max_documents`` a start, then each document still without a PDF once more.

    Sources must have distinct stems (LibreOffice names each PDF after its source).
    """
    batch = PdfBatch()
    if not sources:
        return batch
    try:
        program = str(soffice) if soffice is not None else find_libreoffice()
    except LibreOfficeMissing as exc:
        batch.problems.append(_problem("LibreOffice", f"{exc}; so the bills have no PDF"))
        batch.failed = dict.fromkeys(sources, "LibreOffice is not installed")
        return batch
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="costloop-lo-") as profiles:
        starter = _Starter(
            program, outdir, Path(profiles), timeout, max_command, max_documents, batch
        )
        left = starter.run_pass(list(sources))
        if left and not starter.unstartable:
            batch.retried = len(left)
            left = starter.run_pass(list(left))
    batch.failed = left
    batch.seconds = time.perf_counter() - started
    return batch
