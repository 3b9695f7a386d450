"""The Instructions sheet lists the real command line, and the workbooks mention no other.

The command rows are built from `costloop.cli`'s parser; every `costloop ...` a workbook
mentions in backticks (the Instructions text, Settings meanings, header comments) must
name a registered subcommand and options it really has.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import _parser
from costloop.workbooks import generate, instructions

WORKBOOKS = Path(generate.__file__).resolve().parent
MENTION = re.compile(r"`costloop(?P<rest>[^`]*)`")
COMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def unknown_part(words: list[str], parser: argparse.ArgumentParser) -> str | None:
    """What in ``costloop <words>`` the parser does not know (``command recalc``), or None.

    Words in capitals (BOOK, COMMAND) and values (book.xlsx, 2026-03) are placeholders or
    arguments; a lowercase word where the parser expects a command must be one.
    """
    for word in words:
        commands = _subcommands(parser)
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            if option not in parser._option_string_actions:
                return f"option {option} of `{parser.prog}`"
        elif commands is not None and COMMAND_WORD.fullmatch(word):
            if word not in commands:
                return f"command {word!r} (`{parser.prog}` has {', '.join(commands)})"
            parser = commands[word]
    return None


def mentions(texts: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(where, words after `costloop`) for every backticked command in the texts."""
    return [
        (where, match.group("rest").split())
        for where, text in texts
        for match in MENTION.finditer(text)
    ]


def sheet_texts() -> list[tuple[str, str]]:
    return [
        (f"Instructions row {n}", text)
        for n, row in enumerate(instructions.sheet_rows(), start=1)
        for text in row[1:]
    ]


def workbook_texts(path: Path) -> list[tuple[str, str]]:
    """Every text a user can read in the workbook: cell values and cell comments."""
    wb = openpyxl.load_workbook(path)
    texts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    texts.append((f"{path.name} {ws.title}!{cell.coordinate}", cell.value))
                if cell.comment is not None:
                    texts.append(
                        (f"{path.name} {ws.title}!{cell.coordinate} (comment)", cell.comment.text)
                    )
    return texts


# --- the checker itself ------------------------------------------------------------------


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="costloop")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the loop")
    p.add_argument("book", help="the workbook")
    p.add_argument("--period", help="the period to bill")
    p.add_argument("--recalc", action="store_true", help="recalculate afterwards")
    p = sub.add_parser("email", help="send the bills")
    p.add_argument("book")
    p.add_argument("--dry-run", metavar="DIR", help="write the messages to DIR")
    p = sub.add_parser("bills", help="one workbook per department.")
    p.add_argument("book")
    p.add_argument("--outdir", required=True, help="where they go")
    p = sub.add_parser("demo", help="the demo")
    p.add_argument("dir", nargs="?", default="costloop-demo", help="folder (%(default)s)")
    addin = sub.add_parser("addin", help="the Excel add-in")
    nested = addin.add_subparsers(dest="action", required=True)
    p = nested.add_parser("build", help="build the add-in")
    p.add_argument("--output", help="where to write it")
    nested.add_parser("install", help="install it")
    return parser


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["run", "book.xlsx", "--period", "2026-03"], None),
        (["run", "BOOK", "--recalc"], None),
        (["COMMAND", "--help"], None),
        (["addin", "build", "--output", "x.xlam"], None),
        (["recalc", "BOOK"], "command 'recalc' (`costloop` has run, email, bills, demo, addin)"),
        (["run", "BOOK", "--scenario", "High"], "option --scenario of `costloop run`"),
        (["addin", "remove"], "command 'remove' (`costloop addin` has build, install)"),
    ],
)
def test_unknown_part_finds_commands_and_options_that_do_not_exist(words, problem):
    assert unknown_part(words, toy_parser()) == problem


def test_command_rows_are_built_from_the_parser():
    rows = instructions.command_rows(toy_parser())
    assert rows[0][0] == "heading" and rows[-1][1] == "Exit codes"
    assert [(style, a) for style, a, _ in rows[1:-1]] == [
        ("command", "costloop run BOOK [--period PERIOD] [--recalc]"),
        ("command", "costloop email BOOK [--dry-run DIR]"),
        ("command", "costloop bills BOOK --outdir OUTDIR"),
        ("command", "costloop demo [DIR]"),
        ("command", "costloop addin build [--output OUTPUT]"),
        ("command", "costloop addin install"),
    ]
    assert rows[1][2] == (
        "Run the loop.\nBOOK: the workbook\n--period PERIOD: the period to bill\n"
        "--recalc: recalculate afterwards"
    )
    assert rows[3][2] == "One workbook per department.\n--outdir OUTDIR: where they go"
    assert rows[4][2] == "The demo.\nDIR: folder (costloop-demo)"
    assert rows[6][2] == "Install it."


# --- the real command line and workbooks ----------------------------------------------------


def test_the_instructions_list_every_real_command():
    listed = {a for style, a, _ in instructions.sheet_rows() if style == "command"}
    for parser, _help in instructions.leaf_commands(_parser()):
        assert instructions.command_usage(parser) in listed, f"{parser.prog} is not listed"
    assert len(listed) >= 3  # check, run, demo at least


def test_every_command_the_instructions_mention_exists():
    found = mentions(sheet_texts())
    assert len(found) >= 3  # `costloop run ...`, `costloop check`, `costloop COMMAND --help`
    bad = [
        f"{where}: {problem}"
        for where, words in found
        if (problem := unknown_part(words, _parser()))
    ]
    assert not bad, "the Instructions mention commands that do not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", ["template.xlsx", "demo.xlsx"])
def test_every_command_the_committed_workbooks_mention_exists(name):
    found = mentions(workbook_texts(WORKBOOKS / name))
    assert found, f"{name} mentions no command at all: is the Instructions sheet there?"
    bad = [
        f"{where}: {problem}"
        for where, words in found
        if (problem := unknown_part(words, _parser()))
    ]
    assert not bad, f"{name} mentions commands that do not exist:\n" + "\n".join(bad)
