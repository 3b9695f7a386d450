"""The template and demo workbooks, and the script that generates them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def demo_path() -> Path:
    """The packaged demo workbook (a public university's central IT)."""
    return Path(str(files(__name__).joinpath("demo.xlsx")))


def closed_demo_path() -> Path:
    """The demo as `costloop demo` writes it: the same university with February 2026 closed,
    a late February meter reading and two disputes (docs/audit.md)."""
    return Path(str(files(__name__).joinpath("demo-closed.xlsx")))


def template_path() -> Path:
    """The packaged empty template with every input sheet and instructions."""
    return Path(str(files(__name__).joinpath("template.xlsx")))
