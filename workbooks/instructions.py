"""The text of the `Instructions` sheet: how the workbook and the rules language work.

Rows are (style, column A, column B). Styles: ``title``, ``heading``, ``example``
(a correct rule in A, what it does in B), ``mistake`` (a wrong rule in A, costloop's
message in B), ``command`` (a command line in A, what it does in B), ``text`` (plain
text in A and B).
The longer guides are `docs/rules-language.md` and `docs/contract.md`.

The command list is read from the real command-line parser (`costloop.cli`), never
typed here, so the sheet can only show commands and options that exist. Hand-written
text names a command in backticks (`costloop check`); a test checks each one is real.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from costloop.engine.model import sheets
from costloop.workbooks.layout import INPUT_LAYOUTS

Row = tuple[str, str, str]

_INTRO: list[Row] = [
    ("title", "costloop — IT chargeback in this workbook", ""),
    (
        "text",
        "The loop",
        "Plan costs in Budget, record what pools really cost in Actuals and what departments "
        "used in Usage, write the rules in Rules, then run costloop (ribbon button or "
        "`costloop run book.xlsx`). It writes Bills, Journal, Recovery, Forecast, Variance, "
        "Compliance, Rule Check and Run Log; it never changes the sheets you own.",
    ),
    (
        "text",
        "Names",
        "Pools, departments, metrics and funds match ignoring case and surrounding spaces. "
        "A pool exists if it appears in Budget or Actuals. Periods are text YYYY-MM or dates.",
    ),
    (
        "text",
        "A new workbook",
        "`costloop new book.xlsx` writes this blank template under a name of yours; "
        "`costloop demo` writes a filled-in example university and runs it.",
    ),
    (
        "text",
        "Start with `costloop check`",
        "It reads every rule and every sheet and lists each problem with its cell (Rules!B7, "
        "Usage!D1042) in the Rule Check sheet, without billing anything.",
    ),
]

_SHEETS_HEADING: list[Row] = [("heading", "The sheets you fill in", "")]

_RULES: list[Row] = [
    (
        "heading",
        "The rules language: one statement per cell of Rules!B",
        "Keywords in capitals (any case works); names in double quotes; column names bare; "
        "percentages like 60%; -- starts a comment.",
    ),
    ("heading", "ALLOCATE — spread a pool's cost", "What it does to the numbers"),
    (
        "example",
        'ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcount',
        "Each billable department gets Service Desk cost × its Headcount ÷ total Headcount. "
        "Any numeric column of Departments can be the driver.",
    ),
    (
        "example",
        'ALLOCATE "Data Center" TO DEPARTMENTS BY USAGE "Server Hours"',
        "Shares are each department's Server Hours in the period (from Usage).",
    ),
    (
        "example",
        'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "General"',
        "Every General-fund department pays the same share. WHERE filters departments by "
        "Departments columns and usage rows by Usage columns.",
    ),
    (
        "example",
        'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIN", 10% "HR"',
        "Fixed shares; they must add up to exactly 100%.",
    ),
    (
        "example",
        'ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 30% "Network"',
        "Step-down: pool to pools. The receiving pools then spread it with their own rules; "
        "costloop runs pool-to-pool rules first, whatever the row order.",
    ),
    (
        "example",
        'ALLOCATE "IT Management" TO POOLS "Data Center", "Network", "Service Desk" BY COST',
        "Shares are the receiving pools' own direct cost. TO POOLS with no names means every "
        "other pool.",
    ),
    (
        "example",
        'ALLOCATE "Administration" TO POOLS "Maintenance" AND DEPARTMENTS BY USAGE "Staff Hours"',
        "Pools and departments receive together. A Usage row whose Department is a pool's "
        "name counts for that pool.",
    ),
    (
        "example",
        'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS '
        'BY USAGE "HR Tickets" RECIPROCAL',
        "Two pools that serve each other: mark every rule in the loop RECIPROCAL and costloop "
        "solves them together (reciprocal method). Without it a loop is an error.",
    ),
    (
        "example",
        'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE EVENLY',
        "When nobody has usage in the period: FAIL (default, an error), EVENLY (even split) "
        "or KEEP (cost stays in the pool as unallocated and is reported).",
    ),
    (
        "example",
        'ALLOCATE "Cloud" TO DEPARTMENTS BY USAGE "vCPU-Hours" WHERE Fund IN '
        '("General", "Grants") AND Headcount >= 50',
        "Conditions: = <> < <= > >= and IN (...); join several with AND.",
    ),
    ("heading", "CHARGE — bill usage at a rate", ""),
    (
        "example",
        'CHARGE "Storage" FOR "GB-Month" AT 0.12',
        "Each department pays its GB-Month × 0.12, rounded half-up to the cent; the pool is "
        "credited with what it recovers.",
    ),
    (
        "example",
        'CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD',
        "The rate comes from the Rates sheet: the row whose EffectiveFrom is the latest not "
        "after the period (tiered rows by TierFrom/TierTo).",
    ),
    (
        "example",
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04, '
        "ABOVE AT 0.03",
        "Graduated per department per month: the first 1,000 at 0.05, the next 9,000 at 0.04, "
        "everything above 10,000 at 0.03.",
    ),
    (
        "example",
        'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service IN ("EC2", "S3")',
        "Pass-through with a 5% markup, only for usage rows whose Service is EC2 or S3.",
    ),
    ("heading", "FORECAST — re-forecast the rest of the fiscal year", ""),
    (
        "example",
        'FORECAST USAGE "vCPU-Hours" BY TREND OVER 6 PERIODS',
        "A least-squares line through the last 6 actual periods, extended to year end.",
    ),
    (
        "example",
        'FORECAST USAGE "GB-Month" BY GROWTH 2% PER PERIOD',
        "Compounds 2% a period from the last actual period.",
    ),
    ("example", 'FORECAST COST "Data Center" BY PLAN', "Uses the Budget for the remaining months."),
    (
        "example",
        'FORECAST USAGE "VM-Month" BY RUN RATE OVER 3 PERIODS',
        "The average of the last 3 actual periods. Without a rule: usage by RUN RATE over 3, "
        "cost by PLAN.",
    ),
    (
        "text",
        "Break-even rates",
        "For every charged pool the Forecast sheet proposes a RATE: (forecast remaining cost − "
        "over-recovery to date + under-recovery to date) ÷ forecast remaining volume.",
    ),
    ("heading", "Common mistakes and what costloop says", ""),
    (
        "mistake",
        'ALLOCATE "Cloud" TO DEPARTMENTS BY usgae "vCPU-Hours"',
        'Rules!B7, character 36: unknown driver "usgae" — did you mean USAGE?',
    ),
    (
        "mistake",
        'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIN"',
        "Rules!B9: shares add up to 90%, not 100%",
    ),
    (
        "mistake",
        'ALLOCATE "HR Services" TO POOLS "IT Management" BY COST  (and back again)',
        'cycle between pools "HR Services" -> "IT Management" -> "HR Services" (mark every '
        "rule in it RECIPROCAL to solve it)",
    ),
    (
        "mistake",
        'ALLOCATE "Netwrok" TO DEPARTMENTS BY Headcount',
        'Rules!B4, character 10: unknown pool "Netwrok" — did you mean "Network"? (a pool '
        "must appear in Budget or Actuals)",
    ),
    (
        "mistake",
        "ALLOCATE Data Center TO DEPARTMENTS BY Headcount",
        'Rules!B7, character 10: the pool name goes in double quotes: write "Data Center"',
    ),
    (
        "text",
        "Charged and allocated",
        "Do not both CHARGE a pool and ALLOCATE it to departments: its cost would be "
        "recovered twice.",
    ),
]

OUTPUT_TEXTS: dict[str, str] = {
    sheets.BILLS: "One line per department, pool and rule for the billed period.",
    sheets.JOURNAL: (
        "Balanced entries per department: expense in its fund, revenue (or a "
        "reimbursement, for IT-fund departments) in the IT fund, due to/from between funds."
    ),
    sheets.RECOVERY: (
        "Per pool and period of the fiscal year: cost, recovered, over/under, "
        "recovery %, unallocated."
    ),
    sheets.FORECAST: "Usage, cost and break-even rates for the rest of the fiscal year.",
    sheets.VARIANCE: (
        "Plan against actual for the fiscal year to date: each pool's cost (Budget "
        "against Actuals) and each metric's usage (Budget Volume against Usage), with the "
        "variance, variance % and a status such as OVER BUDGET."
    ),
    sheets.COMPLIANCE: (
        "Cost-recovery compliance for the fiscal year to date (2 CFR 200 Appendix V): "
        "each billed pool's cost against revenue, the fund's reserve against its limit "
        "(Settings ReserveDays, 60 days by default), and any department billed a "
        "different rate for the same service."
    ),
    sheets.RULE_CHECK: "Every rule with OK / WARNING / ERROR / DISABLED and its message.",
    sheets.RUN_LOG: "What ran, on which input, and every tie-out check with its result.",
}
"""What each sheet costloop writes holds; a test checks these are every output sheet."""

_OUTPUTS: list[Row] = [
    ("heading", "The sheets costloop writes (replaced whole on every run)", ""),
    *(("text", sheet, text) for sheet, text in OUTPUT_TEXTS.items()),
]


def leaf_commands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """Every command that runs something (``costloop run``, ``costloop addin build``), with
    its help text, in the order the parser registers them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                nested = list(leaf_commands(sub))
                yield from nested or [(sub, helps.get(name, ""))]


