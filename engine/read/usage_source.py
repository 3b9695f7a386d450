"""Usage from outside the workbook: the Settings key `UsageSource`.

An Excel sheet stops at 1,048,576 rows, and a cloud bill has tens of millions.
``UsageSource`` names a CSV or Parquet file, or a folder of them (every
``*.csv`` / ``*.parquet`` inside, searched recursively), relative to the
workbook's folder. DuckDB (embedded, nothing to install) checks every row and
sums them per period, department, metric and service *before* the engine sees
them, so memory depends on the number of those combinations, not on the rows.

Two layouts are understood (the column headers tell which):

- **Usage columns**: ``Period``, ``Department``, ``Metric``, ``Quantity`` and
  optionally ``Service``, matched as the Usage sheet's headers are (any case,
  surrounding spaces ignored). Other columns are read but not kept.
- **FinOps FOCUS** (a ``ChargePeriodStart`` column): each row gives up to two
  usage rows — its consumption (``ConsumedUnit`` as the metric,
  ``ConsumedQuantity`` as the quantity, when both are filled) and its cost (the
  metric ``EffectiveCost``, or ``BilledCost`` when there is no EffectiveCost
  column, with the cost as the quantity). Period is the month of
  ``ChargePeriodStart``; the department is the tag named by the Settings key
  ``UsageDepartmentTag`` (from FOCUS's ``Tags`` JSON), else ``SubAccountId``;
  Service is ``ServiceName``. Cost rows may be negative (credits); each
  period/department/service total must not be.

Every row is checked with the Usage sheet's own messages, located at the
file's cell as Excel shows a CSV (the header is row 1): ``usage.csv!D1042:
Quantity must be a non-negative number, got "n/a"``. For Parquet, row 2 is
the first record. Many bad cells of one kind in one column are one message
with the count and the first cells, computed in DuckDB (a bad column of 50
million cells is not 50 million Python objects). Quantities are summed as
exact decimals with 9 places.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from costloop.engine.model.book import Book
from costloop.engine.model.periods import parse_period
from costloop.engine.workbook.host import column_letter
from costloop.problems import GROUP_AFTER, Problem, Reason, Severity, repeated
from costloop.rules.ast import name_key
from costloop.rules.suggest import closest, did_you_mean

SOURCE_KEY = "usagesource"
TAG_KEY = "usagedepartmenttag"
FOCUS_COST_METRICS = ("EffectiveCost", "BilledCost")
_FILE_KINDS = {".csv": "csv", ".parquet": "parquet"}
_NUMBER_TEXT = r"^\s*[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d*)?\s*$|^\s*[+-]?\.\d+\s*$"
_DECIMAL = "DECIMAL(38, 9)"


@dataclass(frozen=True)
class UsageFiles:
    """The files a UsageSource names, and how messages name them."""

    paths: list[Path]
    kind: str
    base: Path

    def label(self, path: str) -> str:
        """The file as a message names it: relative to the workbook's folder when inside it."""
        try:
            return Path(path).resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()


