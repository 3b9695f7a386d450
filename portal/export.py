"""`costloop portal export BOOK --outdir DIR`: the portal as a static, showback-only site.

For a campus that would rather not run the portal: each department gets one folder
of plain files, to put behind the campus web server with that department's access
rule on its folder. The pages are the live portal's own templates (same bill, same
lines, same usage rows behind each line), rendered with ``static`` set: no form (no
sign-in, dispute or acceptance — there is no server to take them), no script, and
relative links only, so a folder works wherever it is put::

    DIR/static/portal.css                 the stylesheet (the only file shared)
    DIR/<dept>/index.html                 the department's periods
    DIR/<dept>/<period>/index.html        the bill
    DIR/<dept>/<period>/lines/<n>.html    a line and the usage rows behind it
    DIR/<dept>/<period>/bill.xlsx, bill.pdf, lines.csv, focus.csv
    DIR/<dept>/<period>/months.svg, budget.svg    the bill's two charts

Every period the portal lists is there (the open one and the fiscal year's closed
ones, as issued). The state beside each period is the workbook's (issued, corrected,
disputed on the Disputes sheet): acceptances live in the portal's database.

A department's folder is made only from its own `Statement`, which holds nothing of
another department (bills/statement.py), so no page or file in it names another one.
The bills are the workbook's last successful run, read as the portal reads them.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from costloop.bills.commands import write_bills
from costloop.bills.statement import Statement
from costloop.bills.workbook import bill_workbook
from costloop.portal import views
from costloop.portal.charts import render_svg
from costloop.portal.focus import focus_csv
from costloop.portal.snapshot import Snapshot, load_snapshot
from costloop.portal.states import state_of
from costloop.portal.templating import page_templates
from costloop.problems import Problem, Reason, Reported, Severity
from costloop.rules.ast import name_key

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = ("portal.css",)
"""The pages' assets; htmx is not among them, as no static page has a script."""
MARKER = ".costloop-export"
"""Lists the folders an export wrote, so the next export into DIR may replace them (and
only them): a folder that is not an earlier export is never written into."""


@dataclass
class ExportReport(Reported):
    outdir: Path
    folders: dict[str, str] = field(default_factory=dict)
    """Department code -> its folder's name."""
    files: int = 0
    with_pdf: bool = True
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.folders:
            return [f"FAILED: no site was written to {self.outdir}"]
        head = (
            f"Wrote the showback site of {len(self.folders)} department(s) to {self.outdir}: "
            f"{self.files} file(s), one folder per department"
        )
        if not self.with_pdf:
            head += " (no PDFs: --no-pdf)"
        out = [head]
        width = max(len(code) for code in self.folders)
        out += [f"  {code:<{width}}  {folder}/" for code, folder in self.folders.items()]
        if not self.ok:
            out.append("FAILED: some bills have no PDF (listed above); their pages do not link one")
        return out


def folder_names(codes: list[str]) -> list[str]:
    """A folder name per department code, safe in a URL and on any disk, never the same
    twice (ignoring case): ``R&D`` -> ``R_D``; a second ``R/D`` -> ``R_D-2``."""
    names, taken = [], set()
    for code in codes:
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in code)
        safe = safe.strip("_") or "department"
        name, n = safe, 1
        while name.casefold() in taken or name.casefold() == "static":
            n += 1
            name = f"{safe}-{n}"
        taken.add(name.casefold())
        names.append(name)
    return names


class _Site:
    """Renders one department's pages into its folder."""

    def __init__(self, snapshot: Snapshot, outdir: Path):
        self.snapshot, self.outdir = snapshot, outdir
        self.templates = page_templates()
        self.files = 0

    def page(self, path: Path, template: str, depth: int, **context) -> None:
        """``depth``: how many folders below DIR the page is (DIR/ENG/index.html is 1)."""
        up = "../" * depth
        html = self.templates.get_template(template).render(
            static=True,
            static_url=f"{up}static",
            csrf="",
            stamp=self.snapshot.stamp,
            problems=(),
            account=None,
            **context,
        )
        self.write(path, html.encode("utf-8"))

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files += 1

    def department(self, folder: Path, statements: list[Statement], pdfs: dict) -> None:
        # The state from the workbook alone (issued, corrected, disputed on the Disputes
        # sheet): acceptances and the portal's own disputes are in its database, not here.
        periods = [(s, f"{s.period}/index.html", state_of(s, set(), set())) for s in statements]
        self.page(
            folder / "index.html",
            "home.html",
            1,
            departments=[(statements[-1], periods)],
            home_url="index.html",
        )
        for s in statements:
            self.bill(folder / s.period, s, pdfs.get((s.department, s.period)))

    def bill(self, folder: Path, s: Statement, pdf: Path | None) -> None:
        sections = _relative(views.bill_sections(s, self.snapshot))
        self.page(
            folder / "index.html",
            "bill.html",
            2,
            s=s,
            bill_url=".",
            home_url="../index.html",
            may_act=False,
            accepted=None,
            disputes=[],
            pdf=pdf is not None,
            **sections,
        )
        key = name_key(s.department)
        for row in sections["lines"]:
            rule = self.snapshot.rules.get(row.rule)
            shown = self.snapshot.statement(key, row.charge_period) is not None
            self.page(
                folder / "lines" / f"{row.number}.html",
                "line.html",
                3,
                s=s,
                line=row,
                usage=views.usage_of_line(s, rule),
                # From DIR/ENG/2026-03/lines/: the bill, and a line's own month's bill.
                line_period_url=f"../../{row.charge_period}/index.html" if shown else "",
                bill_url="../index.html",
                home_url="../../index.html",
                may_act=False,
            )
        self.write(folder / "bill.xlsx", bill_workbook(s))
        self.write(folder / "lines.csv", views.lines_csv(s))
        self.write(folder / "focus.csv", focus_csv(s))
        self.write(folder / "months.svg", render_svg(s, "months"))
        if sections["budget"]:
            self.write(folder / "budget.svg", render_svg(s, "budget"))
        if pdf is not None:
            self.write(folder / "bill.pdf", pdf.read_bytes())


