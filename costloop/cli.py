"""The `costloop` command line (docs/contract.md#command-line).

Exit codes: 0 clean, 1 the workbook has errors (or a tie-out failed),
2 a usage error (unknown option, missing file). No traceback reaches the
user: an unexpected failure prints one line and exits 1 (set
``COSTLOOP_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from costloop import __version__
from costloop.errors import EXIT_PROBLEMS, CostloopError, UsageError
from costloop.problems import grouped
from costloop.progress import StageProgress

EXIT_OK = 0

EXIT_CODES = """\
exit codes:
  0  done (warnings, if any, are listed)
  1  the workbook has errors, a tie-out failed, or the command could not finish
  2  the command itself is wrong (an unknown option, a missing file); nothing was written"""

FIRST_STEPS = """\
examples:
  costloop new chargeback.xlsx           a blank workbook to fill in (see its Instructions)
  costloop demo                          a filled-in example university, run once
  costloop check chargeback.xlsx         find the mistakes, each with its cell
  costloop run chargeback.xlsx           bill the period and write the output sheets
  costloop bills chargeback.xlsx --outdir bills
  costloop COMMAND --help                one command's options and examples"""

_USER_ADD = "echo 'a long password' | costloop portal user add chargeback.xlsx ada --department ENG"
_EXPORT = "costloop portal export chargeback.xlsx --outdir site"
_PULL = "costloop disputes pull chargeback.xlsx"

EXAMPLES = {
    "new": "costloop new chargeback.xlsx\ncostloop new chargeback.xlsx --force",
    "check": "costloop check chargeback.xlsx\ncostloop check chargeback.xlsx --output checked.xlsx",
    "run": (
        "costloop run chargeback.xlsx\n"
        "costloop run chargeback.xlsx --period 2026-03\n"
        "costloop run chargeback.xlsx --output what-if.xlsx --scenario High\n"
        "costloop run chargeback.xlsx --recalc"
    ),
    "close": "costloop close chargeback.xlsx\ncostloop close chargeback.xlsx --period 2026-03",
    "recalc": "costloop recalc chargeback.xlsx\ncostloop recalc a.xlsx b.xlsm --timeout 600",
    "bills": (
        "costloop bills chargeback.xlsx --outdir bills\n"
        "costloop bills chargeback.xlsx --outdir bills --no-pdf"
    ),
    "email": (
        "costloop email chargeback.xlsx --dry-run outbox\n"
        "costloop email chargeback.xlsx\n"
        "costloop email chargeback.xlsx --resend"
    ),
    "serve": (
        "costloop serve chargeback.xlsx\n"
        "costloop serve chargeback.xlsx --port 8080 --proxy-headers\n"
        "costloop serve chargeback.xlsx --db postgresql+psycopg://costloop@db/costloop"
    ),
    "portal": f"{_USER_ADD}\n{_EXPORT}",
    "user": _USER_ADD,
    "export": f"{_EXPORT}\ncostloop portal export chargeback.xlsx --outdir site --no-pdf",
    "disputes": _PULL,
    "pull": f"{_PULL}\ncostloop disputes pull chargeback.xlsx --db postgresql+psycopg://costloop@db/costloop",
    "add": f"{_USER_ADD}\ncostloop portal user add chargeback.xlsx fin --finance",
    "demo": "costloop demo\ncostloop demo my-demo --force",
    "addin": "costloop addin build\ncostloop addin install",
    "build": "costloop addin build\ncostloop addin build --output D:/dist/costloop.xlam",
    "install": "costloop addin install\ncostloop addin install --folder S:/excel-addins",
}
"""Each command's examples for its --help (the add-in's actions under their own names)."""


def _epilog(command: str) -> str:
    examples = "\n".join(f"  {line}" for line in EXAMPLES[command].splitlines())
    return f"examples:\n{examples}\n\n{EXIT_CODES}"