def find_files(value: str, where: str, base: Path) -> tuple[UsageFiles | None, list[Problem]]:
    """The CSV or Parquet files ``value`` names (a file or a folder), relative to ``base``."""

    def problem(message: str) -> tuple[None, list[Problem]]:
        return None, [Problem(Reason.BAD_SETTING, Severity.ERROR, where, message)]

    path = Path(value.strip())
    path = path if path.is_absolute() else base / path
    if not path.exists():
        return problem(
            f"UsageSource {value!r}: no such file or folder (looked for {path}); give a CSV "
            "or Parquet file, or a folder of them, relative to the workbook's folder"
        )
    if path.is_dir():
        # Not lock files ("~$usage.csv" while Excel has usage.csv open) or hidden ones.
        found = sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in _FILE_KINDS and not p.name.startswith(("~$", "."))
        )
        kinds = {_FILE_KINDS[p.suffix.lower()] for p in found}
        if not found:
            return problem(f"UsageSource {value!r}: the folder holds no .csv or .parquet files")
        if len(kinds) > 1:
            return problem(
                f"UsageSource {value!r}: the folder mixes .csv and .parquet files; keep one kind"
            )
        return UsageFiles(found, kinds.pop(), base), []
    kind = _FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        return problem(
            f"UsageSource {value!r}: costloop reads .csv and .parquet files; "
            f"save the usage as one of those"
        )
    return UsageFiles([path], kind, base), []


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Reader:
    """One UsageSource read: DuckDB over the files, problems as they are found."""

    def __init__(self, files: UsageFiles, tag: str | None, text_columns: tuple[str, ...] = ()):
        import duckdb

        self.files = files
        self.tag = tag
        self.con = duckdb.connect()
        # FOCUS timestamps are UTC: read in the computer's own zone, a charge starting at
        # midnight on the 1st would fall in the previous month west of Greenwich.
        self.con.execute("SET TimeZone = 'UTC'")
        self.problems: list[Problem] = []
        listed = "[" + ", ".join(_text(str(p)) for p in files.paths) + "]"
        if files.kind == "csv":
            # A column DuckDB guessed to be numbers from its first rows, but with a word
            # further down, is read as text: the checks below then name that cell.
            types = ", ".join(f"{_text(name)}: 'VARCHAR'" for name in text_columns)
            scan = f"read_csv({listed}, union_by_name=true, filename=true, header=true" + (
                f", types={{{types}}})" if types else ")"
            )
        else:
            scan = f"read_parquet({listed}, union_by_name=true, filename=true)"
        self.con.execute(f"CREATE VIEW source AS SELECT * FROM {scan}")
        described = self.con.execute("DESCRIBE source").fetchall()
        self.types = {row[0]: row[1] for row in described if row[0] != "filename"}
        self.letters = {name: column_letter(i) for i, name in enumerate(self.types)}
        self.by_key = {name_key(name): name for name in self.types}
        self.department_sql = self.department_column = ""
        self.pending: list[tuple] = []
        self._headers: dict[str, list[str]] = {}

    def letter(self, filename: str, column: str) -> str:
        """The column's letter in one file: the files of a folder may order their columns
        differently, and the union's order is the first file's."""
        if len(self.files.paths) > 1:
            headers = self._headers.get(filename)
            if headers is None:
                one = _text(filename)
                csv = self.files.kind == "csv"
                scan = f"read_csv({one}, header=true)" if csv else f"read_parquet({one})"
                described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
                headers = self._headers[filename] = [name_key(row[0]) for row in described]
            if name_key(column) in headers:
                return column_letter(headers.index(name_key(column)))
        return self.letters.get(column, "A")

    def column(self, *names: str) -> str | None:
        for name in names:
            found = self.by_key.get(name_key(name))
            if found is not None:
                return found
        return None

    # --- locating bad rows ------------------------------------------------------------

    def report(
        self,
        column: str,
        condition: str,
        value_sql: str,
        message,
        code: Reason = Reason.BAD_VALUE,
        severity: Severity = Severity.ERROR,
    ) -> None:
        """Queue a check: the source rows meeting ``condition`` (SQL) are bad, one kind in
        one column; ``message(value)`` words one bad value. `flush` runs the queue."""
        self.pending.append((column, condition, value_sql, message, code, severity))

    def flush(self) -> None:
        """Run the queued checks: one parallel pass counts every kind of bad row at once;
        only a kind that occurs gets a second, ordered pass that finds its rows' numbers."""
        checks, self.pending = self.pending, []
        if not checks:
            return
        counts = self.con.execute(
            "SELECT "
            + ", ".join(f"count(*) FILTER (WHERE {check[1]})" for check in checks)
            + " FROM source"
        ).fetchone()
        for check, count in zip(checks, counts, strict=True):
            if count:
                self._locate(*check)

    def _locate(self, column, condition, value_sql, message, code, severity) -> None:
        if self.files.kind == "parquet":
            listed = ", ".join(_text(str(p)) for p in self.files.paths)
            numbered = (
                f"SELECT * EXCLUDE (file_row_number), file_row_number + 2 AS _row FROM "
                f"read_parquet([{listed}], union_by_name=true, filename=true, "
                "file_row_number=true)"
            )
        else:
            # CSV rows carry no number: one single-threaded pass reads the files in order,
            # so a row's place in the scan, less its file's first place, is its row.
            self.con.execute("SET threads TO 1")
            numbered = """
                SELECT * EXCLUDE (_g, first), _g - first + 2 AS _row FROM (
                    SELECT *, min(_g) OVER (PARTITION BY filename) AS first
                    FROM (SELECT *, row_number() OVER () AS _g FROM source)
                )"""
        found = self.con.execute(
            f"""
            WITH numbered AS ({numbered}), bad AS (
                SELECT filename, _row, {value_sql} AS value FROM numbered WHERE {condition}
            )
            SELECT filename, count(*), min(_row), max(_row), count(DISTINCT value),
                   list(_row ORDER BY _row)[1:{GROUP_AFTER + 1}],
                   list(value ORDER BY _row)[1:{GROUP_AFTER + 1}]
            FROM bad GROUP BY filename ORDER BY filename
            """
        ).fetchall()
        self.con.execute("RESET threads")
        for filename, n, low, high, distinct, rows, values in found:
            sheet = self.files.label(filename)
            letter = self.letter(filename, column)
            if n <= GROUP_AFTER:
                for row, value in zip(rows, values, strict=True):
                    self.problems.append(
                        Problem(code, severity, f"{sheet}!{letter}{row}", message(value))
                    )
                continue
            self.problems.append(
                repeated(
                    sheet, letter, code, severity, message(values[0]), n, distinct, rows, low, high
                )
            )


