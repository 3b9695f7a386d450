"""The ribbon's buttons and the Python entry point agree on every button id."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from costloop.addin.entry import BUTTONS

RIBBON = Path(__file__).resolve().parent.parent / "addin" / "ribbon" / "customUI.xml"


def test_every_ribbon_button_has_an_entry_point_and_every_entry_point_a_button():
    root = etree.parse(str(RIBBON)).getroot()
    buttons = {node.get("id") for node in root.iter("{*}button")}
    assert buttons == set(BUTTONS)
