"""The Settings sheet: each key matched like a header, its value typed into `Settings`.

A blank value keeps the default; an unknown key is kept in ``raw`` and, when it
looks like a known one, warned about with a did-you-mean; a key set twice is an
error at its second row.
"""

from __future__ import annotations

from costloop.engine.model.book import Settings
from costloop.engine.model.currency import minor_unit, normalize_code
from costloop.engine.model.periods import parse_period
from costloop.engine.model.values import cell_number, cell_text, is_blank, shown
from costloop.engine.read.cell_checks import compact, is_unreadable, unreadable_problem
from costloop.engine.read.grid import InputSheet
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key
from costloop.rules.suggest import closest, did_you_mean

_SETTING_SPELLINGS = {
    name_key(k): k
    for k in (
        "Organization", "Currency", "Period", "FiscalYearStart", "CostBasis", "ITFund",
        "RevenueAccount", "ExpenseAccount", "ReimbursementAccount", "DueFromAccount",
        "DueToAccount", "ReserveDays", "EmailFrom", "EmailSubject", "EmailBody",
        "UsageSource", "UsageDepartmentTag", "UsageDateFormat", "UsageCost",
        "UntaggedDepartment", "DisputeDays",
    )
}  # fmt: skip
"""Known setting key -> its spelling in the contract."""


_SETTING_KEYS = {compact(key): key for key in _SETTING_SPELLINGS}


_SETTING_FIELDS = {
    "organization": "organization",
    "itfund": "it_fund",
    "revenueaccount": "revenue_account",
    "expenseaccount": "expense_account",
    "reimbursementaccount": "reimbursement_account",
    "duefromaccount": "due_from_account",
    "duetoaccount": "due_to_account",
    "emailfrom": "email_from",
    "emailsubject": "email_subject",
    "emailbody": "email_body",
}


_SETTINGS_READ_ELSEWHERE = frozenset(
    (
        "usagesource", "usagedepartmenttag", "usagedateformat", "usagecost",
        "untaggeddepartment", "disputedays",
    )
)  # fmt: skip
"""Known keys kept only as written (``Settings.raw``): engine/read/usage_source.py and
engine/read/disputes.py read them."""


def read_settings(sheet: InputSheet | None, problems: list[Problem]) -> Settings:
    if sheet is None or not sheet.usable:
        return Settings()
    typed: dict[str, object] = {}
    raw: dict[str, str] = {}
    cells: dict[str, str] = {}
    first_cell: dict[str, str] = {}
    keys, values = sheet.cells["key"], sheet.cells["value"]

    def problem(where: str, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append(Problem(Reason.BAD_SETTING, severity, where, message))

    for key_cell, value, row in zip(keys, values, sheet.rows, strict=True):
        key_where, where = sheet.where("key", int(row)), sheet.where("value", int(row))
        if is_unreadable(key_cell) or is_unreadable(value):
            bad = key_where if is_unreadable(key_cell) else where
            unread = key_cell if is_unreadable(key_cell) else value
            problems.append(unreadable_problem(bad, unread, Severity.ERROR))
            continue
        written = cell_text(key_cell)
        if not written:
            continue
        key = _SETTING_KEYS.get(compact(name_key(written)), name_key(written))
        if key in first_cell:
            problem(
                key_where,
                f"the setting {written} is set twice (first in {first_cell[key]}); "
                f"delete one of the rows",
            )
            continue
        first_cell[key] = key_where
        raw[key] = cell_text(value)
        cells[key] = where
        if key not in _SETTING_SPELLINGS:
            guess = closest(written, _SETTING_SPELLINGS.values(), cutoff=0.8)
            if guess:
                problem(
                    key_where,
                    f'costloop does not know the setting "{written}"; {did_you_mean(guess)}',
                    Severity.WARNING,
                )
            continue
        if is_blank(value):
            continue  # a blank value keeps the default
        message = _set(typed, key, value)
        if message:
            problem(where, message)
    typed["raw"] = raw
    typed["cells"] = cells
    return Settings(**typed)


def _set(typed: dict[str, object], key: str, value: object) -> str | None:
    """Type one known setting into ``typed``; a message if its value is wrong."""
    if key in _SETTINGS_READ_ELSEWHERE:
        return None
    if key in _SETTING_FIELDS:
        typed[_SETTING_FIELDS[key]] = cell_text(value)
        return None
    if key == "currency":
        code = normalize_code(cell_text(value))
        places = minor_unit(code)
        if places is None:
            return f"Currency must be an ISO 4217 code such as USD, EUR or JPY, got {shown(value)}"
        typed["currency"], typed["minor_unit"] = code, places
        return None
    if key == "period":
        period = parse_period(value)
        if period is None:
            return f"Period must be a month as YYYY-MM text or a date, got {shown(value)}"
        typed["period"] = period
        return None
    if key == "costbasis":
        basis = cell_text(value).upper()
        if basis not in ("ACTUAL", "BUDGET"):
            return f"CostBasis must be ACTUAL or BUDGET, got {shown(value)}"
        typed["cost_basis"] = basis
        return None
    number = cell_number(value)
    whole = number is not None and number == number.to_integral_value()
    if key == "fiscalyearstart":
        if not whole or not 1 <= number <= 12:
            return f"FiscalYearStart must be a month number 1-12, got {shown(value)}"
        typed["fiscal_year_start"] = int(number)
        return None
    if key == "reservedays":
        if not whole or number <= 0:
            return f"ReserveDays must be a whole number of days above 0, got {shown(value)}"
        typed["reserve_days"] = int(number)
        return None
    raise AssertionError(f"setting {key} has no typing")  # pragma: no cover