def _shown(value: object) -> str:
    """A bad value as the Usage sheet's messages quote it."""
    if value is None:
        return "a blank cell"
    if isinstance(value, str):
        return f'"{value}"' if value.strip() else "a blank cell"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_usage_source(
    files: UsageFiles,
    receivers: dict[str, str],
    metrics: dict[str, str],
    tag: str | None = None,
) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Check every row of the files and sum them into the Book's Usage frame.

    ``receivers`` and ``metrics`` (name key -> spelling) give names their
    workbook spelling and let an unknown department be named with a did-you-mean.
    Returns (usage, problems); usage is None when a required column is missing.
    """
    import duckdb

    text_columns: tuple[str, ...] = ()
    while True:
        reader = None
        try:
            reader = _Reader(files, tag, text_columns)
            if reader.column("ChargePeriodStart") is not None:
                rows = _focus_rows(reader)
            else:
                rows = _usage_rows(reader)
            reader.flush()
            if rows is None:
                return None, reader.problems
            usage = _aggregate(reader, rows, receivers, metrics)
            return usage, reader.problems
        except duckdb.ConversionException as exc:
            # DuckDB guesses a CSV column's type from its first rows; a bad value further
            # down fails the whole read. Read that column as text and check it again.
            column = _CONVERTING.search(str(exc))
            if files.kind != "csv" or column is None or column.group(1) in text_columns:
                return None, [_unreadable(files, str(exc))]
            text_columns += (column.group(1),)
        except duckdb.Error as exc:
            # A file DuckDB cannot read (Excel's "CSV (Comma delimited)" is not UTF-8, a row
            # with more fields than the header, a damaged Parquet file): named, not a traceback.
            return None, [_unreadable(files, str(exc))]
        finally:
            if reader is not None:
                reader.con.close()


_CONVERTING = re.compile(r'Error when converting column "([^"]+)"')


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _unreadable(files: UsageFiles, error: str) -> Problem:
    """The problem of a source file DuckDB could not read, in words a finance user can act on."""
    named = [p for p in files.paths if str(p) in error]
    path = min(named, key=lambda p: error.index(str(p))) if named else files.paths[0]
    line = _CSV_LINE.search(error)
    at = f" at line {line.group(1)}" if line else ""
    if "not utf-8 encoded" in error.lower():
        why = f'it is not UTF-8 text{at}; in Excel save it as "CSV UTF-8 (Comma delimited)"'
    elif "sniffing" in error:
        why = (
            "its rows could not be split into columns the same way throughout (a row with "
            "more fields than the header, or a quote that is never closed?)"
        )
    else:
        first = error.split("\n", 1)[0].split("Error: ", 1)[-1].strip()
        why = first if line is None or line.group(0) in first else f"{first}{at}"
    return Problem(
        Reason.BAD_VALUE,
        Severity.ERROR,
        files.label(str(path)),
        f"the UsageSource file cannot be read: {why}; fix or re-export it and run again",
    )


def _missing(reader: _Reader, needed: list[str], layout: str) -> bool:
    absent = [name for name in needed if reader.column(name) is None]
    if absent:
        listed = ", ".join(reader.types) or "none"
        where = reader.files.label(str(reader.files.paths[0])) + "!A1"
        reader.problems.append(
            Problem(
                Reason.MISSING_COLUMN,
                Severity.ERROR,
                where,
                f"the UsageSource files have no {', '.join(absent)} column (their columns: "
                f"{listed}); {layout}",
            )
        )
    return bool(absent)


def _period_sql(reader: _Reader, column: str, timestamps: bool = False) -> tuple[str, str | None]:
    """(SQL giving the period text or NULL, SQL of the raw value when it is not one).

    ``timestamps``: text holding a date and time (FOCUS's ChargePeriodStart in a CSV,
    ``2026-03-01T00:00:00Z``) is read as one.
    """
    kind = reader.types[column].upper()
    col = _quote(column)
    if kind.startswith(("DATE", "TIMESTAMP")):
        return f"strftime({col}, '%Y-%m')", f"CAST({col} AS VARCHAR)"
    if timestamps and kind == "VARCHAR":
        return (
            f"strftime(TRY_CAST({col} AS TIMESTAMPTZ), '%Y-%m')",
            f"CAST({col} AS VARCHAR)",
        )
    # Text: the Usage sheet's rule (YYYY-MM, YYYY-M tolerated) for each distinct value.
    values = reader.con.execute(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM source").fetchall()
    pairs = [(v, parse_period(v) or _iso_month(v)) for (v,) in values if v is not None]
    frame = pd.DataFrame(pairs, columns=["raw", "period"], dtype=object)
    reader.con.register("period_map_frame", frame)
    # Names no source column has: inside the subquery a bare column name binds to the map
    # first, and DuckDB matches names regardless of case (a source's Period is "period").
    reader.con.execute(
        "CREATE OR REPLACE TABLE period_map AS "
        "SELECT CAST(raw AS VARCHAR) AS costloop_raw_text, "
        "CAST(period AS VARCHAR) AS costloop_period FROM period_map_frame"
    )
    text = f"CAST({col} AS VARCHAR)"
    return f"(SELECT costloop_period FROM period_map WHERE costloop_raw_text = {text})", text


def _iso_month(text: str) -> str | None:
    """The month of an ISO date written as text (``2026-03-01``): a CSV has no date cells,
    so this is how a date column reads when DuckDB does not take it for dates."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return None
    return f"{day.year:04d}-{day.month:02d}"


