"""Departments, Budget, Actuals, Usage, Rates and Rules: each sheet's columns as the
contract types them (docs/contract.md#input-sheets), through `columns.CheckedColumns`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import pandas as pd

from costloop.engine.model.values import cell_text, is_blank
from costloop.engine.read.cell_checks import map_unique
from costloop.engine.read.columns import CheckedColumns, frame_of
from costloop.engine.read.grid import InputSheet
from costloop.engine.read.rates import RatesSheet, rate_schedule_problems
from costloop.engine.workbook.host import column_letter
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import RuleCell, name_key
from costloop.rules.suggest import closest, did_you_mean


def read_departments(sheet: InputSheet, problems: list[Problem]) -> pd.DataFrame:
    checked = CheckedColumns(sheet, problems)
    names = checked.name("department", "type the department's code or name")
    keys = map_unique(names, name_key)
    filled = names != ""
    first_seen: dict[str, int] = {}
    for i in np.flatnonzero(filled & pd.Series(keys).duplicated(keep=False).to_numpy()):
        key = keys[i]
        if key not in first_seen:
            first_seen[key] = i
            continue
        first = sheet.where("department", int(sheet.rows[first_seen[key]]))
        problems.append(
            Problem(
                Reason.DUPLICATE_DEPARTMENT,
                Severity.ERROR,
                sheet.where("department", int(sheet.rows[i])),
                f'department "{names[i]}" is listed twice (first in {first}); '
                f"delete one row or give it another name",
            )
        )
        checked.bad[i] = True
    columns = {
        "Department": names,
        "Fund": checked.name("fund", "type the department's fund code"),
        "Name": checked.text("name"),
        "Email": checked.text("email"),
        "Parent": checked.text("parent"),
        "Billable": checked.yes_no("billable"),
    }
    if sheet.has("portal group"):
        # The portal's single sign-on groups (portal/groups.py): text, never a driver,
        # even when a group is a number such as 4400.
        columns["Portal Group"] = checked.text("portal group")
    frame = frame_of(checked, columns)
    frame["_key"] = map_unique(frame["Department"].to_numpy(dtype=object), name_key)
    return frame


def read_costs(sheet: InputSheet | None, places: int, problems: list[Problem]) -> pd.DataFrame:
    """Budget or Actuals: pool cost per period, in integer minor units."""
    if sheet is None:
        return _empty_actuals()
    checked = CheckedColumns(sheet, problems)
    columns = {
        "Period": checked.period("period"),
        "Pool": checked.name("pool", "type the cost pool's name"),
        "Cents": checked.cents("amount", places),
    }
    if sheet.logical == "Budget":
        columns["Metric"] = checked.text("metric")
        columns["Volume"] = checked.number("volume", required=False, non_negative=True)
        columns["Tower"] = checked.text("tower")
        columns["Service"] = checked.text("service")
    else:
        columns["Account"] = checked.text("account")
        columns["Description"] = checked.text("description")
    frame = frame_of(checked, columns)
    frame["Cents"] = frame["Cents"].astype(np.int64)
    frame["_key"] = map_unique(frame["Pool"].to_numpy(dtype=object), name_key)
    return frame


def _empty(columns: dict[str, object]) -> pd.DataFrame:
    """An absent optional sheet: no rows, the columns and dtypes of a read one."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _empty_actuals() -> pd.DataFrame:
    text = str
    return _empty(
        {
            "Period": text,
            "Pool": text,
            "Cents": np.int64,
            "Account": text,
            "Description": text,
            "_row": np.int64,
            "_key": text,
        }
    )


