"""The first hour with costloop: `costloop new`, `costloop` alone and every `--help`.

A newcomer's first commands must answer with a blank workbook, examples that work and
the exit codes, and never overwrite a file of theirs without being told to.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import EXAMPLES, EXIT_CODES, FIRST_STEPS, _parser, main
from costloop.workbooks import instructions, template_path

ALREADY = (
    "costloop new: {book} already exists; it was not replaced. Give another name, or run "
    "costloop new --force to replace it with a blank workbook\n"
)


def test_new_writes_the_blank_template(tmp_path, capsys):
    book = tmp_path / "chargeback.xlsx"
    assert main(["new", str(book)]) == 0
    assert book.read_bytes() == template_path().read_bytes()
    assert capsys.readouterr().out == (
        f"Wrote a blank workbook to {book}\n"
        "Next: fill in its sheets (its Instructions sheet says how), then "
        f"costloop check {book}\n"
    )
    wb = openpyxl.load_workbook(book, read_only=True)
    assert wb.sheetnames == [
        "Instructions",
        "Settings",
        "Departments",
        "Budget",
        "Actuals",
        "Usage",
        "Rates",
        "Rules",
        "Disputes",
    ]
    wb.close()


def test_new_refuses_to_overwrite_an_existing_file(tmp_path, capsys):
    book = tmp_path / "chargeback.xlsx"
    book.write_bytes(b"a year of someone's work")
    assert main(["new", str(book)]) == 1
    assert capsys.readouterr().err == ALREADY.format(book=book)
    assert book.read_bytes() == b"a year of someone's work"


def test_new_force_replaces_it_with_the_template(tmp_path):
    book = tmp_path / "chargeback.xlsx"
    book.write_bytes(b"old")
    assert main(["new", str(book), "--force"]) == 0
    assert book.read_bytes() == template_path().read_bytes()


def test_new_force_never_replaces_a_workbook_open_in_excel(tmp_path, capsys):
    book = tmp_path / "chargeback.xlsx"
    book.write_bytes(b"open in Excel")
    (tmp_path / "~$chargeback.xlsx").write_bytes(b"lock")
    assert main(["new", str(book), "--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"costloop new: {book}: the workbook is open in Excel (its lock file "
        "~$chargeback.xlsx is beside it); close it there and run again"
    )
    assert book.read_bytes() == b"open in Excel"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("chargeback.xlsm", "give a .xlsx file name (the template is an .xlsx workbook)"),
        ("chargeback", "give a .xlsx file name (the template is an .xlsx workbook)"),
        ("no-such-folder/chargeback.xlsx", "no such folder {folder}"),
    ],
)
def test_new_with_a_wrong_name_is_a_usage_error(tmp_path, capsys, name, message):
    book = tmp_path / name
    assert main(["new", str(book)]) == 2
    expected = message.format(folder=book.parent)
    assert capsys.readouterr().err == f"costloop new: {book}: {expected}\n"
    assert not book.exists()


def test_costloop_alone_shows_the_commands_examples_and_exit_codes(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: costloop [-h] [--version] COMMAND ...\n")
    assert "    new       write a blank workbook to fill in (the template)\n" in out
    assert out.endswith(f"{FIRST_STEPS}\n\n{EXIT_CODES}\n")
    assert "  costloop new chargeback.xlsx           a blank workbook to fill in" in out
    assert "  1  the workbook has errors, a tie-out failed, or the command could not finish" in out


def _command(line: str) -> str:
    """An example's costloop command, without what feeds its standard input (``echo … |``)."""
    return line.rsplit(" | ", 1)[-1]


def _commands() -> list[list[str]]:
    return [parser.prog.split()[1:] for parser, _ in instructions.leaf_commands(_parser())] + [
        ["addin"]
    ]


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_every_help_shows_examples_and_the_exit_codes(words, capsys):
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    examples = EXAMPLES[words[-1]].splitlines()
    expected = "examples:\n" + "".join(f"  {line}\n" for line in examples)
    assert out.endswith(f"{expected}\n{EXIT_CODES}\n")
    for line in examples:
        assert _command(line).startswith(f"costloop {' '.join(words)}"), line


def _example_lines() -> list[str]:
    lines = [line for text in EXAMPLES.values() for line in text.splitlines()]
    lines += [
        line.strip().split("  ")[0]
        for line in FIRST_STEPS.splitlines()[1:]
        if "COMMAND" not in line
    ]
    return lines


@pytest.mark.parametrize("line", _example_lines())
def test_every_example_is_a_command_the_parser_accepts(line):
    words = shlex.split(_command(line))
    assert words[0] == "costloop"
    args = _parser().parse_args(words[1:])  # exits 2 (fails the test) if it is not
    assert args.command == words[1]


def test_the_instructions_describe_every_output_sheet():
    from costloop.engine.model.sheets import OUTPUT_SHEETS

    assert tuple(instructions.OUTPUT_TEXTS) == OUTPUT_SHEETS


@pytest.mark.parametrize("name", ["template.xlsx", "demo.xlsx"])
def test_the_committed_workbooks_list_variance_and_compliance(name):
    path = Path(template_path()).parent / name
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = [r[:2] for r in wb["Instructions"].iter_rows(values_only=True)]
    wb.close()
    heading = rows.index(("The sheets costloop writes (replaced whole on every run)", None))
    listed = [a for a, _ in rows[heading + 1 : heading + 9]]
    assert listed == [
        "Bills",
        "Journal",
        "Recovery",
        "Forecast",
        "Variance",
        "Compliance",
        "Rule Check",
        "Run Log",
    ]
    assert (
        "costloop new BOOK [--force]",
        "Write a blank workbook to fill in (the template).\n"
        "BOOK: the new workbook (.xlsx)\n--force: replace a file of that name",
    ) in rows