def _number_sql(reader: _Reader, column: str) -> str:
    """SQL of a column's numbers as exact decimals (numeric text such as 1,234.50 too)."""
    col = _quote(column)
    kind = reader.types[column].upper()
    if kind == "VARCHAR":
        return (
            f"CASE WHEN regexp_matches({col}, '{_NUMBER_TEXT}') "
            f"THEN TRY_CAST(replace(trim({col}), ',', '') AS {_DECIMAL}) END"
        )
    if kind.startswith(
        (
            "DOUBLE",
            "FLOAT",
            "DECIMAL",
            "BIGINT",
            "INTEGER",
            "SMALLINT",
            "HUGEINT",
            "TINYINT",
            "UBIGINT",
            "UINTEGER",
            "USMALLINT",
            "UTINYINT",
            "REAL",
        )
    ):
        return f"TRY_CAST({col} AS {_DECIMAL})"
    return f"CAST(NULL AS {_DECIMAL})"


def _check_columns(
    reader: _Reader,
    period: str,
    department_sql: str,
    department_column: str,
    metric_sql: str | None,
    metric_column: str | None,
    quantity: str,
    quantity_column: str,
    quantity_label: str,
    negative_allowed: bool = False,
    quantity_required: bool = True,
    timestamps: bool = False,
) -> tuple[str, str]:
    """Report bad rows; return (SQL of the period, SQL of the quantity) for good rows."""
    reader.department_sql, reader.department_column = department_sql, department_column
    period_sql, period_raw = _period_sql(reader, period, timestamps=timestamps)
    label = period
    reader.report(
        period,
        f"({period_sql}) IS NULL",
        period_raw or "NULL",
        lambda v: f"{label} must be a month as YYYY-MM text or a date, got {_shown(v)}",
        Reason.BAD_PERIOD,
    )
    blank = f"{department_column} is blank; type who used it (a department or a pool)"
    if reader.tag and department_column == reader.column("Tags"):
        # Tags is rarely blank: the row's resource lacks the tag that names the department.
        blank = (
            f'{department_column} has no "{reader.tag}" tag (or it is blank, or Tags is not '
            "JSON); tag the resource with who used it (a department or a pool)"
        )
    reader.report(
        department_column, f"coalesce(trim({department_sql}), '') = ''", "NULL", lambda _: blank
    )
    if metric_sql is not None and metric_column is not None:
        metric_label = metric_column
        reader.report(
            metric_column,
            f"coalesce(trim({metric_sql}), '') = ''",
            "NULL",
            lambda _: f"{metric_label} is blank; type the metric's name, e.g. vCPU-Hours",
        )
    number = _number_sql(reader, quantity)
    raw = f"CAST({_quote(quantity)} AS VARCHAR)"
    bad = (
        f"({number}) IS NULL"
        if quantity_required
        else (f"({raw}) IS NOT NULL AND trim({raw}) <> '' AND ({number}) IS NULL")
    )
    if not negative_allowed:
        bad = f"({bad}) OR ({number}) < 0"
    kind = "a number" if negative_allowed else "a non-negative number"
    reader.report(
        quantity,
        bad,
        raw,
        lambda v: f"{quantity_label} must be {kind}, got {_shown(_as_number(v))}",
    )
    return period_sql, number