class _Sub(argparse.ArgumentParser):
    """A command's parser: its examples and the exit codes after its options."""

    def __init__(self, *args, **kwargs):
        name = kwargs["prog"].split()[-1]
        kwargs.setdefault("epilog", _epilog(name) if name in EXAMPLES else EXIT_CODES)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costloop",
        description="Spreadsheet-native IT chargeback and ITFM: plan, bill, optimize.",
        epilog=f"{FIRST_STEPS}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"costloop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Sub)

    p = sub.add_parser("new", help="write a blank workbook to fill in (the template)")
    p.add_argument("book", type=Path, help="the new workbook (.xlsx)")
    p.add_argument("--force", action="store_true", help="replace a file of that name")

    p = sub.add_parser("check", help="parse and validate rules and data; write Rule Check")
    p.add_argument("book", type=Path, help="the workbook (.xlsx or .xlsm)")
    p.add_argument("--output", type=Path, help="write Rule Check into this copy instead")

    p = sub.add_parser("run", help="run the loop and write the output sheets")
    p.add_argument("book", type=Path, help="the workbook (.xlsx or .xlsm)")
    p.add_argument("--period", help="the period to bill, YYYY-MM (default: Settings Period)")
    p.add_argument("--output", type=Path, help="write the result to this file instead")
    p.add_argument(
        "--scenario",
        help="what-if: read Budget@NAME / Rates@NAME and write outputs under NAME",
    )
    p.add_argument(
        "--recalc",
        action="store_true",
        help="then recalculate the workbook's formulas with LibreOffice (see costloop recalc)",
    )
    _timeout_option(p)

    p = sub.add_parser("close", help="record a period's bills as issued (after a clean run)")
    p.add_argument("book", type=Path, help="the workbook (.xlsx or .xlsm), after `costloop run`")
    p.add_argument("--period", help="the period to close, YYYY-MM (default: the last run's period)")

    p = sub.add_parser("recalc", help="recalculate every formula headlessly, store the values")
    p.add_argument("books", nargs="+", type=Path, metavar="BOOK", help="workbooks (.xlsx, .xlsm)")
    _timeout_option(p)

    p = sub.add_parser("bills", help="one workbook and its PDF per department billed")
    p.add_argument("book", type=Path, help="the workbook, after `costloop run`")
    p.add_argument("--outdir", type=Path, required=True, metavar="DIR", help="folder for the bills")
    p.add_argument(
        "--no-pdf",
        action="store_true",
        help="make the workbooks only, without LibreOffice (such bills are not for email)",
    )

    p = sub.add_parser("email", help="email each department its bill")
    p.add_argument("book", type=Path, help="the workbook, after `costloop run`")
    p.add_argument(
        "--dry-run", type=Path, metavar="DIR", help="write the messages as .eml files, send none"
    )
    p.add_argument(
        "--resend",
        action="store_true",
        help="send bills that changed since they were sent (the send log says which)",
    )

    p = sub.add_parser("serve", help="serve each department its bills on the web (the portal)")
    p.add_argument("book", type=Path, help="the workbook, after `costloop run`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    _db_option(p)
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="served behind an HTTPS reverse proxy: trust its X-Forwarded-For and "
        "X-Forwarded-Proto, and mark the session cookie Secure",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="with --proxy-headers: the proxy's addresses, comma-separated (default 127.0.0.1)",
    )

    p = sub.add_parser("portal", help="the portal's accounts and its static export")
    actions = p.add_subparsers(dest="portal_what", required=True, metavar="WHAT")
    users = actions.add_parser("user", help="portal users")
    user_actions = users.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    a = user_actions.add_parser(
        "add", help="add a local account; its password is read from standard input"
    )
    a.add_argument("book", type=Path, help="the workbook the portal serves")
    a.add_argument("user", help="the user name to sign in with")
    who = a.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--department",
        action="append",
        metavar="CODE",
        help="a department the user sees (repeat for more than one)",
    )
    who.add_argument("--finance", action="store_true", help="the user sees every department")
    _db_option(a)
    a = actions.add_parser(
        "export", help="write a static, showback-only site: one folder per department"
    )
    a.add_argument("book", type=Path, help="the workbook, after `costloop run`")
    a.add_argument("--outdir", type=Path, required=True, help="folder to write the site into")
    a.add_argument("--no-pdf", action="store_true", help="make no bill.pdf (no LibreOffice)")

    p = sub.add_parser("disputes", help="the portal's disputes and the Disputes sheet")
    actions = p.add_subparsers(dest="disputes_action", required=True, metavar="ACTION")
    a = actions.add_parser(
        "pull", help="add the portal's new disputes to the workbook's Disputes sheet"
    )
    a.add_argument("book", type=Path, help="the workbook the portal serves")
    _db_option(a)

    p = sub.add_parser("demo", help="write the demo workbook and run it")
    p.add_argument(
        "dir", nargs="?", type=Path, default=Path("costloop-demo"), help="folder for the demo"
    )
    p.add_argument("--force", action="store_true", help="replace a demo workbook you have changed")

    p = sub.add_parser("addin", help="build or install the Excel add-in (costloop.xlam)")
    actions = p.add_subparsers(
        dest="addin_action", required=True, metavar="ACTION", parser_class=_Sub
    )
    a = actions.add_parser("build", help="build costloop.xlam from its sources")
    a.add_argument(
        "--output", type=Path, default=Path("costloop.xlam"), help="default: ./costloop.xlam"
    )
    a = actions.add_parser(
        "install", help="put the add-in where Excel loads it and point it at this Python"
    )
    a.add_argument(
        "--folder", type=Path, help="install into this folder instead of Excel's startup folder"
    )
    return parser


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        help="the portal's database, a SQLAlchemy URL (default: SQLite beside the workbook, "
        "BOOK.portal.sqlite)",
    )


