"""What was issued: the records of every closed period, and the hash chain that seals them.

`costloop close BOOK --period P` copies the period's bill lines, journal lines and
the figures Recovery and Variance show (each pool's cost, recovery and actuals,
each metric's usage) into the engine-owned sheet `Issued`. From then on the period
is never recomputed for what it shows: a rerun of it is refused, Recovery, Variance
and Compliance take it from here, and a change to its inputs is billed in the next
open period as a reversal and a correction (docs/audit.md).

The seal (docs/audit.md#the-hash-chain):

- each row carries ``Check``: four hex digits of SHA-256 per cell, so an edited
  cell is named exactly;
- each closed period carries ``Hash``, on every one of its rows: SHA-256 over the
  previous closed period's hash and the canonical text of every row of the period,
  so a row added, removed or moved, or a period's rows rewritten together with
  their checks, breaks the chain at that period and every later one.

The canonical text of a cell is what the cell holds after a round trip through a
saved .xlsx (a number as the double Excel stores, a whole number without ``.0``),
so the seal is the same whether the sheet is read from a file, Excel or memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from costloop.engine.model.sheets import ISSUED
from costloop.rules.ast import name_key

ISSUED_SHEET = ISSUED

ISSUED_COLUMNS = [
    "Closed Period",
    "Record",
    "Line Type",
    "Charge Period",
    "Entry",
    "Department",
    "Name",
    "Fund",
    "Account",
    "Pool",
    "Metric",
    "Quantity",
    "Rate",
    "Amount",
    "Debit",
    "Credit",
    "Memo",
    "Rule",
    "Cost",
    "Unallocated",
    "Run ID",
    "Input Fingerprint",
    "Closed (UTC)",
    "Hash",
    "Check",
]
SEALED_COLUMNS = ISSUED_COLUMNS[: ISSUED_COLUMNS.index("Hash")]
"""The columns each row's ``Check`` covers (all but the seal itself)."""

# What a row records (the Record column).
BILL, JOURNAL, RECOVERY, ACTUAL, USAGE = "Bill", "Journal", "Recovery", "Actual", "Usage"
RECORDS = (BILL, JOURNAL, RECOVERY, ACTUAL, USAGE)

# Bill line types (the Bills sheet's Line Type column, docs/contract.md#output-sheets).
CHARGE, REVERSAL, CORRECTION, CREDIT_MEMO = "Charge", "Reversal", "Correction", "Credit memo"
LINE_TYPES = (CHARGE, REVERSAL, CORRECTION, CREDIT_MEMO)

GENESIS = "0" * 64
"""The hash the first closed period chains to."""

_CELL_DIGITS = 4


def canonical(value: object) -> str:
    """A cell's value as text, exactly as it reads back from a saved workbook."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        number = float(value)  # a cell stores a double, whatever was written
        if number != number:
            return ""
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        return repr(number)
    return str(value)


def cell_digest(value: object) -> str:
    """Four hex digits of SHA-256 of one cell's canonical text."""
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()[:_CELL_DIGITS]


def row_check(values: Sequence[object]) -> str:
    """The ``Check`` of a row: one cell digest per sealed column, in column order."""
    return "".join(cell_digest(v) for v in values)


def period_hash(previous: str, rows: Iterable[Sequence[object]]) -> str:
    """SHA-256 over the previous period's hash and the canonical text of every sealed cell."""
    digest = hashlib.sha256(previous.encode("ascii"))
    for row in rows:
        digest.update(b"\x1e")
        digest.update("\x1f".join(canonical(v) for v in row).encode("utf-8"))
    return digest.hexdigest()


def money_of(value: object, minor_unit: int) -> Decimal:
    """An Amount, Debit or Credit cell as exact money (a blank is 0)."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(Decimal(1).scaleb(-minor_unit))


def quantity_of(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@dataclass
class ClosedPeriod:
    """One closed period's rows (dicts by column) and its seal."""

    period: str
    rows: list[dict[str, object]]
    first_row: int
    """The Excel row of its first record on the Issued sheet."""
    run_id: str
    fingerprint: str
    closed_at: str
    hash: str

    def records(self, kind: str) -> list[dict[str, object]]:
        return [r for r in self.rows if r["Record"] == kind]


