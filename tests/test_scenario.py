"""Scenario sheet naming: which inputs a what-if reads and where its outputs go."""

from __future__ import annotations

import pytest

from costloop.engine.pipeline.scenario import (
    MAX_SCENARIO_NAME,
    input_sheet_map,
    output_sheet_name,
    output_sheet_names,
    resolve_scenario,
    scenarios_in,
    validate_scenario_name,
)
from costloop.problems import Reason, Severity

BASE = ["Settings", "Departments", "Budget", "Actuals", "Usage", "Rates", "Rules"]
OUTPUTS = ["Bills", "Journal", "Recovery", "Forecast", "Rule Check", "Run Log"]
OUTPUTS += ["Variance", "Compliance"]


def test_no_scenario_reads_the_ordinary_sheets():
    assert input_sheet_map(BASE, None) == ({}, [])
    assert output_sheet_name("Bills", None) == "Bills"


def test_scenario_replaces_only_the_sheets_it_has():
    sheets = [*BASE, "Budget@High"]
    assert input_sheet_map(sheets, "High") == ({"Budget": "Budget@High"}, [])


def test_scenario_with_both_sheets_matches_case_insensitively_and_keeps_the_sheet_spelling():
    sheets = [*BASE, "budget@Cloud10", "RATES@Cloud10"]
    scenario, problems = resolve_scenario(sheets, "CLOUD10")
    assert problems == []
    assert scenario.inputs == {"Budget": "budget@Cloud10", "Rates": "RATES@Cloud10"}
    assert scenario.name == "Cloud10"  # outputs use the workbook's spelling, whatever was typed
    assert output_sheet_name("Bills", scenario.name) == "Bills@Cloud10"


def test_scenario_without_its_sheets_is_an_error_naming_the_sheets_looked_for():
    sheets = [*BASE, "Budget@Low", "Rates@Flat"]
    mapping, [problem] = input_sheet_map(sheets, "High")
    assert mapping == {}
    assert problem.code is Reason.BAD_SCENARIO and problem.is_error
    assert problem.where == "--scenario"
    assert '"Budget@High" or "Rates@High"' in problem.message
    assert "this workbook has scenarios: Flat, Low" in problem.message


def test_other_scenario_suffixed_sheets_are_not_read_and_say_so():
    mapping, [problem] = input_sheet_map([*BASE, "Budget@High", "Usage@High"], "High")
    assert mapping == {"Budget": "Budget@High"}
    assert problem.severity is Severity.WARNING and '"Usage@High" is not read' in problem.message


@pytest.mark.parametrize("bad", ["Q1/Q2", "a:b", "[x]", "what?", "all*", "back\\slash", "a@b"])
def test_characters_excel_forbids_are_rejected(bad):
    [problem] = validate_scenario_name(bad)
    assert problem.is_error and "cannot contain" in problem.message
    # and resolving never gets as far as looking for sheets
    assert resolve_scenario([*BASE, f"Budget@{bad}"], bad)[0] is None


def test_blank_and_trailing_apostrophe_are_rejected():
    assert "empty" in validate_scenario_name("  ")[0].message
    assert "apostrophe" in validate_scenario_name("Bob'")[0].message
    assert validate_scenario_name("Bob's plan") == []


def test_scenario_name_length_is_capped_so_every_output_fits():
    longest = "x" * MAX_SCENARIO_NAME
    assert validate_scenario_name(longest) == []
    for base in OUTPUTS:
        name = output_sheet_name(base, longest)
        assert len(name) <= 31 and name == f"{base}@{longest}"  # no output is shortened
    assert len(output_sheet_name("Compliance", longest)) == 31
    [problem] = validate_scenario_name(longest + "y")
    assert "21 characters; at most 20 fit" in problem.message
    assert 'like "Compliance@' in problem.message


def test_a_long_base_is_shortened_and_the_scenario_kept_whole():
    # 22-character base + "@" + 12-character scenario = 35: the base keeps 31 − 13 = 18.
    name = output_sheet_name("Department Statement", "Budget Cut 5")
    assert name == "Department Stateme@Budget Cut 5"
    assert len(name) == 31
    # Trailing spaces of a cut base are dropped rather than left before the @.
    assert output_sheet_name("Cost Pool Summary Sheet", "x" * 20) == "Cost Pool@" + "x" * 20


def test_output_names_that_shortening_makes_equal_are_an_error():
    names, [problem] = output_sheet_names(
        ["Department Statement A", "Department Statement B"], "x" * 20
    )
    assert problem.is_error and "both be written" in problem.message
    names, problems = output_sheet_names(OUTPUTS, "High")
    assert problems == [] and names["Run Log"] == "Run Log@High"


def test_output_name_refuses_a_scenario_that_cannot_fit():
    with pytest.raises(ValueError):
        output_sheet_name("Bills", "x" * 31)


def test_scenarios_in_lists_what_the_workbook_offers():
    assert scenarios_in([*BASE, "Rates@B", "Budget@a", "budget@A", "Notes@Z"]) == ["a", "B"]