def _as_number(value: object) -> object:
    """A bad value as read (text stays text, a number shows as a number)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if value.strip() == value and "," not in value else value
    return value


def _usage_rows(reader: _Reader) -> str | None:
    needed = ["Period", "Department", "Metric", "Quantity"]
    if _missing(reader, needed, "give the files the Usage sheet's columns or FinOps FOCUS columns"):
        return None
    period, dept, metric, qty = (reader.column(n) for n in needed)
    service = reader.column("Service")
    dept_sql = f"CAST({_quote(dept)} AS VARCHAR)"
    metric_sql = f"CAST({_quote(metric)} AS VARCHAR)"
    period_sql, number = _check_columns(
        reader, period, dept_sql, dept, metric_sql, metric, qty, qty, qty
    )
    service_sql = f"coalesce(trim(CAST({_quote(service)} AS VARCHAR)), '')" if service else "''"
    return f"""
        SELECT {period_sql} AS period, trim({dept_sql}) AS department,
               trim({metric_sql}) AS metric, {service_sql} AS service,
               {number} AS quantity, filename
        FROM source
        WHERE ({period_sql}) IS NOT NULL AND coalesce(trim({dept_sql}), '') <> ''
          AND coalesce(trim({metric_sql}), '') <> ''
          AND ({number}) IS NOT NULL AND ({number}) >= 0
    """


def _focus_department(reader: _Reader) -> tuple[str, str] | None:
    """(SQL of the department, the column messages name) of a FOCUS file."""
    if reader.tag:
        tags = reader.column("Tags")
        if tags is None:
            _missing(reader, ["Tags"], f"UsageDepartmentTag {reader.tag!r} needs FOCUS's Tags")
            return None
        kind = reader.types[tags].upper()
        key = reader.tag.replace('"', '\\"')
        if kind.startswith("MAP"):
            # map_extract gives a list in every DuckDB release (map[key] became the value
            # itself only in later ones, and a list's text "[ENG]" is no department).
            return f"CAST(map_extract({_quote(tags)}, {_text(reader.tag)})[1] AS VARCHAR)", tags
        path = _text('$."' + key + '"')
        # TRY_CAST: a row whose Tags is not JSON is that row's error, not the whole read's.
        return f"json_extract_string(TRY_CAST({_quote(tags)} AS JSON), {path})", tags
    account = reader.column("SubAccountId")
    if account is None:
        _missing(
            reader,
            ["SubAccountId"],
            "FOCUS usage needs SubAccountId, or set UsageDepartmentTag to a tag in Tags",
        )
        return None
    return f"CAST({_quote(account)} AS VARCHAR)", account


def _focus_rows(reader: _Reader) -> str | None:
    cost = next((c for c in FOCUS_COST_METRICS if reader.column(c) is not None), None)
    if cost is None:
        _missing(reader, ["EffectiveCost"], "FOCUS usage needs EffectiveCost or BilledCost")
        return None
    department = _focus_department(reader)
    if department is None:
        return None
    dept_sql, dept_column = department
    period = reader.column("ChargePeriodStart")
    cost_column = reader.column(cost)
    period_sql, cost_number = _check_columns(
        reader,
        period,
        dept_sql,
        dept_column,
        None,
        None,
        cost_column,
        cost_column,
        cost,
        negative_allowed=True,
        timestamps=True,
    )
    service = reader.column("ServiceName")
    service_sql = f"coalesce(trim(CAST({_quote(service)} AS VARCHAR)), '')" if service else "''"
    keep = f"({period_sql}) IS NOT NULL AND coalesce(trim({dept_sql}), '') <> ''"
    parts = [
        f"""SELECT {period_sql} AS period, trim({dept_sql}) AS department, {_text(cost)} AS metric,
                   {service_sql} AS service, {cost_number} AS quantity, filename
            FROM source WHERE {keep} AND ({cost_number}) IS NOT NULL"""
    ]
    unit, consumed = reader.column("ConsumedUnit"), reader.column("ConsumedQuantity")
    if unit is not None and consumed is not None:
        number = _number_sql(reader, consumed)
        raw = f"CAST({_quote(consumed)} AS VARCHAR)"
        label = consumed
        reader.report(
            consumed,
            f"({raw}) IS NOT NULL AND trim({raw}) <> '' AND (({number}) IS NULL OR ({number}) < 0)",
            raw,
            lambda v: f"{label} must be a non-negative number, got {_shown(_as_number(v))}",
        )
        parts.append(
            f"""SELECT {period_sql}, trim({dept_sql}), trim(CAST({_quote(unit)} AS VARCHAR)),
                       {service_sql}, {number}, filename
                FROM source WHERE {keep} AND ({number}) IS NOT NULL AND ({number}) >= 0
                  AND coalesce(trim(CAST({_quote(unit)} AS VARCHAR)), '') <> ''"""
        )
    return "\nUNION ALL\n".join(parts)


def _aggregate(
    reader: _Reader, rows: str, receivers: dict[str, str], metrics: dict[str, str]
) -> pd.DataFrame:
    """Sum the good rows per period, department, metric and service; check the names."""
    con = reader.con
    con.execute(
        f"""CREATE TABLE summed AS
            SELECT period, department, metric, service, sum(quantity) AS quantity,
                   min(filename) AS filename
            FROM ({rows}) GROUP BY ALL"""
    )
    # Names compare as everywhere else in costloop (case-insensitive, spaces collapsed) and
    # take the workbook's spelling: decided once per distinct text, then summed again by it.
    departments = [r[0] for r in con.execute("SELECT DISTINCT department FROM summed").fetchall()]
    unknown = [name for name in departments if name_key(name) not in receivers]
    if unknown:
        _report_unknown(reader, unknown, receivers)
    department_map = pd.DataFrame(
        [(n, receivers[name_key(n)]) for n in departments if name_key(n) in receivers],
        columns=["raw", "canonical"],
        dtype=object,
    )
    spelling = dict(metrics)
    metric_map = pd.DataFrame(
        [
            (n, spelling.setdefault(name_key(n), n))
            for (n,) in con.execute("SELECT DISTINCT metric FROM summed ORDER BY 1").fetchall()
        ],
        columns=["raw", "canonical"],
        dtype=object,
    )
    con.register("department_map_frame", department_map)
    con.register("metric_map_frame", metric_map)
    summed = con.execute(
        """WITH named AS (
               SELECT s.period, CAST(d.canonical AS VARCHAR) AS department,
                      CAST(m.canonical AS VARCHAR) AS metric, s.service,
                      sum(s.quantity) AS quantity, min(s.filename) AS filename
               FROM summed s
               JOIN department_map_frame d ON s.department = CAST(d.raw AS VARCHAR)
               JOIN metric_map_frame m ON s.metric = CAST(m.raw AS VARCHAR)
               GROUP BY ALL)
           SELECT period, department, metric, service, CAST(quantity AS DOUBLE) AS q,
                  CAST(CAST(quantity AS DOUBLE) AS DECIMAL(38, 9)) = quantity AS exact,
                  quantity < 0 AS negative, filename
           FROM named ORDER BY period, department, metric, service"""
    ).df()
    negative = summed["negative"].to_numpy(dtype=bool)
    for row in summed[negative].itertuples(index=False):
        reader.problems.append(
            Problem(
                Reason.BAD_VALUE,
                Severity.ERROR,
                reader.files.label(row.filename),
                f'{row.metric} of "{row.department}" in {row.period}'
                + (f" ({row.service})" if row.service else "")
                + f" adds up to {row.q:,.2f}; credits larger than the charges they offset "
                "cannot be billed — check the source's credits",
            )
        )
    inexact = int((~summed["exact"].to_numpy(dtype=bool)).sum())
    if inexact:
        reader.problems.append(
            Problem(
                Reason.BAD_VALUE,
                Severity.WARNING,
                reader.files.label(str(reader.files.paths[0])),
                f"{inexact:,} usage totals have more than 15 significant digits and were "
                "rounded to the nearest number Excel can hold",
            )
        )
    summed = summed[~negative]
    departments_col = summed["department"].to_numpy(dtype=object)
    keys = pd.Series(departments_col, dtype=object).map(name_key).to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "Period": summed["period"].to_numpy(dtype=object),
            "Department": departments_col,
            "Metric": summed["metric"].to_numpy(dtype=object),
            "Quantity": summed["q"].to_numpy(dtype=np.float64),
            "Service": summed["service"].to_numpy(dtype=object),
            "Reference": np.full(len(summed), "", dtype=object),
            "_row": np.zeros(len(summed), dtype=np.int64),
            "_key": keys,
        }
    )


def _report_unknown(reader: _Reader, unknown: list[str], receivers: dict[str, str]) -> None:
    frame = pd.DataFrame({"name": unknown}, dtype=object)
    reader.con.register("unknown_frame", frame)
    reader.con.execute(
        "CREATE OR REPLACE TABLE unknown AS SELECT name AS costloop_unknown FROM unknown_frame"
    )

    def message(value: object) -> str:
        name = str(value).strip()
        guess = closest(name, receivers.values())
        fix = did_you_mean(guess) if guess else "add it to Departments or fix the name"
        return f'"{name}" is not a department or a cost pool; {fix}'

    # The rows are found by the raw column the department came from.
    dept_column = reader.department_column
    reader.report(
        dept_column,
        f"trim({reader.department_sql}) IN (SELECT costloop_unknown FROM unknown)",
        f"trim({reader.department_sql})",
        message,
        Reason.UNKNOWN_DEPARTMENT,
    )
    reader.flush()


def fingerprint(files: UsageFiles) -> str:
    """Changes when any source file changes (name, size or modification time)."""
    digest = hashlib.sha256()
    for path in files.paths:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def with_usage_source(book: Book, folder: Path | None) -> tuple[Book, list[Problem]]:
    """The Book with its usage read from the Settings UsageSource, if it names one; problems.

    Called by `costloop.engine.read.reader.read_book`, so the Book it returns is
    final. The Usage sheet then keeps only its header row: usage in both places
    would be counted twice, so that is an error rather than a guess.
    """
    usage, problems = _source_usage(book, folder)
    if usage is None:
        return book, problems
    # A WHERE may name only columns the usage has: an extra header left on the Usage
    # sheet (its rows come from the files now) must fail `check`, not only `run`.
    kept = {name_key(column) for column in usage.frame.columns if not column.startswith("_")}
    columns = dict(book.columns)
    if "Usage" in columns:
        columns["Usage"] = {key: spot for key, spot in columns["Usage"].items() if key in kept}
    digest = hashlib.sha256(f"{book.fingerprint}\0{fingerprint(usage.files)}".encode())
    return replace(
        book, usage=usage.frame, columns=columns, fingerprint=digest.hexdigest()
    ), problems


@dataclass(frozen=True)
class _SourceUsage:
    frame: pd.DataFrame
    files: UsageFiles


def _source_usage(book: Book, folder: Path | None) -> tuple[_SourceUsage | None, list[Problem]]:
    """The usage the UsageSource files hold (None: no UsageSource, or it could not be read)."""
    settings = book.settings
    found = {_compact(k): k for k in settings.raw}
    key = found.get(SOURCE_KEY)
    value = settings.raw.get(key, "") if key else ""
    if not value.strip():
        return None, []
    where = settings.cells.get(key, "Settings")
    if folder is None:
        return None, [
            Problem(
                Reason.BAD_SETTING,
                Severity.ERROR,
                where,
                "UsageSource names files relative to the workbook, which has not been saved "
                "as a file yet; save it, then run again",
            )
        ]
    if len(book.usage):
        return None, [
            Problem(
                Reason.BAD_SETTING,
                Severity.ERROR,
                where,
                f"the Usage sheet has {len(book.usage):,} rows and UsageSource names {value!r}: "
                "keep usage in one place (clear the Usage rows below the header, or the "
                "setting), or it would be billed twice",
            )
        ]
    files, problems = find_files(value, where, folder)
    if files is None:
        return None, problems
    tag_key = found.get(TAG_KEY)
    tag = settings.raw.get(tag_key, "").strip() if tag_key else ""
    receivers = dict(book.pools)
    receivers.update(book.department_names)
    usage, problems = read_usage_source(files, receivers, book.metrics, tag or None)
    return (None if usage is None else _SourceUsage(usage, files)), problems


def _compact(key: str) -> str:
    return name_key(key).replace(" ", "").replace("_", "")
