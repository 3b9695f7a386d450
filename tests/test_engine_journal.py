"""Journal entries (interfund and intra-fund, exact lines) and the tie-out checks."""

from decimal import Decimal

import pandas as pd
from engine_fixtures import allocate, charge, evenly, make_book, plan, shares

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.execute import bills_frame, execute, run_period
from costloop.engine.chargeback.journal import build_journal
from costloop.engine.chargeback.recovery import build_pool_flows, build_recovery
from costloop.engine.chargeback.tieouts import run_tieouts
from costloop.engine.model.book import Settings
from costloop.engine.model.sheets import JOURNAL_COLUMNS
from costloop.problems import Reason

D = Decimal
P = "2026-03"
SETTINGS = Settings(fiscal_year_start=3, cost_basis="BUDGET", it_fund="it")
DEPS = [("ADM", "General"), ("FIN", "Parks"), ("HR", "IT")]


def journal_rows(result):
    return [
        tuple(None if pd.isna(v) else v for v in row)
        for row in result.journal[JOURNAL_COLUMNS].itertuples(index=False)
    ]


def test_interfund_and_intra_fund_entries_line_by_line():
    # ERP 100.00 by 60/30/10 -> ADM 60.00 (General), FIN 30.00 (Parks), HR 10.00 (IT fund).
    # Storage charged to ADM: 4 GB x 2.50 = 10.00.
    book = make_book(
        DEPS,
        budget=[(P, "ERP", 100), (P, "Storage", 10)],
        usage=[(P, "ADM", "GB", 4)],
        settings=SETTINGS,
    )
    steps = plan(
        allocate("E", "ERP", shares((60, "ADM"), (30, "FIN"), (10, "HR"))),
        charges=[charge("S", "Storage", "GB", "2.50")],
    )
    result = execute(book, steps, P)
    assert all(t.passed for t in result.tieouts)
    erp = "Chargeback 2026-03 ERP — 60% share"
    sto = "Chargeback 2026-03 Storage — GB 4 @ 2.5"
    e1, e2, e3 = "CB-2026-03-0001", "CB-2026-03-0002", "CB-2026-03-0003"
    assert journal_rows(result) == [
        # ADM in General: debit expense / credit due-to in General; due-from / revenue in IT
        (e1, P, "General", "6400", "ADM", "ERP", D("60.00"), None, erp, "E"),
        (e1, P, "General", "2300", "ADM", "ERP", None, D("60.00"), erp, "E"),
        (e1, P, "it", "1300", "ADM", "ERP", D("60.00"), None, erp, "E"),
        (e1, P, "it", "4400", "ADM", "ERP", None, D("60.00"), erp, "E"),
        (e1, P, "General", "6400", "ADM", "Storage", D("10.00"), None, sto, "S"),
        (e1, P, "General", "2300", "ADM", "Storage", None, D("10.00"), sto, "S"),
        (e1, P, "it", "1300", "ADM", "Storage", D("10.00"), None, sto, "S"),
        (e1, P, "it", "4400", "ADM", "Storage", None, D("10.00"), sto, "S"),
        (
            e2,
            P,
            "Parks",
            "6400",
            "FIN",
            "ERP",
            D("30.00"),
            None,
            "Chargeback 2026-03 ERP — 30% share",
            "E",
        ),
        (
            e2,
            P,
            "Parks",
            "2300",
            "FIN",
            "ERP",
            None,
            D("30.00"),
            "Chargeback 2026-03 ERP — 30% share",
            "E",
        ),
        (
            e2,
            P,
            "it",
            "1300",
            "FIN",
            "ERP",
            D("30.00"),
            None,
            "Chargeback 2026-03 ERP — 30% share",
            "E",
        ),
        (
            e2,
            P,
            "it",
            "4400",
            "FIN",
            "ERP",
            None,
            D("30.00"),
            "Chargeback 2026-03 ERP — 30% share",
            "E",
        ),
        # HR is in the IT fund (ITFund "it" matches "IT", any case): expense / reimbursement
        (
            e3,
            P,
            "IT",
            "6400",
            "HR",
            "ERP",
            D("10.00"),
            None,
            "Chargeback 2026-03 ERP — 10% share",
            "E",
        ),
        (
            e3,
            P,
            "IT",
            "6499",
            "HR",
            "ERP",
            None,
            D("10.00"),
            "Chargeback 2026-03 ERP — 10% share",
            "E",
        ),
    ]
    assert [t.name for t in result.tieouts] == [
        "Allocations tie out",
        "Journal balances",
        "Revenue equals bills",
        "Pools tie out",
    ]


