"""One answer per cell question (engine/model/values.py), wherever the engine asks it.

Departments `Billable` was read by two parsers that disagreed on ``"f"``: the
reader refused it while the chargeback's drivers took it as N. The chargeback's
answer wins (issue 15): ``f`` is N, ``t`` is Y, in the reader and in the drivers.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import make_book
from test_read import clean_sheets, headlines, read

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.model.values import (
    cell_number,
    cell_text,
    first_spellings,
    is_blank,
    shown,
    yes_no,
)
from costloop.engine.workbook.cells import column_index, column_letter

WORDS = ["Y", "y", "Yes", "N", "no", "TRUE", "false", "T", "f", "F", "1", "0", True, False, None]


@pytest.mark.parametrize("word", WORDS)
def test_billable_reads_the_same_in_departments_and_in_the_drivers(word):
    sheets = clean_sheets()
    sheets["Departments"][1][3] = word  # ADM's Billable
    book, problems = read(sheets)
    assert problems == []
    from_reader = bool(book.departments["Billable"].iloc[0])
    # The drivers read the cell as written, as a Book built in code holds it.
    drivers = Drivers(make_book([("ADM", "General", {"Billable": word})]))
    assert drivers.departments["adm"].billable is from_reader
    assert from_reader is yes_no(word)


def test_f_is_no_and_t_is_yes():
    sheets = clean_sheets()
    sheets["Departments"][1][3] = "f"
    sheets["Departments"][2][3] = "T"
    book, problems = read(sheets)
    assert problems == []
    assert list(book.departments["Billable"]) == [False, True, False]
    drivers = Drivers(make_book([("ADM", "General", {"Billable": "f"}), ("FIN", "General")]))
    assert [d.billable for d in drivers.departments.values()] == [False, True]


def test_f_in_rules_enabled_disables_the_rule():
    sheets = clean_sheets()
    sheets["Rules"][1][2] = "f"  # rule 1's Enabled
    book, problems = read(sheets)
    assert problems == []
    assert [c.enabled for c in book.rules] == [False, False]


def test_a_word_that_is_neither_is_refused_at_its_cell_and_by_the_drivers():
    sheets = clean_sheets()
    sheets["Departments"][1][3] = "fa"
    _, problems = read(sheets)
    assert headlines(problems) == [
        'Departments!D2: Billable must be Y or N (or blank for Y), got "fa"'
    ]
    with pytest.raises(ValueError, match=r"Billable must be Y or N \(or blank for Y\), got 'fa'"):
        Drivers(make_book([("ADM", "General", {"Billable": "fa"})]))


def test_yes_no_words():
    assert [yes_no(w) for w in ("y", " YES ", "t", "True", 1, 1.0, np.True_)] == [True] * 7
    assert [yes_no(w) for w in ("N", "no", "F", "FALSE", 0, 0.0, np.False_)] == [False] * 7
    assert [yes_no(w) for w in (None, "", "  ", float("nan"), pd.NA)] == [True] * 5
    assert [yes_no(w) for w in ("maybe", "fa", 2, "ja")] == [None] * 4


def test_blank_text_and_numbers():
    blanks = [None, "", " \t", float("nan"), np.float64("nan"), pd.NA, pd.NaT, Decimal("NaN")]
    assert all(map(is_blank, blanks))
    assert not any(map(is_blank, [0, 0.0, "0", "x", False, Decimal(0)]))
    assert [cell_text(v) for v in (4400.0, 0.1, " a ", True, None, pd.NaT)] == [
        "4400", "0.1", "a", "TRUE", "", "",
    ]  # fmt: skip
    assert cell_number(0.1) == Decimal("0.1") and cell_number("1,234.50") == Decimal("1234.50")
    assert [cell_number(v) for v in (True, "1,23", "$5", float("inf"), None)] == [None] * 5
    assert cell_number(np.int64(7)) == Decimal(7)
    assert [shown(v) for v in ("n/a", " ", -5.0, None)] == ['"n/a"', "a blank cell", "-5",
                                                            "a blank cell"]  # fmt: skip


def test_first_spellings_keep_the_first_and_skip_blanks():
    names = pd.Series(["Service Desk", None, "service  desk", " Cloud ", "", "CLOUD"])
    assert first_spellings(names, ["Network", "cloud"]) == {
        "service desk": "Service Desk",
        "cloud": "Cloud",
        "network": "Network",
    }
    assert first_spellings() == {} and first_spellings([]) == {}


def test_column_letters_both_ways():
    for index, letters in [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA"),
                           (16383, "XFD")]:  # fmt: skip
        assert column_letter(index) == letters
        assert column_index(letters) == index
        assert column_index(letters.lower()) == index


def test_one_did_you_mean_phrasing_for_rules_and_workbook_messages():
    from costloop.rules.suggest import closest, did_you_mean, quoted_hint

    assert did_you_mean("Service Desk") == 'did you mean "Service Desk"?'
    assert quoted_hint("Service Desk") == ' — did you mean "Service Desk"?'
    sheets = clean_sheets()
    sheets["Settings"].append(["Curency", "EUR"])
    sheets["Usage"][3][1] = "FNI"
    _, problems = read(sheets)
    assert headlines(problems) == [
        'Settings!A7: costloop does not know the setting "Curency"; did you mean "Currency"?',
        'Usage!B4: "FNI" is not a department or a cost pool; did you mean "FIN"?',
    ]
    assert closest("servce desk", ["Network", "Service Desk"]) == "Service Desk"