def _arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


def _metavar(action: argparse.Action) -> str:
    return action.metavar if isinstance(action.metavar, str) else action.dest.upper()


def _usage_part(action: argparse.Action) -> str:
    """One argument as a usage line shows it: ``BOOK``, ``[DIR]``, ``[--period PERIOD]``."""
    if not action.option_strings:
        name = _metavar(action)
        return {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}.get(
            action.nargs, name
        )
    flag = max(action.option_strings, key=len)  # --period rather than -p
    if action.nargs == 0:
        text = flag
    elif action.nargs == "?":
        text = f"{flag} [{_metavar(action)}]"
    else:
        text = f"{flag} {_metavar(action)}"
    return text if action.required else f"[{text}]"


def command_usage(parser: argparse.ArgumentParser) -> str:
    """``costloop run BOOK [--period PERIOD] ...``, built from the parser's own arguments.

    Built here rather than with argparse's formatter, which wraps at the terminal width:
    the workbooks must come out byte-identical wherever they are generated.
    """
    return " ".join([parser.prog, *(_usage_part(a) for a in _arguments(parser))])


def _argument_help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:  # argparse's own placeholders, e.g. %(default)s
        text = text % {**vars(action), "prog": prog}
    return f"{_usage_part(action).strip('[]')}: {text}"


