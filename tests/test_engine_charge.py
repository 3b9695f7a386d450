"""CHARGE: flat, tiered, rate card; half-up lines; recovery of charged pools."""

from decimal import Decimal

from engine_fixtures import amounts, charge, cond, make_book, plan

from costloop.engine.chargeback.execute import execute
from costloop.engine.model.book import Settings
from costloop.problems import Reason, Severity

D = Decimal
P = "2026-03"
FY = Settings(fiscal_year_start=1, cost_basis="BUDGET")  # fiscal year 2026-01 .. 2026-03
DEPS = [("ADM", "General"), ("FIN", "General"), ("HR", "IT")]


def run(book, the_plan, period=P):
    result = execute(book, the_plan, period)
    assert all(t.passed for t in result.tieouts), result.tieouts
    return result


def test_tiers_crossing_both_boundaries():
    # FIRST 1000 AT 0.05, NEXT 9000 AT 0.04, ABOVE AT 0.03, per department:
    # ADM 12,000: 1,000 x 0.05 = 50.00; 9,000 x 0.04 = 360.00; 2,000 x 0.03 = 60.00 -> 470.00
    # FIN 500: 500 x 0.05 = 25.00
    # HR 1,000.5: 1,000 x 0.05 = 50.00; 0.5 x 0.04 = 0.02 -> 50.02
    book = make_book(
        DEPS,
        budget=[(P, "Cloud", 600)],
        usage=[
            (P, "ADM", "vCPU-Hours", 12000),
            (P, "FIN", "vCPU-Hours", 500),
            (P, "HR", "vCPU-Hours", 1000.5),
        ],
        settings=FY,
    )
    rule = charge("C", "Cloud", "vCPU-Hours", tiers=[(1000, 0.05), (9000, 0.04), (None, 0.03)])
    result = run(book, plan(charges=[rule]))
    adm = result.bills[result.bills["Department"] == "ADM"]
    assert list(adm["Quantity"]) == [D("1000"), D("9000"), D("2000")]
    assert list(adm["Rate"]) == [D("0.05"), D("0.04"), D("0.03")]
    assert list(adm["Amount"]) == [D("50.00"), D("360.00"), D("60.00")]
    assert amounts(result) == {
        ("ADM", "Cloud"): D("470.00"),
        ("FIN", "Cloud"): D("25.00"),
        ("HR", "Cloud"): D("50.02"),
    }
    assert result.rule_amounts == {"C": D("545.02")}
    # Cloud cost 600, recovered 545.02 -> under-recovered by 54.98 (90.84%)
    rec = result.recovery.iloc[-1]
    assert (rec["Cost"], rec["Recovered"], rec["OverUnder"], rec["RecoveryPct"]) == (
        D("600.00"),
        D("545.02"),
        D("-54.98"),
        D("0.9084"),
    )
    assert rec["Unallocated"] == D("0.00")  # a charged pool's shortfall is not "unallocated"
    memo = result.journal[result.journal["Department"] == "ADM"]["Memo"].iat[0]
    assert memo == (
        "Chargeback 2026-03 Cloud — vCPU-Hours 1,000 @ 0.05; vCPU-Hours 9,000 @ 0.04; "
        "vCPU-Hours 2,000 @ 0.03"
    )


def test_flat_rate_lines_round_half_up_each():
    # 3 x 0.005 = 0.015 -> 0.02 (half up); 0.1 + 0.2 GB = 0.3 x 0.05 = 0.015 -> 0.02
    book = make_book(
        DEPS,
        budget=[(P, "Storage", 1)],
        usage=[(P, "ADM", "GB", 3), (P, "FIN", "GB", 0.1), (P, "FIN", "GB", 0.2)],
        settings=FY,
    )
    result = run(
        book,
        plan(charges=[charge("S", "Storage", "GB", "0.005"), charge("T", "Storage", "GB", "0.05")]),
    )
    bills = result.bills.set_index(["Department", "Rule"])
    assert bills.loc[("ADM", "S"), "Amount"] == D("0.02")
    assert bills.loc[("FIN", "T"), "Quantity"] == D("0.3")
    assert bills.loc[("FIN", "T"), "Amount"] == D("0.02")