def read_usage(
    sheet: InputSheet, receivers: dict[str, str] | None, problems: list[Problem]
) -> pd.DataFrame:
    """Usage; ``receivers`` (department and pool key -> spelling) None skips the name check."""
    checked = CheckedColumns(sheet, problems)
    departments = checked.name("department", "type who used it (a department or a pool)")
    columns = {
        "Period": checked.period("period"),
        "Department": departments,
        "Metric": checked.name("metric", "type the metric's name, e.g. vCPU-Hours"),
        "Quantity": checked.number("quantity", required=True, non_negative=True),
        "Service": checked.text("service"),
        "Reference": checked.text("reference"),
    }
    keys = map_unique(departments, name_key)
    if receivers is not None:
        known = pd.Series(keys, dtype=object).isin(receivers.keys()).to_numpy()
        unknown = (departments != "") & ~known

        # One suggestion per distinct name, however many rows carry it.
        suggest = functools.cache(lambda name: unknown_receiver(name, receivers.values()))

        def message(value: object) -> str:
            return suggest(cell_text(value))

        checked._report(unknown, "department", message, Reason.UNKNOWN_DEPARTMENT)
    frame = frame_of(checked, columns)
    frame["_key"] = pd.Series(keys[~checked.bad], index=frame.index, dtype=object)
    return frame


def unknown_receiver(name: str, receivers: Iterable[str]) -> str:
    """The message for a Usage department that is neither a department nor a pool."""
    guess = closest(name, receivers)
    fix = did_you_mean(guess) if guess else "add it to Departments or fix the name"
    return f'"{name}" is not a department or a cost pool; {fix}'


def read_rates(sheet: InputSheet | None, problems: list[Problem]) -> pd.DataFrame:
    if sheet is None:
        return _empty(
            {
                "Metric": str,
                "Rate": object,
                "Pool": str,
                "Unit": str,
                "TierFrom": np.float64,
                "TierTo": np.float64,
                "EffectiveFrom": object,
                "_row": np.int64,
            }
        )
    checked = CheckedColumns(sheet, problems)
    columns = {
        "Metric": checked.name("metric", "type the metric the rate prices"),
        "Rate": checked.decimal("rate", non_negative=True),
        "Pool": checked.text("pool"),
        "Unit": checked.text("unit"),
        "TierFrom": checked.number("tierfrom", required=False, non_negative=True),
        "TierTo": checked.number("tierto", required=False, non_negative=True),
        "EffectiveFrom": checked.period("effectivefrom", required=False),
    }
    frame = frame_of(checked, columns)
    # None (always in effect) must stay None, not become a NaN of a text column.
    frame["EffectiveFrom"] = pd.Series(
        list(columns["EffectiveFrom"][~checked.bad]), index=frame.index, dtype=object
    )
    frame["Rate"] = pd.Series(list(columns["Rate"][~checked.bad]), index=frame.index, dtype=object)
    # The card as a schedule (engine/read/rates.py); a row left out above leaves its metric's
    # schedules half-read, so they wait until its own error is fixed.
    left_out = {name_key(metric) for metric in columns["Metric"][checked.bad]}
    letters = {key: letter for key, (_, letter, _) in sheet.headers.items()}
    last = column_letter(max(index for _, _, index in sheet.headers.values()))
    problems += rate_schedule_problems(frame, RatesSheet(sheet.actual, letters, last), left_out)
    return frame


def read_rules(sheet: InputSheet, problems: list[Problem]) -> list[RuleCell]:
    checked = CheckedColumns(sheet, problems)
    enabled = checked.yes_no("enabled")
    notes = checked.text("note")
    rules: list[RuleCell] = []
    ids, texts = sheet.cells["id"], sheet.cells["rule"]
    for i, (rule_id, text) in enumerate(zip(ids, texts, strict=True)):
        if checked.errors["rule"][i] or is_blank(text):
            continue  # an ID without a rule is a placeholder row
        row = int(sheet.rows[i])
        id_where = sheet.where("id", row)
        if checked.errors["id"][i]:
            continue
        if is_blank(rule_id):
            problems.append(
                Problem(
                    Reason.MISSING_ID,
                    Severity.ERROR,
                    id_where,
                    f"the rule in {sheet.where('rule', row).split('!')[1]} has no ID; "
                    f"type a unique ID here (e.g. R{row - 1})",
                )
            )
            continue
        rules.append(
            RuleCell(
                rule_id=cell_text(rule_id),
                where=sheet.where("rule", row),
                # The parser's spans index into this text: keep it exactly as read.
                text=text if isinstance(text, str) else cell_text(text),
                enabled=bool(enabled[i]),
                note=str(notes[i]),
                id_where=id_where,
            )
        )
    return rules