_PORTAL_URL = re.compile(r"^/d/[^/]+/(\d{4}-\d{2})(?:/lines/(\d+))?$")


def _relative(value):
    """The bill page's links, which name the live portal's addresses (``/d/ENG/2026-02``,
    ``/d/ENG/2026-03/lines/4``), as the static site's files seen from a bill's folder
    (``../2026-02/index.html``, ``../2026-03/lines/4.html``). Every link of a statement is
    its own department's, so only the period and the line are kept."""
    if isinstance(value, str):
        found = _PORTAL_URL.match(value)
        if found is None:
            return value
        period, line = found.groups()
        return f"../{period}/lines/{line}.html" if line else f"../{period}/index.html"
    if isinstance(value, list):
        return [_relative(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_relative(v) for v in value)
    if isinstance(value, dict):
        return {k: _relative(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _relative(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def export_site(book: Path, outdir: Path, pdf: bool = True) -> ExportReport:
    """Write the static site of the workbook's last run into ``outdir``."""
    report = ExportReport(outdir=outdir, with_pdf=pdf)
    if outdir.exists() and not outdir.is_dir():
        report.problems.append(
            Problem(
                Reason.NO_DATA,
                Severity.ERROR,
                str(outdir),
                "--outdir names a file, not a folder; give a folder for the site",
            )
        )
        return report
    earlier = _earlier_export(outdir, report)
    if earlier is None:
        return report
    snapshot = load_snapshot(book)
    if not snapshot.ok:
        report.problems += list(snapshot.problems)
        return report
    keys = snapshot.department_keys()
    by_key = {k: [snapshot.statement(k, p) for p in snapshot.periods_of(k)] for k in keys}
    site = _Site(snapshot, outdir)
    with tempfile.TemporaryDirectory(prefix="costloop-export-") as tmp:
        pdfs: dict[tuple[str, str], Path] = {}
        if pdf:
            # The PDFs as `costloop bills` makes them: LibreOffice in batches, each
            # department left without one an error at its Departments cell.
            made = write_bills([s for ss in by_key.values() for s in ss], Path(tmp))
            report.problems += made.problems
            pdfs = {
                (b.statement.department, b.statement.period): b.pdf
                for b in made.bills
                if b.pdf is not None
            }
        for name in STATIC_FILES:
            site.write(outdir / "static" / name, (STATIC / name).read_bytes())
        codes = [by_key[k][-1].department for k in keys]
        for key, code, folder in zip(keys, codes, folder_names(codes), strict=True):
            site.department(outdir / folder, by_key[key], pdfs)
            report.folders[code] = folder
    (outdir / MARKER).write_text("".join(f"{f}\n" for f in report.folders.values()))
    report.files = site.files
    return report


def _earlier_export(outdir: Path, report: ExportReport) -> list[str] | None:
    """Make way for the new site: an earlier export's folders are removed (so a department
    or period that is gone does not stay); a folder holding anything else is refused."""
    if not outdir.exists() or not any(outdir.iterdir()):
        return []
    marker = outdir / MARKER
    if not marker.is_file():
        report.problems.append(
            Problem(
                Reason.NO_DATA,
                Severity.ERROR,
                str(outdir),
                "--outdir is a folder that holds other files, not an earlier export; "
                "give a new or empty folder (nothing was written)",
            )
        )
        return None
    folders = [f for f in marker.read_text().splitlines() if f and "/" not in f and f != ".."]
    for folder in [*folders, "static"]:
        shutil.rmtree(outdir / folder, ignore_errors=True)
    return folders