@dataclass
class Issued:
    """Every closed period, oldest first, as the Issued sheet holds them."""

    periods: list[ClosedPeriod] = field(default_factory=list)
    minor_unit: int = 2

    @property
    def closed(self) -> list[str]:
        return [p.period for p in self.periods]

    @property
    def last_hash(self) -> str:
        return self.periods[-1].hash if self.periods else GENESIS

    @property
    def end_row(self) -> int:
        """The Excel row after the last record (the header is row 1)."""
        return 2 + sum(len(p.rows) for p in self.periods)

    def get(self, period: str) -> ClosedPeriod | None:
        return next((p for p in self.periods if p.period == period), None)

    def is_closed(self, period: str) -> bool:
        return self.get(period) is not None

    def all_records(self, kind: str) -> list[dict[str, object]]:
        return [r for p in self.periods for r in p.records(kind)]

    # --- what was billed ----------------------------------------------------------
    def bill_frame(self, rows: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
        """Issued bill rows as a Bills frame (exact Decimal money and quantities)."""
        minor = self.minor_unit
        data = []
        for r in rows:
            data.append(
                {
                    "Period": r["Closed Period"],
                    "Department": r["Department"],
                    "Name": r["Name"],
                    "Pool": r["Pool"],
                    "Metric": r["Metric"],
                    "Quantity": quantity_of(r["Quantity"]),
                    "Rate": quantity_of(r["Rate"]),
                    "Amount": money_of(r["Amount"], minor),
                    "Rule": r["Rule"],
                    "Charge Period": r["Charge Period"],
                    "Line Type": r["Line Type"],
                }
            )
        return pd.DataFrame(data, columns=columns)

    def standing_lines(self, charge_period: str) -> list[dict[str, object]]:
        """The bill lines that stand for ``charge_period`` today, per department and pool.

        A period's Charge lines stand until a later closed period corrects them; then
        that period's Correction lines stand (the Reversal beside them cancelled what
        stood before), until a later correction again.
        """
        latest: dict[tuple[str, str], tuple[str, list]] = {}
        for closed in self.periods:
            for r in closed.records(BILL):
                if r["Charge Period"] != charge_period or r["Line Type"] not in (
                    CHARGE,
                    CORRECTION,
                ):
                    continue
                key = (name_key(str(r["Department"])), name_key(str(r["Pool"])))
                held = latest.get(key)
                if held is None or held[0] != closed.period:
                    latest[key] = held = (closed.period, [])
                held[1].append(r)
        return [r for _, rows in latest.values() for r in rows]

    def entry_of(self, charge_period: str, department: str, pool: str) -> str | None:
        """The journal entry that posted a department's pool for ``charge_period`` last."""
        found = None
        dkey, pkey = name_key(department), name_key(pool)
        for closed in self.periods:
            for r in closed.records(JOURNAL):
                if (
                    r["Charge Period"] == charge_period
                    and name_key(str(r["Department"])) == dkey
                    and name_key(str(r["Pool"])) == pkey
                ):
                    found = str(r["Entry"])
        return found

    def credited_disputes(self) -> dict[str, str]:
        """Dispute id (name key) -> the closed period whose credit memo carried it."""
        out: dict[str, str] = {}
        for closed in self.periods:
            for r in closed.records(BILL):
                if r["Line Type"] == CREDIT_MEMO and r["Rule"]:
                    out.setdefault(name_key(str(r["Rule"])), closed.period)
        return out

    def recognised(self, kind: str, charge_period: str, name_column: str, value_column: str):
        """{name key: Σ value} of every ``kind`` record for ``charge_period``, in any
        closed period (the figure at close plus every correction recognised since)."""
        out: dict[str, Decimal] = {}
        for r in self.all_records(kind):
            if r["Charge Period"] != charge_period or r["Line Type"] == CREDIT_MEMO:
                continue  # a credit memo settles a dispute; it is no change of the inputs
            key = name_key(str(r[name_column]))
            out[key] = out.get(key, Decimal(0)) + (quantity_of(r[value_column]) or Decimal(0))
        return out


def sealed_rows(
    previous_hash: str,
    period: str,
    records: list[dict[str, object]],
    run_id: str,
    fingerprint: str,
    closed_at: str,
) -> tuple[list[tuple], str]:
    """Rows for the Issued sheet of one closing period, each with its Check, and its hash."""
    stamped = []
    for record in records:
        values = dict.fromkeys(SEALED_COLUMNS) | record
        values |= {
            "Closed Period": period,
            "Run ID": run_id,
            "Input Fingerprint": fingerprint,
            "Closed (UTC)": closed_at,
        }
        stamped.append([values[c] for c in SEALED_COLUMNS])
    seal = period_hash(previous_hash, stamped)
    return [(*row, seal, row_check(row)) for row in stamped], seal
