"""The committed template and demo workbooks: up to date, complete and consistent."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import openpyxl
import pytest

import costloop.rules as rules_pkg
from costloop.engine.chargeback.execute import execute
from costloop.engine.itfm.forecast import forecast
from costloop.engine.pipeline.run import run_workbook
from costloop.engine.read.names import names_from_book
from costloop.engine.read.reader import read_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.rules import check, order, parse_rules
from costloop.rules.ast import RuleCell, name_key
from costloop.workbooks import demo_data, generate

WORKBOOKS = Path(generate.__file__).resolve().parent

# docs/contract.md#input-sheets, written out here (not imported) so the layout cannot drift.
CONTRACT_REQUIRED = {
    "Settings": ["Key", "Value"],
    "Departments": ["Department", "Fund"],
    "Budget": ["Period", "Pool", "Amount"],
    "Actuals": ["Period", "Pool", "Amount"],
    "Usage": ["Period", "Department", "Metric", "Quantity"],
    "Rates": ["Metric", "Rate"],
    "Rules": ["ID", "Rule"],
}
CONTRACT_OPTIONAL = {
    "Departments": ["Name", "Email", "Parent", "Billable"],
    "Budget": ["Metric", "Volume", "Tower", "Service"],
    "Actuals": ["Account", "Description"],
    "Usage": ["Service", "Reference"],
    "Rates": ["Pool", "Unit", "TierFrom", "TierTo", "EffectiveFrom"],
    "Rules": ["Enabled", "Note"],
}
SETTING_KEYS = [
    "Organization", "Currency", "Period", "FiscalYearStart", "CostBasis", "ITFund",
    "RevenueAccount", "ExpenseAccount", "ReimbursementAccount", "DueFromAccount",
    "DueToAccount", "ReserveDays",
]  # fmt: skip


# --- helpers ------------------------------------------------------------------


def snapshot(path: Path) -> dict:
    """Everything a user sees of a workbook: sheets, values, formats, validations, names."""
    wb = openpyxl.load_workbook(path)
    out: dict = {"sheets": wb.sheetnames, "names": sorted(wb.defined_names.keys())}
    for ws in wb.worksheets:
        out[ws.title] = {
            "cells": [
                [(c.value, c.number_format, bool(c.font.b)) for c in row] for row in ws.iter_rows()
            ],
            "validations": sorted(
                (str(dv.sqref), dv.type, dv.formula1, dv.formula2, dv.operator)
                for dv in ws.data_validations.dataValidation
            ),
            "freeze": ws.freeze_panes,
            "widths": {k: d.width for k, d in ws.column_dimensions.items()},
        }
    return out


def records(path: Path, sheet: str) -> list[dict]:
    ws = openpyxl.load_workbook(path, read_only=True)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r, strict=False)) for r in rows[1:] if any(v is not None for v in r)]


@pytest.fixture(scope="module")
def demo() -> dict[str, list[dict]]:
    return {s: records(WORKBOOKS / "demo.xlsx", s) for s in CONTRACT_REQUIRED}


@pytest.fixture(scope="module")
def rule_texts(demo) -> list[str]:
    return [r["Rule"] for r in demo["Rules"] if r.get("Enabled", "Y") != "N"]


# --- the committed files are the generator's output ---------------------------------


@pytest.mark.parametrize("name", ["template.xlsx", "demo.xlsx", "demo-closed.xlsx"])
def test_committed_workbook_matches_generator(tmp_path, name):
    build = {
        "template.xlsx": generate.build_template,
        "demo.xlsx": generate.build_demo,
        "demo-closed.xlsx": generate.build_closed_demo,
    }[name]
    fresh = build(tmp_path / name)
    assert snapshot(WORKBOOKS / name) == snapshot(fresh), (
        f"workbooks/{name} is stale: run `python -m costloop.workbooks.generate`"
    )


def test_generation_is_byte_deterministic(tmp_path):
    a = generate.build_demo(tmp_path / "a.xlsx").read_bytes()
    b = generate.build_demo(tmp_path / "b.xlsx").read_bytes()
    assert a == b
    c1 = generate.build_closed_demo(tmp_path / "c1.xlsx").read_bytes()
    c2 = generate.build_closed_demo(tmp_path / "c2.xlsx").read_bytes()
    assert c1 == c2
    t1 = generate.build_template(tmp_path / "t1.xlsx").read_bytes()
    t2 = generate.build_template(tmp_path / "t2.xlsx").read_bytes()
    assert t1 == t2


def test_main_writes_both_files(tmp_path, capsys):
    assert generate.main([str(tmp_path)]) == 0
    assert (tmp_path / "template.xlsx").exists() and (tmp_path / "demo.xlsx").exists()
    assert (tmp_path / "demo-closed.xlsx").exists()
    assert "demo.xlsx" in capsys.readouterr().out


# --- the template -----------------------------------------------------------------


@pytest.mark.parametrize("book", ["template.xlsx", "demo.xlsx"])
def test_every_input_sheet_has_the_spec_headers(book):
    wb = openpyxl.load_workbook(WORKBOOKS / book)
    for sheet, required in CONTRACT_REQUIRED.items():
        assert sheet in wb.sheetnames, f"{book} lacks {sheet}"
        ws = wb[sheet]
        header = [c.value for c in ws[1] if c.value is not None]
        for col in required + CONTRACT_OPTIONAL.get(sheet, []):
            assert col in header, f"{book} {sheet} lacks column {col!r}"
        assert all(c.font.b for c in ws[1] if c.value is not None), f"{sheet} header not bold"
        assert ws.freeze_panes == "A2", f"{sheet} header row not frozen"


def test_template_settings_lists_every_key_with_a_meaning():
    rows = records(WORKBOOKS / "template.xlsx", "Settings")
    keys = [r["Key"] for r in rows]
    for key in SETTING_KEYS:
        assert key in keys
    by_key = {r["Key"]: r for r in rows}
    assert by_key["Currency"]["Value"] == "USD"
    assert by_key["FiscalYearStart"]["Value"] == 7
    assert by_key["CostBasis"]["Value"] == "ACTUAL"
    assert by_key["RevenueAccount"]["Value"] == "4400"
    assert all(r["Meaning"] for r in rows)


def test_template_input_sheets_other_than_settings_are_empty():
    wb = openpyxl.load_workbook(WORKBOOKS / "template.xlsx")
    for sheet in CONTRACT_REQUIRED:
        if sheet != "Settings":
            assert wb[sheet].max_row == 1, f"template {sheet} has data rows"


def validations(book: str, sheet: str) -> list[tuple[str, str, str | None]]:
    ws = openpyxl.load_workbook(WORKBOOKS / book)[sheet]
    return [(str(dv.sqref), dv.type, dv.formula1) for dv in ws.data_validations.dataValidation]


@pytest.mark.parametrize("book", ["template.xlsx", "demo.xlsx"])
def test_yes_no_and_cost_basis_validation(book):
    assert any(
        t == "list" and f == '"Y,N"' and s.startswith("C2:")
        for s, t, f in validations(book, "Rules")
    )
    assert any(
        t == "list" and f == '"Y,N"' and s.startswith("E2:")
        for s, t, f in validations(book, "Departments")
    )
    settings = records(WORKBOOKS / book, "Settings")
    row = 2 + [r["Key"] for r in settings].index("CostBasis")
    assert (f"B{row}", "list", '"ACTUAL,BUDGET"') in validations(book, "Settings")


def test_instructions_teach_every_statement_form():
    ws = openpyxl.load_workbook(WORKBOOKS / "template.xlsx")["Instructions"]
    text = "\n".join(str(c.value) for row in ws.iter_rows() for c in row if c.value)
    for phrase in [
        "TO DEPARTMENTS BY Headcount", 'BY USAGE "', "EVENLY WHERE", 'BY 60% "',
        'TO POOLS BY 70%', "BY COST", "AND DEPARTMENTS", "RECIPROCAL", "IF NO USAGE EVENLY",
        "KEEP", " IN (", "AT 0.12", "AT RATE CARD", "TIERED FIRST", "ABOVE AT",
        "BY TREND OVER", "BY GROWTH", "BY PLAN", "BY RUN RATE",
        "Settings", "Departments", "Budget", "Actuals", "Usage", "Rates", "Rules",
    ]:  # fmt: skip
        assert phrase in text, f"Instructions never show {phrase!r}"


# --- the demo: every statement form -----------------------------------------------

FORMS = {
    "column driver": r'^ALLOCATE "[^"]+" TO DEPARTMENTS BY (?!USAGE|COST|\d)\w+',
    "usage driver": r'TO DEPARTMENTS BY USAGE "',
    "evenly where": r'EVENLY WHERE Fund = "General"',
    "fixed shares to departments": r'TO DEPARTMENTS BY \d+% "[^"]+"(, \d+% "[^"]+")+',
    "fixed shares to pools": r'TO POOLS BY \d+% "[^"]+"(, \d+% "[^"]+")+',
    "pools by cost": r'TO POOLS "[^"]+"(, "[^"]+")* BY COST',
    "pools and departments": r'TO POOLS "[^"]+" AND DEPARTMENTS BY USAGE',
    "if no usage evenly": r"IF NO USAGE EVENLY",
    "if no usage keep": r"IF NO USAGE KEEP",
    "reciprocal": r"RECIPROCAL$",
    "charge fixed": r'^CHARGE "[^"]+" FOR "[^"]+" AT \d+(\.\d+)?\b',
    "charge rate card": r"AT RATE CARD$",
    "charge tiered": r"TIERED FIRST \d+ AT [\d.]+(, NEXT \d+ AT [\d.]+)+, ABOVE AT [\d.]+$",
    "charge where in": r'WHERE Service IN \("[^"]+"(, "[^"]+")*\)',
    "forecast trend": r'^FORECAST (USAGE|COST) "[^"]+" BY TREND OVER \d+ PERIODS$',
    "forecast growth": r'^FORECAST USAGE "[^"]+" BY GROWTH [\d.]+% PER PERIOD$',
    "forecast plan": r'^FORECAST COST "[^"]+" BY PLAN$',
    "forecast run rate": r'^FORECAST USAGE "[^"]+" BY RUN RATE OVER \d+ PERIODS$',
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_demo_uses_statement_form(rule_texts, form):
    assert any(re.search(FORMS[form], t) for t in rule_texts), f"no demo rule shows {form}"


def test_demo_reciprocal_pair_is_a_cycle(rule_texts):
    reciprocal = [t for t in rule_texts if t.endswith("RECIPROCAL")]
    pools = {re.match(r'ALLOCATE "([^"]+)"', t).group(1) for t in reciprocal}
    assert pools == {"IT Management", "HR Services"}
    by_pool = {re.match(r'ALLOCATE "([^"]+)"', t).group(1): t for t in reciprocal}
    assert '"HR Services"' in by_pool["IT Management"].split(" TO ", 1)[1]
    assert '"IT Management"' in by_pool["HR Services"].split(" TO ", 1)[1]


def test_demo_rules_parse_and_check_without_problems():
    book = _demo_book()
    cells = [c for c in book.rules if c.enabled]
    assert len(cells) == len(book.rules) - 1  # one rule is kept but disabled
    rules, problems = rules_pkg.parse_rules(cells)
    problems += rules_pkg.check(rules, names_from_book(book), book.rules)
    plan, ordered = rules_pkg.order(rules, book.pools)
    assert [p.render() for p in problems + ordered] == []
    # Step-down: Facilities before the pools it feeds; the reciprocal pair is one step.
    steps = [[r.rule_id for r in step.rules] for step in plan.allocations]
    assert sorted(steps[0] + steps[1]) == ["R01", "R02", "R03"]
    assert ["R02", "R03"] in [sorted(s) for s in steps]


def _demo_book():
    book, problems = read_book(FileWorkbook(WORKBOOKS / "demo.xlsx"))
    assert [p.render() for p in problems] == []
    return book


@pytest.fixture(scope="module")
def demo_run():
    """The demo run through the engine: (book, plan, result, forecast frame)."""
    book = _demo_book()
    rules, problems = parse_rules([c for c in book.rules if c.enabled])
    problems += check(rules, names_from_book(book), book.rules)
    plan, ordered = order(rules, book.pools)
    assert [p.render() for p in problems + ordered] == []
    result = execute(book, plan, book.settings.period)
    frame, more = forecast(
        book, plan.forecasts, plan.charges, result.recovery, book.settings.period,
        bills=result.bills, flows=result.pool_flows,
    )  # fmt: skip
    assert [p.render() for p in result.problems + more] == []
    return book, plan, result, frame


def test_demo_runs_clean_with_every_tie_out_passing(demo_run):
    _book, _plan, result, _frame = demo_run
    assert result.tieouts and all(t.passed for t in result.tieouts), result.tieouts
    assert result.ok
    funds = set(result.journal["Fund"])
    assert {"General", "Grants", "Auxiliary", "IT"} <= funds
    # The non-billable President's office is never billed; the IT-fund units are.
    billed = set(result.bills["Department"])
    assert "PRES" not in billed and {"ITAD", "ITPM"} <= billed


def _year_to_date(result, pool: str) -> tuple[float, float]:
    rows = result.recovery[result.recovery["Pool"] == pool]
    return float(sum(rows["Cost"])), float(sum(rows["Recovered"]))


def test_demo_tells_the_recovery_story(demo_run):
    _book, _plan, result, frame = demo_run
    cost, recovered = _year_to_date(result, "Virtual Servers")
    assert recovered > cost * 1.05, "Virtual Servers should clearly over-recover"
    cost, recovered = _year_to_date(result, "Storage")
    assert recovered < cost * 0.95, "Storage should clearly under-recover"
    rates = frame[frame["Kind"] == "RATE"].set_index("Name")
    assert float(rates.loc["Virtual Servers", "Forecast"]) < 88 * 0.95  # a lower rate proposed
    storage = rates.loc["Storage"]
    assert float(storage["Forecast"]) > float(storage["Actual"]) * 1.2  # a higher rate proposed


def test_demo_cloud_trend_forecast_departs_from_plan(demo_run):
    *_, frame = demo_run
    cloud = frame[(frame["Kind"] == "USAGE") & (frame["Name"] == "vCPU-Hours")]
    assert len(cloud) == 3  # April to June 2026
    assert all("TREND" in m for m in cloud["Method"])
    for plan, fc in zip(cloud["Plan"], cloud["Forecast"], strict=True):
        assert float(fc) > float(plan) * 1.25


# --- the demo: names are consistent across sheets --------------------------------


def quoted(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', text)


def test_demo_names_are_consistent(demo, rule_texts):
    pools = {name_key(r["Pool"]) for r in demo["Budget"] + demo["Actuals"]}
    depts = {name_key(r["Department"]) for r in demo["Departments"]}
    metrics = {name_key(r["Metric"]) for r in demo["Usage"]}
    assert not pools & depts, "a name is both a pool and a department"
    for r in demo["Usage"]:
        assert name_key(r["Department"]) in depts | pools, f"unknown usage department {r}"
    for r in demo["Rates"]:
        assert name_key(r["Metric"]) in metrics
        assert name_key(r["Pool"]) in pools
    for text in rule_texts:
        kind = text.split()[0]
        names = quoted(text.split(" WHERE ")[0])
        head = name_key(names[0])
        if kind == "ALLOCATE":
            assert head in pools, text
            for n in names[1:]:
                key = name_key(n)
                usage_metric = f'USAGE "{n}"' in text
                assert key in (metrics if usage_metric else pools | depts), f"{n} in {text}"
        elif kind == "CHARGE":
            assert head in pools and name_key(names[1]) in metrics, text
        else:
            is_usage = text.split()[1] == "USAGE"
            assert head in (metrics if is_usage else pools), text


def test_demo_no_pool_is_both_charged_and_allocated_to_departments(rule_texts):
    charged = {quoted(t)[0] for t in rule_texts if t.startswith("CHARGE")}
    allocated = {
        quoted(t)[0] for t in rule_texts if t.startswith("ALLOCATE") and "DEPARTMENTS" in t
    }
    assert not charged & allocated


def test_demo_fixed_shares_add_to_100_and_name_billable_receivers(demo, rule_texts):
    billable = {r["Department"] for r in demo["Departments"] if (r.get("Billable") or "Y") == "Y"}
    pools = {r["Pool"] for r in demo["Budget"]}
    for text in rule_texts:
        shares = re.findall(r'(\d+(?:\.\d+)?)% "([^"]+)"', text)
        if not shares or "GROWTH" in text:
            continue
        assert sum(float(p) for p, _ in shares) == 100, text
        for _, name in shares:
            assert name in billable | pools, f"{name} in {text}"


def test_demo_usage_drivers_have_usage_every_billed_month(demo, rule_texts):
    billable = {r["Department"] for r in demo["Departments"] if (r.get("Billable") or "Y") == "Y"}
    pools = {r["Pool"] for r in demo["Budget"]}
    billed = sorted({r["Period"] for r in demo["Usage"]})
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for r in demo["Usage"]:
        if r["Department"] in billable | pools:
            totals[(r["Metric"], r["Period"])] += float(r["Quantity"])
    for text in rule_texts:
        m = re.search(r'BY USAGE "([^"]+)"', text)
        if not m or "IF NO USAGE EVENLY" in text or "IF NO USAGE KEEP" in text:
            continue
        for period in billed:
            assert totals[(m.group(1), period)] > 0, f"no {m.group(1)} usage in {period}"


def test_demo_periods_cover_the_fiscal_year(demo):
    settings = {r["Key"]: r["Value"] for r in demo["Settings"]}
    assert settings["Period"] == "2026-03" and settings["FiscalYearStart"] == 7
    assert settings["Organization"] == "State University — Central IT"
    budget_periods = sorted({r["Period"] for r in demo["Budget"]})
    assert budget_periods == demo_data.FISCAL_PERIODS
    assert sorted({r["Period"] for r in demo["Usage"]}) == demo_data.BILLED_PERIODS
    assert sorted({r["Period"] for r in demo["Actuals"]}) == demo_data.BILLED_PERIODS
    pools = {r["Pool"] for r in demo["Budget"]}
    for period in budget_periods:
        assert {r["Pool"] for r in demo["Budget"] if r["Period"] == period} == pools
    charged = {quoted(r["Rule"])[0] for r in demo["Rules"] if r["Rule"].startswith("CHARGE")}
    for r in demo["Budget"]:
        if r["Pool"] in charged:
            assert r["Metric"] and r["Volume"], f"charged pool {r['Pool']} has no planned volume"


def test_demo_shape(demo):
    assert 300 <= len(demo["Usage"]) <= 5000
    depts = demo["Departments"]
    assert 20 <= len(depts) <= 30
    assert {r["Fund"] for r in depts} == {"General", "Grants", "Auxiliary", "IT"}
    assert sum(r["Billable"] == "N" for r in depts) == 1
    assert sum(r["Fund"] == "IT" for r in depts) >= 2
    rates = demo["Rates"]
    assert len({r["EffectiveFrom"] for r in rates if r["Metric"] == "VM-Month"}) == 2
    assert any(r["TierFrom"] is not None for r in rates)


def test_demo_money_is_exact_cents(demo):
    for sheet in ("Budget", "Actuals"):
        for r in demo[sheet]:
            assert round(r["Amount"] * 100) == pytest.approx(r["Amount"] * 100, abs=1e-6)


def test_demo_runs_end_to_end_through_the_pipeline(tmp_path):
    book = tmp_path / "demo.xlsx"
    book.write_bytes((WORKBOOKS / "demo.xlsx").read_bytes())
    out = tmp_path / "out.xlsx"
    outcome = run_workbook(FileWorkbook(book, output=out), label="demo.xlsx")
    assert outcome.ok, [p.render() for p in outcome.problems]
    # Only the demo's one warning: R13 leaves the Marketplace rows to Procurement.
    assert [(p.where, p.code.value) for p in outcome.problems] == [
        ("Usage!E1385, E1404, E1506", "UNBILLED_USAGE")
    ]
    log = {r["Key"]: r["Value"] for r in records(out, "Run Log")}
    assert log["Status"] == "OK"
    assert all(str(v).startswith("PASS") for k, v in log.items() if k.startswith("Tie-out"))
    checks = records(out, "Rule Check")
    # Every rule OK (or disabled); the one WARNING row is the Marketplace usage, no rule's.
    assert {r["Status"] for r in checks if r["ID"]} == {"OK", "DISABLED"}
    assert [r["Cell"] for r in checks if r["Status"] == "WARNING"] == ["Usage!E1385, E1404, E1506"]
    assert book.read_bytes() == (WORKBOOKS / "demo.xlsx").read_bytes()  # --output left it alone


@pytest.mark.parametrize("book", ["template.xlsx", "demo.xlsx"])
def test_settings_formats_fit_their_validation(book):
    # A number typed into a text-formatted cell is text, and would fail whole-number validation.
    ws = openpyxl.load_workbook(WORKBOOKS / book)["Settings"]
    formats = {ws.cell(r, 1).value: ws.cell(r, 2).number_format for r in range(2, ws.max_row + 1)}
    assert formats["FiscalYearStart"] != "@" and formats["ReserveDays"] != "@"
    assert formats["Period"] == "@" and formats["RevenueAccount"] == "@"


def test_instruction_examples_parse_and_mistakes_do_not():
    from costloop.workbooks import instructions

    rows = instructions.sheet_rows()
    examples = [a for style, a, _ in rows if style == "example"]
    mistakes = [a.split("  (")[0] for style, a, _ in rows if style == "mistake"]
    assert len(examples) >= 15 and len(mistakes) >= 4
    for n, text in enumerate(examples, start=1):
        rule, problems = rules_pkg.parse_rule(RuleCell(f"E{n}", f"Instructions!A{n}", text))
        assert rule is not None and problems == [], (text, [p.render() for p in problems])
    # A mistake either fails to parse or is caught later against the workbook's names; the
    # syntax ones (misspelt keyword, missing quotes) must fail right here.
    syntax = [t for t in mistakes if "usgae" in t or "Data Center TO" in t]
    assert len(syntax) == 2
    for text in syntax:
        _rule, problems = rules_pkg.parse_rule(RuleCell("M", "Instructions!A1", text))
        assert problems, text


# --- the Disputes sheet -------------------------------------------------------------

# docs/contract.md#input-sheets: the Disputes columns, then the optional Raised.
DISPUTE_HEADERS = ["Dispute", "Department", "Period", "Pool", "Reason", "Amount", "Status",
                   "Resolution", "Note", "Raised"]  # fmt: skip


def test_template_has_an_empty_disputes_sheet_with_the_contract_headers():
    wb = openpyxl.load_workbook(WORKBOOKS / "template.xlsx")
    ws = wb["Disputes"]
    assert [c.value for c in ws[1]] == DISPUTE_HEADERS
    assert all(c.font.b for c in ws[1]) and ws.freeze_panes == "A2"
    assert ws.max_row == 1
    lists = {(s, f) for s, t, f in validations("template.xlsx", "Disputes") if t == "list"}
    assert lists == {
        ("E2:E5000", '"Rate,Volume,Allocation,Duplicate,Other"'),
        ("G2:G5000", '"Open,Accepted,Rejected"'),
    }


def test_the_templates_empty_disputes_sheet_reads_cleanly():
    from costloop.engine.pipeline.run import prepare

    outcome = prepare(FileWorkbook(WORKBOOKS / "template.xlsx"))
    assert [p.render() for p in outcome.problems] == []
    assert outcome.disputes == []


def test_an_empty_disputes_sheet_changes_nothing_the_demo_reads(tmp_path):
    from costloop.engine.pipeline.run import prepare

    wb = generate._demo_workbook(demo_data.demo_data(), late=False)
    generate._disputes_sheet(wb)
    with_sheet = tmp_path / "demo-with-disputes.xlsx"
    generate._save(wb, with_sheet)
    plain = prepare(FileWorkbook(WORKBOOKS / "demo.xlsx"))
    empty = prepare(FileWorkbook(with_sheet))
    assert empty.disputes == [] and not any(p.is_error for p in empty.problems)
    assert [p.render() for p in empty.problems] == [p.render() for p in plain.problems]
