"""The import rules of docs/architecture.md, read from the code with `ast`.

Each room of `engine/` is one stage; what a room may import is the table below. A
new import that breaks it fails here with the file, the line and the rule, so the
stages stay visible to the next engineer instead of melting back into one folder.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top-level folders and the import name setuptools maps each to (pyproject.toml).
FOLDERS = {
    "costloop": "costloop",
    "rules": "costloop.rules",
    "engine": "costloop.engine",
    "bills": "costloop.bills",
    "addin": "costloop.addin",
    "workbooks": "costloop.workbooks",
}

ROOMS = ("model", "workbook", "xlsx", "read", "chargeback", "itfm", "pipeline", "recalc")

# What each engine room may import of costloop (besides itself). `costloop.problems`,
# `costloop.errors` and `costloop.rules` are the shared vocabulary every stage speaks.
SHARED = {"costloop.problems", "costloop.errors", "costloop.rules"}
ALLOWED_ROOMS = {
    "model": set(),
    "workbook": {"model"},
    "xlsx": {"workbook"},
    "read": {"model", "workbook", "xlsx"},
    "chargeback": {"model"},
    "itfm": {"model", "chargeback"},
    "pipeline": {"model", "workbook", "xlsx", "read", "chargeback", "itfm"},
    "recalc": {"workbook", "xlsx"},
}
# Pure stages: no file format, no database, no spreadsheet library.
IO_LIBRARIES = {
    "lxml",
    "python_calamine",
    "fastexcel",
    "duckdb",
    "zipfile",
    "openpyxl",
    "xlsxwriter",
    "pyarrow",
    "xlwings",
    "subprocess",
}
PURE_ROOMS = {"model", "chargeback", "itfm"}
# bills/ and the add-in drive the engine through its facade and the pipeline, and
# may use its shared types and hosts; never the chargeback or ITFM internals.
FRONT_ENDS_MAY_USE = {"model", "workbook", "xlsx", "pipeline", "recalc"}


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [*rel.parts[:-1], rel.stem]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([FOLDERS[parts[0]], *parts[1:]])


def _sources() -> list[Path]:
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 50, "the source tree was not found"
    return sorted(files)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, absolute, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append((node.lineno, base))
            # `from costloop.engine import chargeback` imports a room, not a name.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["costloop", "engine"] and len(parts) > 2 and parts[2] in ROOMS:
        return parts[2]
    return None


def _violations() -> list[str]:
    broken: list[str] = []
    for path in _sources():
        here = _module_of(path)
        room = _room(here)
        rel = path.relative_to(ROOT)
        for line, target in _imports(path):
            top = target.split(".")[0]
            where = f"{rel}:{line} imports {target}"
            if top == "xlwings" and not here.startswith("costloop.addin"):
                broken.append(f"{where}: xlwings belongs to addin/ only")
            if not target.startswith("costloop"):
                if room in PURE_ROOMS and top in IO_LIBRARIES:
                    broken.append(f"{where}: engine/{room} is pure, no IO library")
                continue
            target_room = _room(target)
            if here.startswith("costloop.rules") and target.startswith("costloop.engine"):
                broken.append(f"{where}: rules/ imports nothing from the engine")
            if room is not None:
                if target_room == room or any(target.startswith(s) for s in SHARED):
                    continue
                if target_room in ALLOWED_ROOMS[room]:
                    continue
                if target in ("costloop", "costloop.__version__", "costloop.engine"):
                    continue  # the version a run records; the engine package itself
                broken.append(
                    f"{where}: engine/{room} may import "
                    f"{sorted(ALLOWED_ROOMS[room]) or 'no other room'}"
                )
            elif (
                here.startswith(("costloop.bills", "costloop.addin"))
                and target_room is not None
                and target_room not in FRONT_ENDS_MAY_USE
            ):
                broken.append(
                    f"{where}: bills/ and addin/ use the facade and the pipeline, "
                    f"not engine/{target_room}"
                )
    # `from a.b import C` is checked as a.b and as a.b.C (C may be a module): one line each.
    first: dict[tuple[str, str], str] = {}
    for b in broken:
        first.setdefault((b.split(" imports ")[0], b.split(": ", 1)[1]), b)
    return list(first.values())


def test_every_module_keeps_the_import_rules():
    assert _violations() == []


def test_the_rule_check_itself_catches_a_broken_import(tmp_path, monkeypatch):
    """A chargeback module importing the file host, and rules/ importing the engine, are caught."""
    fake_root = tmp_path
    for folder in FOLDERS:
        (fake_root / folder).mkdir()
    (fake_root / "engine" / "chargeback").mkdir()
    (fake_root / "engine" / "chargeback" / "charge.py").write_text(
        "import zipfile\nfrom costloop.engine.xlsx import parts\n"
    )
    (fake_root / "rules" / "parser.py").write_text("from costloop.engine.model import money\n")
    (fake_root / "bills" / "source.py").write_text(
        "from costloop.engine.chargeback.drivers import Drivers\n"
    )
    for i in range(60):  # _sources() insists on a real-sized tree
        (fake_root / "costloop" / f"m{i}.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    broken = _violations()
    assert any("chargeback/charge.py:1 imports zipfile" in b for b in broken)
    assert any("chargeback/charge.py:2 imports costloop.engine.xlsx" in b for b in broken)
    assert any("rules/parser.py:1" in b and "nothing from the engine" in b for b in broken)
    assert any("bills/source.py:1" in b and "not engine/chargeback" in b for b in broken)


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_is_a_package_with_its_purpose(room):
    init = ROOT / "engine" / room / "__init__.py"
    assert init.exists(), f"engine/{room}/ is not a package"
    purpose = ast.get_docstring(ast.parse(init.read_text()))
    assert purpose, f"engine/{room}/__init__.py says no purpose"


def test_the_facade_names_the_stages_front_ends_use():
    import costloop.engine as engine
    from costloop.engine.pipeline import run
    from costloop.engine.read import reader

    assert engine.read_book is reader.read_book
    assert engine.run_workbook is run.run_workbook
    assert engine.check_workbook is run.check_workbook
    assert engine.Outcome is run.Outcome
    with pytest.raises(AttributeError):
        _ = engine.no_such_stage


def test_every_exception_costloop_raises_derives_from_costloop_error():
    """One root, so the command line and the add-in map failures by type, never by name."""
    import importlib
    import inspect

    from costloop.errors import CostloopError

    found, strays = [], []
    for path in _sources():
        module = _module_of(path)
        if not module.startswith(("costloop.engine", "costloop.bills", "costloop.addin")):
            continue
        try:
            loaded = importlib.import_module(module)
        except ImportError as exc:  # xlwings (an extra) is absent: its module cannot load
            if "xlwings" in str(exc):
                continue
            raise
        for name, value in vars(loaded).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module
            ):
                found.append(f"{module}.{name}")
                if not issubclass(value, CostloopError):
                    strays.append(found[-1])
    assert "costloop.engine.xlsx.parts.PackageError" in found
    assert "costloop.bills.smtp.SessionError" in found
    assert strays == []