def test_entry_numbers_follow_department_name_order_not_billing():
    deps = [("zed", "General"), ("Alpha", "General"), ("mid", "General")]
    book = make_book(deps, budget=[(P, "ERP", 10)], settings=SETTINGS)
    result = execute(book, plan(allocate("E", "ERP", shares((100, "Zed")))), P)
    assert set(result.journal["Entry"]) == {"CB-2026-03-0003"}
    assert set(result.journal["Department"]) == {"zed"}


def test_a_tampered_journal_or_bill_fails_the_tie_outs():
    book = make_book(DEPS, budget=[(P, "ERP", 100)], settings=SETTINGS)
    steps = plan(allocate("E", "ERP", evenly()))
    drivers = Drivers(book)
    run = run_period(drivers, steps, P)
    bills = bills_frame(drivers, run)
    journal = build_journal(drivers, bills, P)
    recovery = build_recovery(build_pool_flows(drivers, [run]))
    tieouts, problems = run_tieouts(drivers, run, bills, journal, recovery)
    assert all(t.passed for t in tieouts) and not problems
    assert tieouts[2].detail == "credited = billed = recovered = 100.00"

    bad_journal = journal.copy()
    bad_journal.loc[0, "Debit"] = D("33.35")
    tieouts, problems = run_tieouts(drivers, run, bills, bad_journal, recovery)
    assert [t.passed for t in tieouts] == [True, False, True, True]
    assert [p.code for p in problems] == [Reason.UNBALANCED]
    assert "CB-2026-03-0001" in problems[0].message

    # A bill line altered on its way to the sheet: the journal, made from the Bills,
    # agrees with them; Recovery, made from what the rule credited its pool, does not.
    bad_bills = bills.copy()
    bad_bills.loc[2, "Amount"] = D("33.32")
    bad_journal = build_journal(drivers, bad_bills, P)
    tieouts, problems = run_tieouts(drivers, run, bad_bills, bad_journal, recovery)
    assert [t.passed for t in tieouts] == [False, True, False, False]
    assert {p.code for p in problems} == {Reason.TIE_OUT}
    assert "E: bill lines 99.99" in tieouts[0].detail
    assert tieouts[2].detail == "Bills total 99.99 ≠ Recovery's 100.00 recovered in 2026-03"

    # A Recovery row gone wrong: only the revenue check sees it.
    bad_recovery = recovery.copy()
    bad_recovery.loc[0, "Recovered"] = D("100.01")
    tieouts, problems = run_tieouts(drivers, run, bills, journal, bad_recovery)
    assert [t.passed for t in tieouts] == [True, True, False, True]
    assert [(p.where, p.message) for p in problems] == [
        (
            "Bills",
            "tie-out failed: Revenue equals bills: Bills total 100.00 ≠ Recovery's 100.01 "
            "recovered in 2026-03",
        )
    ]


def test_negative_amount_posts_as_a_credit():
    # a refund in the pool's cost: -30.00 evenly -> -10.00 each, debit and credit swap
    book = make_book(DEPS, budget=[(P, "ERP", -30)], settings=SETTINGS)
    result = execute(book, plan(allocate("E", "ERP", evenly())), P)
    assert all(t.passed for t in result.tieouts)
    adm = result.journal[result.journal["Department"] == "ADM"]
    assert list(adm["Account"]) == ["6400", "2300", "1300", "4400"]
    assert adm["Credit"].iat[0] == D("10.00") and pd.isna(adm["Debit"].iat[0])
    assert adm["Debit"].iat[3] == D("10.00")