def test_rate_card_picks_the_latest_effective_from_not_after_the_period():
    rates = [
        {"Metric": "VM-Month", "Rate": "10", "EffectiveFrom": "2025-07"},
        {"Metric": "vm-month", "Rate": "12", "EffectiveFrom": "2026-02"},
        {"Metric": "VM-Month", "Rate": "15", "EffectiveFrom": "2026-04"},  # not yet
        {"Metric": "VM-Month", "Rate": "99", "Pool": "Other", "EffectiveFrom": "2026-01"},
    ]
    usage = [(p, "ADM", "VM-Month", 2) for p in ("2026-01", "2026-02", "2026-03")]
    book = make_book(DEPS, budget=[(P, "Servers", 24)], usage=usage, rates=rates, settings=FY)
    result = run(book, plan(charges=[charge("V", "Servers", "VM-Month", card=True)]))
    assert list(result.bills["Rate"]) == [D("12")]
    assert list(result.bills["Amount"]) == [D("24.00")]
    # Recovery recomputes January at the rate then in force: 2 x 10 = 20.00
    rec = result.recovery.set_index("Period")
    assert rec.loc["2026-01", "Recovered"] == D("20.00")
    assert rec.loc["2026-02", "Recovered"] == D("24.00")


def test_rate_card_prefers_the_pools_own_rows_and_reads_tier_rows():
    rates = [
        {"Metric": "GB", "Rate": "1", "EffectiveFrom": "2026-01"},
        {"Metric": "GB", "Pool": "Storage", "Rate": "0.10", "TierFrom": 0, "TierTo": 100},
        {"Metric": "GB", "Pool": "Storage", "Rate": "0.05", "TierFrom": 100, "TierTo": None},
    ]
    book = make_book(
        DEPS, budget=[(P, "Storage", 20)], usage=[(P, "ADM", "GB", 250)], rates=rates, settings=FY
    )
    result = run(book, plan(charges=[charge("S", "Storage", "GB", card=True)]))
    # 100 x 0.10 = 10.00, 150 x 0.05 = 7.50
    assert list(result.bills["Amount"]) == [D("10.00"), D("7.50")]


def test_no_rate_in_force_is_an_error_naming_the_rates_sheet():
    rates = [{"Metric": "VM-Month", "Rate": "15", "EffectiveFrom": "2026-04"}]
    book = make_book(
        DEPS,
        budget=[(P, "Servers", 1)],
        usage=[(P, "ADM", "VM-Month", 2)],
        rates=rates,
        settings=FY,
    )
    result = execute(book, plan(charges=[charge("V", "Servers", "VM-Month", card=True, row=9)]), P)
    [problem] = [p for p in result.problems if p.code is Reason.NO_RATE]
    assert problem.severity is Severity.ERROR and problem.where == "Rules!B9"
    assert "Rates sheet" in problem.message and "2026-03" in problem.message
    assert not result.ok


def test_earlier_period_error_is_a_warning_naming_its_period():
    # January has no rate in force (the card starts in February): the January
    # run fails, which must not block billing March.
    rates = [{"Metric": "VM-Month", "Rate": "12", "EffectiveFrom": "2026-02"}]
    usage = [(p, "ADM", "VM-Month", 1) for p in ("2026-01", "2026-03")]
    book = make_book(DEPS, budget=[(P, "Servers", 12)], usage=usage, rates=rates, settings=FY)
    result = run(book, plan(charges=[charge("V", "Servers", "VM-Month", card=True)]))
    [problem] = [p for p in result.problems if p.code is Reason.NO_RATE]
    assert problem.severity is Severity.WARNING and "in 2026-01" in problem.message
    assert result.ok and list(result.bills["Amount"]) == [D("12.00")]


def test_charge_where_filters_usage_rows_and_skips_non_billable():
    deps = [("ADM", "General"), ("FIN", "General", {"Billable": "N"})]
    usage = [
        (P, "ADM", "AWS Cost", 100, {"Service": "EC2"}),
        (P, "ADM", "AWS Cost", 50, {"Service": "Lambda"}),
        (P, "FIN", "AWS Cost", 70, {"Service": "S3"}),
    ]
    book = make_book(deps, budget=[(P, "Cloud", 0)], usage=usage, settings=FY)
    rule = charge("A", "Cloud", "AWS Cost", "1.05", where=[cond("Service", "IN", "EC2", "S3")])
    result = run(book, plan(charges=[rule]))
    # only ADM's EC2 100 x 1.05 = 105.00; Lambda filtered out, FIN not billable
    assert amounts(result) == {("ADM", "Cloud"): D("105.00")}
