"""`costloop bills BOOK --outdir DIR`: a workbook and a PDF for every billed department."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from costloop.bills.pdf import convert_to_pdf
from costloop.bills.source import load_billed_year
from costloop.bills.statement import Statement, build_statements
from costloop.bills.workbook import write_bill
from costloop.problems import Problem, Reason, Reported, Severity


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
    """Wall time of the one LibreOffice run that made every PDF."""

    @property
    def total(self) -> Decimal:
        return sum((b.statement.total for b in self.bills), Decimal(0))

    def lines(self) -> list[str]:
        if not self.ok:
            errors = [p for p in self.problems if p.is_error]
            return [f"FAILED: no bills made; {len(errors)} error(s)"]
        pdfs = sum(1 for b in self.bills if b.pdf)
        # In the currency's places (JPY: none), as the bills themselves show amounts.
        places = self.bills[0].statement.minor_unit if self.bills else 2
        out = [
            f"Period {self.period} (run {self.run_id}): {len(self.bills)} department bill(s), "
            f"{self.total:,.{places}f} in all, written to {self.outdir}",
            f"  {len(self.bills)} workbook(s), {pdfs} PDF(s)"
            + (f" in {self.pdf_seconds:.1f} s" if pdfs else ""),
        ]
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
    report = BillsReport(outdir=outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for statement in statements:
        path = outdir / f"{statement.file_stem}.xlsx"
        write_bill(statement, path)
        if pdf:
            # An earlier bill's PDF must not stay beside this workbook if no new one is made.
            path.with_suffix(".pdf").unlink(missing_ok=True)
        report.bills.append(Bill(statement, path))
    if not pdf or not statements:
        return report
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
        report.pdf_seconds = batch.seconds
        # Without LibreOffice the workbooks still go out: the PDF is a convenience copy.
        report.problems += [replace(p, severity=Severity.WARNING) for p in batch.problems]
        for source, pdf_path in batch.pdfs.items():
            bill = by_source[source]
            target = outdir / pdf_path.name
            shutil.move(pdf_path, target)
            bill.pdf = target
    return report


def make_bills(book: Path, outdir: Path) -> BillsReport:
    """`costloop bills`: one workbook (and PDF) per department billed in the last run."""
    problem = _outdir_problem(outdir)
    if problem:
        return BillsReport(outdir=outdir, problems=[problem])
    year, problems = load_billed_year(book)
    if year is None:
        return BillsReport(outdir=outdir, problems=problems)
    report = write_bills(build_statements(year), outdir)
    report.problems = problems + report.problems
    report.period, report.run_id = year.period, year.stamp.run_id
    return report
