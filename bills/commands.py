"""`costloop bills BOOK --outdir DIR [--no-pdf]`: a workbook and a PDF for every billed
department.

A bill is its workbook and its PDF: a department whose PDF LibreOffice did not make
(after a retry) is an error at its Departments cell, so the command exits 1 and
`costloop email` never sends that department a bill with half its attachments.
``--no-pdf`` makes the workbooks alone, on purpose, without LibreOffice.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from costloop.bills.pdf import PdfBatch, convert_to_pdf
from costloop.bills.source import load_billed_year
from costloop.bills.statement import Statement, build_statements
from costloop.bills.workbook import write_bill
from costloop.problems import Problem, Reason, Reported, Severity

SHOWN = 30
"""Departments named in the summary's line of bills without a PDF (the errors name each)."""


@dataclass
class Bill:
    """One department's bill and the files made of it."""

    statement: Statement
    workbook: Path
    pdf: Path | None = None


@dataclass
class BillsReport(Reported):
    """What `make_bills` did."""

    outdir: Path
    bills: list[Bill] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    period: str | None = None
    run_id: str | None = None
    pdf_seconds: float = 0.0
    """Wall time of the LibreOffice starts that made the PDFs."""
    pdf_starts: int = 0
    pdf_retried: int = 0
    """Bills whose PDF was not made by their first start and were tried once more."""
    with_pdf: bool = True
    """False with --no-pdf: workbooks only, on purpose."""

    @property
    def without_pdf(self) -> list[Bill]:
        """Bills that should have a PDF and have none (each an error in ``problems``)."""
        return [b for b in self.bills if self.with_pdf and b.pdf is None]

    @property
    def total(self) -> Decimal:
        return sum((b.statement.total for b in self.bills), Decimal(0))

    def lines(self) -> list[str]:
        if not self.bills:
            errors = [p for p in self.problems if p.is_error]
            return [f"FAILED: no bills made; {len(errors)} error(s)"]
        pdfs = sum(1 for b in self.bills if b.pdf)
        made = f"  {len(self.bills)} workbook(s), "
        if not self.with_pdf:
            made += "no PDFs (--no-pdf)"
        else:
            made += f"{pdfs} PDF(s)" + (
                f" in {self.pdf_seconds:.1f} s, {self.pdf_starts} LibreOffice start(s)"
                if pdfs
                else ""
            )
            if self.pdf_retried:
                made += f", {self.pdf_retried} retried"
        # In the currency's places (JPY: none), as the bills themselves show amounts.
        places = self.bills[0].statement.minor_unit if self.bills else 2
        out = [
            f"Period {self.period} (run {self.run_id}): {len(self.bills)} department bill(s), "
            f"{self.total:,.{places}f} in all, written to {self.outdir}",
            made,
        ]
        missing = [b.statement.department for b in self.without_pdf]
        if missing:
            shown = ", ".join(missing[:SHOWN])
            more = f" and {len(missing) - SHOWN:,} more" if len(missing) > SHOWN else ""
            out.append(
                f"FAILED: {len(missing):,} bill(s) without their PDF (not to be sent): "
                f"{shown}{more}"
            )
        width = max((len(b.statement.department) for b in self.bills), default=0)
        for bill in self.bills:
            s = bill.statement
            out.append(f"  {s.department:<{width}}  {s.total:>14,.{places}f}  {bill.workbook.name}")
        return out


def _outdir_problem(outdir: Path) -> Problem | None:
    if outdir.exists() and not outdir.is_dir():
        return Problem(
            Reason.NO_DATA,
            Severity.ERROR,
            str(outdir),
            "--outdir names a file, not a folder; give a folder for the bills",
        )
    return None


def write_bills(statements: list[Statement], outdir: Path, pdf: bool = True) -> BillsReport:
    """Each statement's workbook, and (``pdf``) its Summary as a PDF, into ``outdir``."""
    report = BillsReport(outdir=outdir, with_pdf=pdf)
    outdir.mkdir(parents=True, exist_ok=True)
    for statement in statements:
        path = outdir / f"{statement.file_stem}.xlsx"
        write_bill(statement, path)
        # An earlier bill's PDF must not stay beside this workbook if no new one is made.
        path.with_suffix(".pdf").unlink(missing_ok=True)
        report.bills.append(Bill(statement, path))
    if not pdf or not statements:
        return report
    _add_pdfs(report, outdir)
    return report


def _add_pdfs(report: BillsReport, outdir: Path) -> None:
    """Each bill's Summary as a PDF beside its workbook; a bill left without one is an
    error at its department's cell."""
    with tempfile.TemporaryDirectory(prefix="costloop-bills-") as tmp:
        sources = Path(tmp) / "summary"
        sources.mkdir()
        made = Path(tmp) / "pdf"
        # The PDF is of the Summary only: LibreOffice prints every sheet of what it is given.
        by_source = {}
        for bill in report.bills:
            source = sources / f"{bill.statement.file_stem}.xlsx"
            write_bill(bill.statement, source, summary_only=True)
            by_source[source] = bill
        batch = convert_to_pdf(list(by_source), made)
        report.pdf_seconds, report.pdf_starts = batch.seconds, batch.starts
        report.pdf_retried = batch.retried
        report.problems += batch.problems
        for source, pdf_path in batch.pdfs.items():
            bill = by_source[source]
            target = outdir / pdf_path.name
            shutil.move(pdf_path, target)
            bill.pdf = target
        report.problems += _missing_pdfs(batch, by_source)


def _missing_pdfs(batch: PdfBatch, by_source: dict[Path, Bill]) -> list[Problem]:
    """An error per department whose bill has no PDF, at its Departments cell."""
    problems = []
    for source, why in batch.failed.items():
        statement = by_source[source].statement
        problems.append(
            Problem(
                Reason.NO_DATA,
                Severity.ERROR,
                statement.department_cell,
                f"{statement.department}'s bill has its workbook but no PDF ({why}); "
                "it will not be emailed. Make the bills again; if the same department "
                "fails again, open its workbook in LibreOffice to see why",
            )
        )
    return problems


def make_bills(book: Path, outdir: Path, *, pdf: bool = True) -> BillsReport:
    """`costloop bills`: one workbook (and, unless not ``pdf``, a PDF) per department
    billed in the last run."""
    problem = _outdir_problem(outdir)
    if problem:
        return BillsReport(outdir=outdir, problems=[problem])
    year, problems = load_billed_year(book)
    if year is None:
        return BillsReport(outdir=outdir, problems=problems)
    report = write_bills(build_statements(year), outdir, pdf=pdf)
    report.problems = problems + report.problems
    report.period, report.run_id = year.period, year.stamp.run_id
    return report
