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
  ``ConsumedQuantity`` as the quantity) and its cost (the metric
  ``EffectiveCost``, or the Settings ``UsageCost`` column, with the cost as the
  quantity). Period is the month of ``ChargePeriodStart`` (of
  ``BillingPeriodStart`` for a ``Correction``, which keeps the month it corrects
  in ``Charge Period``); the department is the tag named by the Settings key
  ``UsageDepartmentTag`` (from FOCUS's ``Tags``), else ``SubAccountId``, else
  Settings ``UntaggedDepartment``; Service is ``ServiceName``. The FOCUS columns
  a WHERE can name (`FOCUS_WHERE_COLUMNS`, and the Tags keys the rules name) are
  kept. Quantities and costs may be negative (refunds, credits, corrections),
  and so may a total: a net credit is a credit on the bill.
  docs/scale.md#finops-focus maps every FOCUS column.

Every CSV column is read as text (never typed by DuckDB's sniffer from its first
rows) and ``NULL``, ``null`` and empty are no value; dates are read by
`usage_dates`, never guessed.

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
from pathlib import Path

import numpy as np
import pandas as pd

from costloop.engine.model.book import Book
from costloop.engine.read.usage_dates import date_format_pattern, month_reader
from costloop.engine.workbook.host import column_letter
from costloop.problems import GROUP_AFTER, Problem, Reason, Severity, repeated
from costloop.rules.ast import name_key
from costloop.rules.suggest import closest, did_you_mean

SOURCE_KEY = "usagesource"
TAG_KEY = "usagedepartmenttag"
_FILE_KINDS = {".csv": "csv", ".parquet": "parquet"}
# A number as text: 1,234.50 as the Usage sheet reads it, or in scientific notation
# (1.2E-05), as cost exports write small amounts; both are exact decimals, no guess.
_EXPONENT = r"([eE][+-]?\d+)?"
_NUMBER_TEXT = (
    rf"^\s*[+-]?(\d{{1,3}}(,\d{{3}})+|\d+)(\.\d*)?{_EXPONENT}\s*$"
    rf"|^\s*[+-]?\.\d+{_EXPONENT}\s*$"
)
_DECIMAL = "DECIMAL(38, 9)"
_NULL_TEXTS = ("", "NULL", "null")
_NULLS = "[" + ", ".join("'" + v + "'" for v in _NULL_TEXTS) + "]"
FOCUS_COSTS = ("EffectiveCost", "BilledCost", "ListCost", "ContractedCost")
"""The FOCUS cost columns Settings UsageCost may choose (EffectiveCost by default)."""
FOCUS_WHERE_COLUMNS = (
    "ChargeCategory",
    "ChargeClass",
    "ServiceCategory",
    "RegionName",
    "ResourceType",
    "ProviderName",
)
"""FOCUS columns kept beside Usage's own, so a rule's WHERE can use them."""
CHARGE_PERIOD = "Charge Period"
"""The month a FOCUS row's charge was for (its ChargePeriodStart): a correction is billed in
the month of its BillingPeriodStart, and this column keeps the month it corrects."""


@dataclass(frozen=True)
class SourceOptions:
    """What Settings says about reading a UsageSource."""

    tag: str | None = None
    """UsageDepartmentTag: the FOCUS tag holding the department (else SubAccountId)."""
    date_pattern: re.Pattern[str] | None = None
    """UsageDateFormat, as a regular expression (see usage_dates)."""
    cost: str | None = None
    """UsageCost: the FOCUS cost column billed (None: EffectiveCost, else BilledCost)."""
    currency: str | None = None
    """Settings Currency: every FOCUS row's BillingCurrency must be it."""
    untagged: str | None = None
    """UntaggedDepartment: the department or pool taking rows without a department."""
    rule_columns: frozenset[str] = frozenset()
    """Name keys of the columns the rules' WHERE conditions name (Tags keys among them)."""


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

    def __init__(self, files: UsageFiles, options: SourceOptions):
        import duckdb

        self.files = files
        self.options = options
        self.tag = options.tag
        self.con = duckdb.connect()
        # FOCUS timestamps are UTC: read in the computer's own zone, a charge starting at
        # midnight on the 1st would fall in the previous month west of Greenwich.
        self.con.execute("SET TimeZone = 'UTC'")
        self.problems: list[Problem] = []
        listed = "[" + ", ".join(_text(str(p)) for p in files.paths) + "]"
        if files.kind == "csv":
            # Every column as text, never typed by DuckDB's sniffer from its first rows: an
            # account "0123" first seen at row 28,682 stays "0123", and "4/1/2025" is never
            # read day-first. The checks below convert each column themselves.
            # NULL and null (SQL's and the FOCUS spec's) and empty are no value.
            self.con.execute(
                f"CREATE VIEW source AS SELECT * FROM read_csv({listed}, union_by_name=true, "
                f"filename=true, header=true, all_varchar=true, nullstr={_NULLS})"
            )
        else:
            scan = f"read_parquet({listed}, union_by_name=true, filename=true)"
            described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            texts = [row[0] for row in described if row[1] == "VARCHAR" and row[0] != "filename"]
            nulls = ", ".join(_text(v) for v in _NULL_TEXTS)
            replaced = ", ".join(
                f"CASE WHEN trim({_quote(c)}) IN ({nulls}) THEN NULL ELSE {_quote(c)} END "
                f"AS {_quote(c)}"
                for c in texts
            )
            body = f"* REPLACE ({replaced})" if replaced else "*"
            self.con.execute(f"CREATE VIEW source AS SELECT {body} FROM {scan}")
        described = self.con.execute("DESCRIBE source").fetchall()
        self.types = {row[0]: row[1] for row in described if row[0] != "filename"}
        self.letters = {name: column_letter(i) for i, name in enumerate(self.types)}
        self.by_key = {name_key(name): name for name in self.types}
        self.department_sql = self.department_column = ""
        self.pending: list[tuple] = []
        self._headers: dict[str, list[str]] = {}
        self._maps = 0
        self.month_tables: dict[str, str] = {}
        """Date column -> the table of its distinct texts' months (see `_month_table`)."""

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
        self.pending.append(("cells", condition, column, value_sql, message, code, severity))

    def summarize(self, condition: str, amount_sql: str, group_sql: str, then) -> None:
        """Queue a summary of the rows meeting ``condition`` (see `_summarize`); ``then``
        gets it, when there are such rows, to word its problems."""
        self.pending.append(("summary", condition, amount_sql, group_sql, then))

    def flush(self) -> None:
        """Run the queued checks: one parallel pass counts every kind of bad row at once
        (a CSV of twenty million rows is parsed once for all of them); only a kind that
        occurs gets a second, ordered pass that finds its rows' numbers."""
        checks, self.pending = self.pending, []
        if not checks:
            return
        counts = self.con.execute(
            "SELECT "
            + ", ".join(f"count(*) FILTER (WHERE {check[1]})" for check in checks)
            + " FROM source"
        ).fetchall()[0]
        for check, count in zip(checks, counts, strict=True):
            if not count:
                continue
            if check[0] == "cells":
                _kind, condition, column, value_sql, message, code, severity = check
                self._locate(column, condition, value_sql, message, code, severity)
            else:
                _kind, condition, amount_sql, group_sql, then = check
                then(self._summarize(condition, amount_sql, group_sql))

    def _summarize(
        self, condition: str, amount_sql: str, group_sql: str
    ) -> list[tuple[str, str, int, object, int, int, list[int]]]:
        """Rows meeting ``condition``, per file and group: (file, group, count, Σ amount,
        first row, last row, the first rows)."""
        found = self.con.execute(
            f"""WITH numbered AS ({self.numbered()})
                SELECT filename, {group_sql} AS costloop_group, count(*), sum({amount_sql}),
                       min(_row), max(_row), list(_row ORDER BY _row)[1:{GROUP_AFTER + 1}]
                FROM numbered WHERE {condition} GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
        self.con.execute("RESET threads")
        return [(f, g or "", n, total, lo, hi, rows) for f, g, n, total, lo, hi, rows in found]

    def numbered(self) -> str:
        """SQL of the source rows with ``_row``, each row's number in its file as Excel shows
        it (CSV: the header is row 1; Parquet: row 2 is the first record)."""
        if self.files.kind == "parquet":
            listed = ", ".join(_text(str(p)) for p in self.files.paths)
            nulls = ", ".join(_text(v) for v in _NULL_TEXTS)
            texts = [c for c, t in self.types.items() if t == "VARCHAR"]
            replaced = ", ".join(
                f"CASE WHEN trim({_quote(c)}) IN ({nulls}) THEN NULL ELSE {_quote(c)} END "
                f"AS {_quote(c)}"
                for c in texts
            )
            body = f" REPLACE ({replaced})" if replaced else ""
            return (
                f"SELECT * EXCLUDE (file_row_number){body}, file_row_number + 2 AS _row FROM "
                f"read_parquet([{listed}], union_by_name=true, filename=true, "
                "file_row_number=true)"
            )
        # CSV rows carry no number: one single-threaded pass reads the files in order,
        # so a row's place in the scan, less its file's first place, is its row.
        self.con.execute("SET threads TO 1")
        return """
            SELECT * EXCLUDE (_g, first), _g - first + 2 AS _row FROM (
                SELECT *, min(_g) OVER (PARTITION BY filename) AS first
                FROM (SELECT *, row_number() OVER () AS _g FROM source)
            )"""

    def _locate(self, column, condition, value_sql, message, code, severity) -> None:
        numbered = self.numbered()
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
    options: SourceOptions | None = None,
) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Check every row of the files and sum them into the Book's Usage frame.

    ``receivers`` and ``metrics`` (name key -> spelling) give names their
    workbook spelling and let an unknown department be named with a did-you-mean.
    Returns (usage, problems); usage is None when a required column is missing.
    """
    import duckdb

    reader = None
    try:
        reader = _Reader(files, options or SourceOptions())
        if reader.column("ChargePeriodStart") is not None:
            found = _focus_rows(reader)
        else:
            found = _usage_rows(reader)
        reader.flush()
        if found is None:
            return None, reader.problems
        rows, extra = found
        usage = _aggregate(reader, rows, receivers, metrics, extra)
        return usage, reader.problems
    except duckdb.Error as exc:
        # A file DuckDB cannot read (Excel's "CSV (Comma delimited)" is not UTF-8, a row
        # with more fields than the header, a damaged Parquet file): named, not a traceback.
        return None, [_unreadable(files, str(exc))]
    finally:
        if reader is not None:
            reader.con.close()


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


def _period_sql(reader: _Reader, column: str) -> tuple[str, str | None]:
    """(SQL giving the period text or NULL, SQL of the raw value when it is not one).

    A date or timestamp column (Parquet) gives its month (in UTC). Text is read by
    `usage_dates` once per distinct value, never guessed: ISO 8601 and ``YYYY-MM``,
    or the Settings UsageDateFormat.
    """
    kind = reader.types[column].upper()
    col = _quote(column)
    if kind.startswith(("DATE", "TIMESTAMP")):
        return f"strftime({col}, '%Y-%m')", f"CAST({col} AS VARCHAR)"
    table = reader.month_tables.get(column) or _month_table(reader, [column])
    text = f"CAST({col} AS VARCHAR)"
    return f"(SELECT costloop_period FROM {table} WHERE costloop_raw_text = {text})", text


def _month_table(reader: _Reader, columns: list[str]) -> str:
    """A table of each distinct date text of the (text) ``columns`` and its month, read by
    `usage_dates` once per text; all columns in one pass over the files."""
    month = month_reader(reader.options.date_pattern)
    lists = ", ".join(f"list(DISTINCT CAST({_quote(c)} AS VARCHAR))" for c in columns)
    (found,) = reader.con.execute(f"SELECT {lists} FROM source").fetchall()
    texts = sorted({v for values in found for v in (values or []) if v is not None})
    frame = pd.DataFrame([(v, month(v)) for v in texts], columns=["raw", "period"], dtype=object)
    reader._maps += 1
    table = f"costloop_period_map_{reader._maps}"
    reader.con.register(f"{table}_frame", frame)
    # Names no source column has: inside the subquery a bare column name binds to the map
    # first, and DuckDB matches names regardless of case (a source's Period is "period").
    reader.con.execute(
        f"CREATE OR REPLACE TABLE {table} AS "
        "SELECT CAST(raw AS VARCHAR) AS costloop_raw_text, "
        f"CAST(period AS VARCHAR) AS costloop_period FROM {table}_frame"
    )
    for column in columns:
        reader.month_tables[column] = table
    return table


def _date_message(label: str, reader: _Reader):
    """The message of a date that cannot be read (UsageDateFormat named when it is set)."""
    if reader.options.date_pattern is not None:
        fix = "; it fits neither ISO 8601 (2025-07-01) nor the Settings UsageDateFormat"
    else:
        fix = (
            "; costloop reads ISO 8601 (2025-07-01, 2025-07-01T00:00:00Z) and YYYY-MM, never "
            "guessing day from month — set Settings UsageDateFormat (e.g. M/D/YYYY) to read "
            "other dates"
        )

    def message(value: object) -> str:
        text = f"{label} must be a month as YYYY-MM text or a date, got {_shown(value)}"
        # The hint only for a date written another way, not for a word such as "July".
        return text + fix if isinstance(value, str) and _DATE_LIKE.match(value) else text

    return message


_DATE_LIKE = re.compile(r"^\s*\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}")


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
) -> tuple[str, str]:
    """Report bad rows; return (SQL of the period, SQL of the quantity) for good rows."""
    reader.department_sql, reader.department_column = department_sql, department_column
    period_sql, period_raw = _period_sql(reader, period)
    reader.report(
        period,
        f"({period_sql}) IS NULL",
        period_raw or "NULL",
        _date_message(period, reader),
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


def _usage_rows(reader: _Reader) -> tuple[str, list[str]] | None:
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
    return (
        f"""
        SELECT {period_sql} AS period, trim({dept_sql}) AS department,
               trim({metric_sql}) AS metric, {service_sql} AS service,
               {number} AS quantity, filename
        FROM source
        WHERE ({period_sql}) IS NOT NULL AND coalesce(trim({dept_sql}), '') <> ''
          AND coalesce(trim({metric_sql}), '') <> ''
          AND ({number}) IS NOT NULL AND ({number}) >= 0
    """,
        [],
    )


def _focus_department(reader: _Reader) -> tuple[str, str] | None:
    """(SQL of the department, the column messages name) of a FOCUS file."""
    if reader.tag:
        tags = reader.column("Tags")
        if tags is None:
            _missing(reader, ["Tags"], f"UsageDepartmentTag {reader.tag!r} needs FOCUS's Tags")
            return None
        return _tag_sql(reader, tags, reader.tag), tags
    account = reader.column("SubAccountId")
    if account is None:
        _missing(
            reader,
            ["SubAccountId"],
            "FOCUS usage needs SubAccountId, or set UsageDepartmentTag to a tag in Tags",
        )
        return None
    return f"CAST({_quote(account)} AS VARCHAR)", account


def _tag_sql(reader: _Reader, tags: str, key: str) -> str:
    """SQL of one tag's value in FOCUS's Tags (JSON text, or a Parquet map)."""
    if reader.types[tags].upper().startswith("MAP"):
        # map_extract gives a list in every DuckDB release (map[key] became the value
        # itself only in later ones, and a list's text "[ENG]" is no department).
        return f"CAST(map_extract({_quote(tags)}, {_text(key)})[1] AS VARCHAR)"
    path = _text('$."' + key.replace('"', '\\"') + '"')
    # TRY_CAST: a row whose Tags is not JSON is that row's error, not the whole read's.
    return f"json_extract_string(TRY_CAST({_quote(tags)} AS JSON), {path})"


def _tag_columns(reader: _Reader) -> dict[str, str]:
    """Tags keys the rules' WHERE names, as written in the files -> SQL of their value.

    Only keys a WHERE names are read: a tag is a column of the usage for the rules, and
    every kept column multiplies the rows the sum keeps.
    """
    tags = reader.column("Tags")
    wanted = {k for k in reader.options.rule_columns if reader.column(k) is None}
    # The Usage frame's own columns (and the sum's) are never a tag's: one name, one column.
    own = ("Period", "Department", "Metric", "Quantity", "Service", "Reference", "filename")
    wanted -= {name_key(c) for c in (*own, CHARGE_PERIOD)}
    if tags is None or not wanted:
        return {}
    col = _quote(tags)
    if reader.types[tags].upper().startswith("MAP"):
        keys_sql = f"SELECT DISTINCT unnest(map_keys({col})) FROM source"
    else:
        keys_sql = f"SELECT DISTINCT unnest(json_keys(TRY_CAST({col} AS JSON))) FROM source"
    found: dict[str, str] = {}
    for (key,) in sorted(reader.con.execute(keys_sql).fetchall(), key=lambda r: str(r[0])):
        if key is not None and name_key(key) in wanted:
            found.setdefault(name_key(key), key)
    return {key: _tag_sql(reader, tags, key) for key in found.values()}


def _number_or_zero(reader: _Reader, column: str | None) -> str:
    return "0" if column is None else f"coalesce({_number_sql(reader, column)}, 0)"


def _cost_column(reader: _Reader) -> str | None:
    """The FOCUS cost column billed: Settings UsageCost, else EffectiveCost, else BilledCost."""
    chosen = reader.options.cost
    if chosen is not None:
        if reader.column(chosen) is None:
            _missing(reader, [chosen], f"Settings UsageCost chooses {chosen}")
            return None
        return reader.column(chosen)
    for name in ("EffectiveCost", "BilledCost"):
        if reader.column(name) is not None:
            return reader.column(name)
    _missing(reader, ["EffectiveCost"], "FOCUS usage needs EffectiveCost or BilledCost")
    return None


def _focus_rows(reader: _Reader) -> tuple[str, list[str]] | None:
    """The SQL of a FOCUS file's usage rows (cost and consumption), and the extra columns."""
    cost_column = _cost_column(reader)
    department = _focus_department(reader) if cost_column is not None else None
    if department is None:
        return None
    dept_sql, dept_column = department
    reader.department_sql, reader.department_column = dept_sql, dept_column
    cost = next(c for c in (*FOCUS_COSTS, cost_column) if name_key(c) == name_key(cost_column))
    cost_number = _number_sql(reader, cost_column)
    cost_raw = f"CAST({_quote(cost_column)} AS VARCHAR)"
    reader.report(
        cost_column,
        f"({cost_number}) IS NULL",
        cost_raw,
        lambda v: f"{cost} must be a number, got {_shown(_as_number(v))}",
    )

    # The period billed: a correction's is its billing period's month (FOCUS 1.3: a closed
    # period's charges are never rewritten; the correction is billed when it is invoiced).
    charge_start = reader.column("ChargePeriodStart")
    charge_class = reader.column("ChargeClass")
    billing_start = reader.column("BillingPeriodStart")
    dates = [c for c in (charge_start, billing_start) if c is not None]
    texts = [c for c in dates if not reader.types[c].upper().startswith(("DATE", "TIMESTAMP"))]
    if texts:
        _month_table(reader, texts)  # both columns' dates in one pass over the files
    charge_sql, charge_raw = _period_sql(reader, charge_start)
    reader.report(
        charge_start,
        f"({charge_sql}) IS NULL",
        charge_raw or "NULL",
        _date_message(charge_start, reader),
        Reason.BAD_PERIOD,
    )
    period_sql, good_period = charge_sql, f"({charge_sql}) IS NOT NULL"
    if charge_class is not None and billing_start is not None:
        is_correction = f"lower(trim({_quote(charge_class)})) = 'correction'"
        billing_sql, billing_raw = _period_sql(reader, billing_start)
        reader.report(
            billing_start,
            f"{is_correction} AND ({billing_sql}) IS NULL",
            billing_raw or "NULL",
            _date_message(billing_start, reader),
            Reason.BAD_PERIOD,
        )
        period_sql = f"CASE WHEN {is_correction} THEN {billing_sql} ELSE {charge_sql} END"
        good_period = f"({period_sql}) IS NOT NULL AND ({charge_sql}) IS NOT NULL"

    keep = [good_period]
    currency = reader.column("BillingCurrency")
    if currency is not None and reader.options.currency:
        other = (
            f"{_quote(currency)} IS NOT NULL AND "
            f"upper(trim({_quote(currency)})) <> {_text(reader.options.currency.upper())}"
        )
        _currency_errors(reader, currency, other, cost_number, cost)
        keep.append(f"NOT ({other})")

    untagged = f"coalesce(trim({dept_sql}), '') = ''"
    route = reader.options.untagged
    if route is not None:
        dept_out = f"CASE WHEN {untagged} THEN {_text(route)} ELSE trim({dept_sql}) END"
    else:
        _untagged_error(reader, dept_column, untagged, f"coalesce({cost_number}, 0)", cost)
        dept_out = f"trim({dept_sql})"
        keep.append(f"NOT ({untagged})")
    _zero_cost_warnings(reader, cost_column, cost)

    service = reader.column("ServiceName")
    service_sql = f"coalesce(trim(CAST({_quote(service)} AS VARCHAR)), '')" if service else "''"
    extra: dict[str, str] = {CHARGE_PERIOD: charge_sql}
    for name in FOCUS_WHERE_COLUMNS:
        column = reader.column(name)
        if column is not None:
            extra[name] = f"trim(CAST({_quote(column)} AS VARCHAR))"
    extra.update(_tag_columns(reader))
    kept = ", ".join(f"coalesce({sql}, '') AS {_quote(name)}" for name, sql in extra.items())
    where = " AND ".join(f"({k})" for k in keep)
    # Each row gives its cost row and its consumption row from one pass over the files
    # (a UNION of two SELECTs would parse a CSV twice): a list of both, unnested.
    usage_rows = [f"struct_pack(m := {_text(cost)}, q := {cost_number})"]
    unit, consumed = reader.column("ConsumedUnit"), reader.column("ConsumedQuantity")
    if consumed is not None:
        number = _number_sql(reader, consumed)
        raw = f"CAST({_quote(consumed)} AS VARCHAR)"
        label = consumed
        # FOCUS allows a negative quantity: a refund or correction of earlier consumption.
        reader.report(
            consumed,
            f"({raw}) IS NOT NULL AND ({number}) IS NULL",
            raw,
            lambda v: f"{label} must be a number, got {_shown(_as_number(v))}",
        )
        unit_sql = "NULL" if unit is None else f"trim(CAST({_quote(unit)} AS VARCHAR))"
        _no_unit_warning(
            reader, consumed, unit, f"({number}) <> 0 AND coalesce({unit_sql}, '') = ''", number
        )
        if unit is not None:
            usage_rows.append(f"struct_pack(m := {unit_sql}, q := {number})")
    rows = f"""
        SELECT period, department, u.m AS metric, service, u.q AS quantity,
               {", ".join(_quote(name) for name in extra)}, filename
        FROM (
            SELECT {period_sql} AS period, {dept_out} AS department, {service_sql} AS service,
                   {kept}, filename, unnest([{", ".join(usage_rows)}]) AS u
            FROM source WHERE {where}
        )
        WHERE u.q IS NOT NULL AND coalesce(u.m, '') <> ''"""
    return rows, list(extra)


def _rows_named(rows: list[int], count: int) -> str:
    """``1 row (row 4)``, ``1,204 rows (rows 2, 5, 9 …)``."""
    shown = ", ".join(str(r) for r in rows[:3])
    if count == 1:
        return f"1 row (row {shown})"
    return f"{count:,} rows (rows {shown}{' …' if count > 3 else ''})"


def _verb(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _where(reader: _Reader, filename: str, column: str, low: int, high: int) -> str:
    """``focus.csv!AP2:AP998``: the cells of one column from the first row to the last."""
    letter = reader.letter(filename, column)
    sheet = reader.files.label(filename)
    return f"{sheet}!{letter}{low}" + (f":{letter}{high}" if high != low else "")


def _amount(value: object) -> str:
    number = 0 if value is None else value
    return f"{number:,.2f}"


def _currency_errors(reader: _Reader, column: str, other: str, cost_number: str, cost: str) -> None:
    """Rows billed in another currency than the workbook's: never summed with its money."""
    currency = reader.options.currency

    def then(found) -> None:
        for filename, code, n, total, low, high, rows in found:
            reader.problems.append(
                Problem(
                    Reason.BAD_VALUE,
                    Severity.ERROR,
                    _where(reader, filename, column, low, high),
                    f"{_rows_named(rows, n)} {_verb(n, 'is', 'are')} billed in "
                    f"{code}, not the workbook's Currency {currency} ({cost} {_amount(total)} "
                    f"{code}); costloop does not convert currencies: export the usage in "
                    f"{currency}, or bill {code} in a workbook of its own",
                )
            )

    group = f"upper(trim({_quote(column)}))"
    reader.summarize(other, f"coalesce({cost_number}, 0)", group, then)


def _untagged_error(reader: _Reader, column: str, untagged: str, amount: str, cost: str) -> None:
    """Rows without a department: one error with their count and cost, and the way out."""
    what = (
        f'no "{reader.tag}" tag in {column} (or it is blank, or {column} is not JSON)'
        if reader.tag
        else f"a blank {column}"
    )

    def then(found) -> None:
        for filename, _group, n, total, low, high, rows in found:
            reader.problems.append(
                Problem(
                    Reason.BAD_VALUE,
                    Severity.ERROR,
                    _where(reader, filename, column, low, high),
                    f"{_rows_named(rows, n)} {_verb(n, 'has', 'have')} {what}, so no "
                    f"department, and {cost} {_amount(total)} is not billed; tag who used "
                    f"{_verb(n, 'it', 'them')}, or set Settings UntaggedDepartment to the "
                    "department or cost pool that takes rows without one",
                )
            )

    reader.summarize(untagged, amount, "''", then)


def _no_unit_warning(
    reader: _Reader, column: str, unit: str | None, condition: str, number: str
) -> None:
    """A consumed quantity without a unit has no metric to bill: said, never dropped."""
    unit_name = unit or "ConsumedUnit"

    def then(found) -> None:
        for filename, _group, n, total, low, high, rows in found:
            reader.problems.append(
                Problem(
                    Reason.BAD_VALUE,
                    Severity.WARNING,
                    _where(reader, filename, column, low, high),
                    f"{_rows_named(rows, n)} {_verb(n, 'has', 'have')} a {column} "
                    f"but a blank {unit_name} (quantity {_quantity(total)}): that consumption "
                    "is no metric, so no rule bills it (the rows' cost is billed); fill "
                    f"{unit_name} in the export",
                )
            )

    reader.summarize(condition, number, "''", then)


def _quantity(value: object) -> str:
    from decimal import Decimal

    number = Decimal(0) if value is None else Decimal(value)
    return f"{number.normalize():,f}"


def _zero_cost_warnings(reader: _Reader, cost_column: str, cost: str) -> None:
    """The cost billed is zero where another FOCUS cost is not (Oracle's EffectiveCost is
    0 throughout): bills of 0.00 a warning names, per provider, with the other's amount.

    The other is BilledCost (what the invoice says), or EffectiveCost when BilledCost
    is the one billed.
    """
    other_name = next(
        (n for n in ("BilledCost", "EffectiveCost") if name_key(n) != name_key(cost_column)), ""
    )
    other = reader.column(other_name)
    if other is None:
        return
    chosen = _number_sql(reader, cost_column)  # a cell that is no number is its own error
    other_number = _number_or_zero(reader, other)
    provider = reader.column("ProviderName")
    group = f"trim({_quote(provider)})" if provider else "''"

    def then(found) -> None:
        for filename, name, n, total, low, high, rows in found:
            of = f' of {provider} "{name}"' if name else ""
            reader.problems.append(
                Problem(
                    Reason.BAD_VALUE,
                    Severity.WARNING,
                    _where(reader, filename, cost_column, low, high),
                    f"{cost} is 0 on {_rows_named(rows, n)}{of} where {other_name} is not "
                    f"({other_name} {_amount(total)} there), so they bill 0.00; if the export "
                    f"leaves {cost} out, set Settings UsageCost to {other_name}",
                )
            )

    reader.summarize(f"({chosen}) = 0 AND {other_number} <> 0", other_number, group, then)


def _aggregate(
    reader: _Reader,
    rows: str,
    receivers: dict[str, str],
    metrics: dict[str, str],
    extra: list[str],
) -> pd.DataFrame:
    """Sum the good rows per period, department, metric, service and ``extra`` columns
    (FOCUS's, for WHERE); check the names.

    A total may be negative: a FOCUS credit or refund larger than the period's charges
    is a credit on the bill, never a stopped run.
    """
    con = reader.con
    kept = "".join(f", {_quote(name)}" for name in extra)
    con.execute(
        f"""CREATE TABLE summed AS
            SELECT period, department, metric, service{kept}, sum(quantity) AS quantity,
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
    extra_s = "".join(f", s.{_quote(name)}" for name in extra)
    summed = con.execute(
        f"""WITH named AS (
               SELECT s.period, CAST(d.canonical AS VARCHAR) AS department,
                      CAST(m.canonical AS VARCHAR) AS metric, s.service{extra_s},
                      sum(s.quantity) AS quantity, min(s.filename) AS filename
               FROM summed s
               JOIN department_map_frame d ON s.department = CAST(d.raw AS VARCHAR)
               JOIN metric_map_frame m ON s.metric = CAST(m.raw AS VARCHAR)
               GROUP BY ALL)
           SELECT period, department, metric, service{kept}, CAST(quantity AS DOUBLE) AS q,
                  CAST(CAST(quantity AS DOUBLE) AS DECIMAL(38, 9)) = quantity AS exact, filename
           FROM named ORDER BY period, department, metric, service{kept}"""
    ).df()
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
    departments_col = summed["department"].to_numpy(dtype=object)
    keys = pd.Series(departments_col, dtype=object).map(name_key).to_numpy(dtype=object)
    frame = {
        "Period": summed["period"].to_numpy(dtype=object),
        "Department": departments_col,
        "Metric": summed["metric"].to_numpy(dtype=object),
        "Quantity": summed["q"].to_numpy(dtype=np.float64),
        "Service": summed["service"].to_numpy(dtype=object),
        "Reference": np.full(len(summed), "", dtype=object),
    }
    for name in extra:
        frame[name] = summed[name].to_numpy(dtype=object)
    frame["_row"] = np.zeros(len(summed), dtype=np.int64)
    frame["_key"] = keys
    return pd.DataFrame(frame)


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
    # sheet (its rows come from the files now) must fail `check`, not only `run`; the
    # FOCUS columns kept from the files (ChargeCategory, a Tags key, …) can be named.
    kept = {name_key(c): c for c in usage.frame.columns if not c.startswith("_")}
    columns = dict(book.columns)
    sheet = {key: spot for key, spot in columns.get("Usage", {}).items() if key in kept}
    for key, header in kept.items():
        sheet.setdefault(key, (header, "?"))
    columns["Usage"] = sheet
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
    options, problems = source_options(book)
    if options is None:
        return None, problems
    receivers = dict(book.pools)
    receivers.update(book.department_names)
    usage, problems = read_usage_source(files, receivers, book.metrics, options)
    return (None if usage is None else _SourceUsage(usage, files)), problems


def _setting(book: Book, key: str) -> tuple[str, str]:
    """(value as written, its cell) of a Settings key ('' when absent)."""
    settings = book.settings
    found = {_compact(k): k for k in settings.raw}.get(key)
    if found is None:
        return "", "Settings"
    return settings.raw.get(found, "").strip(), settings.cells.get(found, "Settings")


def source_options(book: Book) -> tuple[SourceOptions | None, list[Problem]]:
    """Settings UsageDepartmentTag, UsageDateFormat, UsageCost and UntaggedDepartment, checked
    at their cells; the currency and the rules' WHERE columns. None when one is wrong."""
    from costloop.rules.parser import parse_rules

    problems: list[Problem] = []

    def bad(where: str, message: str) -> None:
        problems.append(Problem(Reason.BAD_SETTING, Severity.ERROR, where, message))

    tag, _ = _setting(book, TAG_KEY)
    date_format, date_cell = _setting(book, "usagedateformat")
    pattern = None
    if date_format:
        pattern, why = date_format_pattern(date_format)
        if why:
            bad(date_cell, why)
    cost_text, cost_cell = _setting(book, "usagecost")
    cost = None
    if cost_text:
        cost = next((c for c in FOCUS_COSTS if name_key(c) == name_key(cost_text)), None)
        if cost is None:
            bad(
                cost_cell,
                f"UsageCost must be one of {', '.join(FOCUS_COSTS)} (the FOCUS cost column "
                f"to bill), got {cost_text!r}",
            )
    untagged_text, untagged_cell = _setting(book, "untaggeddepartment")
    receivers = dict(book.pools)
    receivers.update(book.department_names)
    untagged = None
    if untagged_text:
        untagged = receivers.get(name_key(untagged_text))
        if untagged is None:
            near = closest(untagged_text, receivers.values())
            fix = did_you_mean(near) if near else "name one of Departments or a pool"
            bad(
                untagged_cell,
                f"UntaggedDepartment {untagged_text!r} is not a department or a cost pool; {fix}",
            )
    if problems:
        return None, problems
    rules, _ = parse_rules(book.rules)  # their problems are reported where rules are checked
    columns = frozenset(
        cond.column.key for rule in rules for cond in getattr(rule, "where_clause", ())
    )
    departments = {name_key(str(c)) for c in book.departments.columns}
    return (
        SourceOptions(
            tag=tag or None,
            date_pattern=pattern,
            cost=cost,
            currency=book.settings.currency,
            untagged=untagged,
            rule_columns=columns - departments,
        ),
        problems,
    )


def _compact(key: str) -> str:
    return name_key(key).replace(" ", "").replace("_", "")