def command_rows(parser: argparse.ArgumentParser | None = None) -> list[Row]:
    """A row per command of the real command line: usage in A, what it does and each
    argument's help in B."""
    if parser is None:
        from costloop.cli import _parser  # the parser `costloop` itself runs

        parser = _parser()
    rows: list[Row] = [
        (
            "heading",
            "The command line (in a terminal where costloop is installed)",
            "What it does. `costloop COMMAND --help` shows the same.",
        )
    ]
    for sub, help_text in leaf_commands(parser):
        lines = [help_text[:1].upper() + help_text[1:].rstrip(".") + "."] if help_text else []
        lines += [_argument_help(a, sub.prog) for a in _arguments(sub) if a.help]
        rows.append(("command", command_usage(sub), "\n".join(lines)))
    rows.append(
        (
            "text",
            "Exit codes",
            "0: done (warnings, if any, are listed). 1: the workbook has errors (see Rule "
            "Check); nothing but Rule Check and Run Log was written. 2: the command itself is "
            "wrong (an unknown option, a missing file); nothing was written.",
        )
    )
    return rows


def sheet_rows() -> list[Row]:
    """Every row of the Instructions sheet, in order."""
    rows = list(_INTRO) + list(_SHEETS_HEADING)
    for layout in INPUT_LAYOUTS:
        required = ", ".join(c.header for c in layout.columns if c.required)
        rows.append(("text", layout.name, f"{layout.purpose} Required columns: {required}."))
    rows += _RULES + _OUTPUTS + command_rows()
    return rows