def _timeout_option(p: argparse.ArgumentParser) -> None:
    from costloop.engine.recalc.libreoffice import DEFAULT_TIMEOUT

    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop LibreOffice after this long (default {DEFAULT_TIMEOUT:g})",
    )


def _existing_book(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a workbook")
    return path


def _print_problems(problems, stream=None) -> None:
    stream = stream or sys.stdout
    ordered = [p for p in problems if p.is_error] + [p for p in problems if not p.is_error]
    # A column of a million bad cells is one line, not a million (costloop.problems.grouped).
    for problem in grouped(ordered):
        prefix = "" if problem.is_error else "warning: "
        print(prefix + problem.render(), file=stream)


def cmd_check(args) -> int:
    from costloop.engine.pipeline.commands import check_book

    output = _output_option(args.output)
    outcome = check_book(_existing_book(args.book), output)
    _print_problems(outcome.problems)
    n_err, n_warn = len(outcome.errors), len(outcome.warnings)
    rules = len(outcome.book.rules) if outcome.book else 0
    print(f"{args.book}: {rules} rule(s) checked, {n_err} error(s), {n_warn} warning(s)")
    if outcome.not_written:
        print(outcome.not_written)
    elif output is not None and outcome.written:
        print(f"Wrote {', '.join(outcome.written)} to {output}")
    # Exit by the findings, whether or not Rule Check could be written.
    return EXIT_OK if outcome.ok else EXIT_PROBLEMS


def _output_option(output: Path | None) -> Path | None:
    if output is not None and output.suffix.lower() not in (".xlsx", ".xlsm"):
        raise UsageError(f"--output {output}: give a .xlsx or .xlsm file name")
    return output


def cmd_run(args) -> int:
    from costloop.engine.pipeline.commands import run_book, summary_lines

    output = _output_option(args.output)
    _existing_book(args.book)
    args.period = _period_option(args.period)
    if args.recalc:
        _timeout(args.timeout)
        if not _libreoffice_ready():
            return EXIT_PROBLEMS
    progress = StageProgress()
    try:
        outcome = run_book(
            args.book,
            period=args.period,
            output=output,
            scenario=args.scenario,
            progress=progress,
        )
    finally:
        progress.close()
    _print_problems(outcome.problems)
    for line in summary_lines(outcome):
        print(line)
    if outcome.ok:
        print(f"Wrote {', '.join(outcome.written)} to {output or args.book}")
    if not outcome.ok:
        return EXIT_PROBLEMS
    if args.recalc:
        return _recalc([output or args.book], args.timeout)
    return EXIT_OK


def cmd_close(args) -> int:
    from costloop.engine.pipeline.commands import close_book

    _existing_book(args.book)
    outcome = close_book(args.book, _period_option(args.period))
    _print_problems(outcome.problems)
    if not outcome.ok:
        print(f"{args.book}: nothing was closed or changed")
        return EXIT_PROBLEMS
    result = outcome.result
    lines = result.bills
    corrections = int((lines["Line Type"] != "Charge").sum())
    print(
        f"Closed {outcome.period}: {len(lines)} bill line(s) ({corrections} correction or credit "
        f"line(s)) and {len(result.journal)} journal line(s) recorded in Issued, sealed "
        f"{outcome.run_log.value('Closed Hash')[:12]}"
    )
    return EXIT_OK


def _period_option(period: str | None) -> str | None:
    """--period as YYYY-MM (``2026-3`` is read as 2026-03, as in cells); a usage error if not."""
    from costloop.engine.model.periods import parse_period

    if period is None:
        return None
    parsed = parse_period(period)
    if parsed is None:
        raise UsageError(
            f"--period {period}: give a month as YYYY-MM, e.g. 2026-03; nothing was written"
        )
    return parsed


def _libreoffice_ready() -> bool:
    """run --recalc: find LibreOffice before writing anything, so a missing one costs nothing."""
    from costloop.engine.recalc.libreoffice import LibreOfficeMissing, find_soffice

    try:
        find_soffice()
    except LibreOfficeMissing as exc:
        print(f"costloop run --recalc: {exc}; nothing was written", file=sys.stderr)
        return False
    return True


def _timeout(seconds: float) -> float:
    if not seconds > 0:
        raise UsageError(f"--timeout {seconds:g}: give a number of seconds above 0")
    return seconds


def _recalc(books: list[Path], timeout: float) -> int:
    from costloop.engine.recalc.command import recalc_books

    outcomes, _ = recalc_books(books, timeout=_timeout(timeout))
    for outcome in outcomes:
        _print_problems(outcome.problems)
        print(outcome.summary())
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_PROBLEMS


def cmd_recalc(args) -> int:
    for book in args.books:
        _existing_book(book)
    _timeout(args.timeout)
    return _recalc(args.books, args.timeout)


def cmd_demo(args) -> int:
    from costloop.engine.pipeline.commands import demo_changes, run_book, summary_lines
    from costloop.engine.xlsx.write_guard import refuse_unwritable
    from costloop.workbooks import closed_demo_path

    book = args.dir / "costloop-demo.xlsx"
    if book.exists():
        changed = None if args.force else demo_changes(book, closed_demo_path())
        if changed:
            print(
                f"costloop demo: {book} has changes of your own ({changed}); it was not "
                f"replaced. Run costloop demo --force to start again from a fresh demo, or "
                f"give another folder",
                file=sys.stderr,
            )
            return EXIT_PROBLEMS
        refuse_unwritable(book)  # even --force never replaces a file open in Excel
    args.dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(closed_demo_path(), book)
    outcome = run_book(book)
    _print_problems(outcome.problems)
    for line in summary_lines(outcome):
        print(line)
    print(f"Demo workbook: {book.resolve()}")
    return EXIT_OK if outcome.ok else EXIT_PROBLEMS


def cmd_new(args) -> int:
    """`costloop new BOOK`: the blank template, under the user's name for it."""
    from costloop.engine.xlsx.write_guard import refuse_unwritable
    from costloop.workbooks import template_path

    book: Path = args.book
    if book.suffix.lower() != ".xlsx":
        raise UsageError(f"{book}: give a .xlsx file name (the template is an .xlsx workbook)")
    if book.is_dir():
        raise UsageError(f"{book}: is a folder; give a file name for the new workbook")
    if book.exists():
        if not args.force:
            print(
                f"costloop new: {book} already exists; it was not replaced. Give another "
                "name, or run costloop new --force to replace it with a blank workbook",
                file=sys.stderr,
            )
            return EXIT_PROBLEMS
        refuse_unwritable(book)  # even --force never replaces a file open in Excel
    if not book.parent.is_dir():
        raise UsageError(f"{book}: no such folder {book.parent}")
    shutil.copyfile(template_path(), book)
    print(f"Wrote a blank workbook to {book}")
    print(f"Next: fill in its sheets (its Instructions sheet says how), then costloop check {book}")
    return EXIT_OK


def cmd_addin(args) -> int:
    from costloop.addin.build import write_addin
    from costloop.addin.install import install_addin
    from costloop.errors import AddinError

    try:
        if args.addin_action == "build":
            if args.output.suffix.lower() != ".xlam":
                raise UsageError(f"--output {args.output}: give a .xlam file name")
            print(f"Wrote the Excel add-in to {write_addin(args.output)}")
            return EXIT_OK
        done = install_addin(folder=args.folder)
    except (AddinError, OSError, ValueError) as exc:
        print(f"costloop addin {args.addin_action}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"Installed the Excel add-in: {done.addin}")
    print(f"Excel will run costloop with {done.interpreter} (set in {done.config})")
    if done.applescript is not None:
        print(f"Copied xlwings' AppleScript for Excel to {done.applescript}")
    print("Restart Excel to see the Chargeback tab.")
    return EXIT_OK


def cmd_bills(args) -> int:
    from costloop.bills import make_bills

    report = make_bills(_existing_book(args.book), args.outdir, pdf=not args.no_pdf)
    _print_problems(report.problems)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_email(args) -> int:
    from costloop.bills.emailing import send_bills

    report = send_bills(_existing_book(args.book), args.dry_run, resend=args.resend)
    _print_problems(report.problems)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _read_password() -> str:
    """One line of standard input (no echo at a terminal); its line ending is not part of it."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _portal_ready(command: str) -> bool:
    """The portal's libraries are an extra; say how to install them rather than crash."""
    try:
        import fastapi  # noqa: F401
        import pwdlib  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(
            f"costloop {command}: the portal needs its libraries ({exc.name} is missing); "
            "install them with: pip install 'costloop[portal]'",
            file=sys.stderr,
        )
        return False
    return True


def cmd_portal(args) -> int:
    if not _portal_ready("portal"):
        return EXIT_PROBLEMS
    if args.portal_what == "export":
        return _portal_export(args)
    from costloop.portal.commands import add_user

    book = _existing_book(args.book)
    report = add_user(
        book,
        args.user,
        _read_password(),
        departments=args.department or [],
        finance=args.finance,
        db_url=args.db,
    )
    _print_problems(report.problems)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _portal_export(args) -> int:
    from costloop.portal.export import export_site

    report = export_site(_existing_book(args.book), args.outdir, pdf=not args.no_pdf)
    _print_problems(report.problems)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_disputes(args) -> int:
    if not _portal_ready("disputes"):
        return EXIT_PROBLEMS
    from costloop.portal.pull import pull_disputes

    report = pull_disputes(_existing_book(args.book), args.db)
    _print_problems(report.problems)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_serve(args) -> int:
    if not _portal_ready("serve"):
        return EXIT_PROBLEMS
    from costloop.portal.commands import serve

    book = _existing_book(args.book)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: give a port from 1 to 65535")
    # A database the portal cannot use is a StoreError (a CostloopError): main() says so.
    serve(book, args.host, args.port, args.db, args.proxy_headers, args.forwarded_allow_ips)
    return EXIT_OK


COMMANDS = {
    "new": cmd_new,
    "serve": cmd_serve,
    "portal": cmd_portal,
    "disputes": cmd_disputes,
    "check": cmd_check,
    "run": cmd_run,
    "close": cmd_close,
    "recalc": cmd_recalc,
    "demo": cmd_demo,
    "addin": cmd_addin,
    "bills": cmd_bills,
    "email": cmd_email,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a newcomer's first try: what costloop does, examples, exit codes
        parser.print_help()
        return EXIT_OK
    args = parser.parse_args(argv)  # exits 2 on a usage error
    try:
        return COMMANDS[args.command](args)
    except CostloopError as exc:  # a failure the user can act on: its own words, its exit code
        print(f"costloop {args.command}: {exc.explain()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("costloop: interrupted; the workbook was not changed", file=sys.stderr)
        return EXIT_PROBLEMS
    except Exception as exc:  # the last line of defence: never a traceback
        from costloop.engine.pipeline.commands import explain_exception

        message = explain_exception(exc)
        if message is None:
            if os.environ.get("COSTLOOP_DEBUG"):
                traceback.print_exc()
            message = (
                f"unexpected error ({type(exc).__name__}: {exc}); the workbook was not changed. "
                "Please report this; set COSTLOOP_DEBUG=1 for details."
            )
        print(f"costloop {args.command}: {message}", file=sys.stderr)
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
