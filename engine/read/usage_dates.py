"""The month of a date written in a usage file, never guessed.

A CSV has no date cells, only text, and the same text means two days:
``4/1/2025`` is the first of April in the United States and the fourth of
January nearly everywhere else. DuckDB's CSV sniffer picks one from the first
rows; costloop does not. It reads, by itself:

- ISO 8601 (``2025-04-01``, ``2025-04-01T13:00:00Z``, ``2025-04-01 13:00:00``,
  ``2025-04-01T13:00:00-07:00``, ``2025-04-01 13:00:00 UTC``), a time with
  ``Z``, ``UTC`` or an offset taken in UTC
  (FOCUS's timestamps are UTC: a charge at 20:00 on 31 March in California is
  April's), one without a zone as written;
- ``YYYY-MM`` (the Usage sheet's own Period rule, ``YYYY-M`` tolerated).

Anything else is unread (an error naming its cell) unless Settings
``UsageDateFormat`` says how the file writes dates: ``M/D/YYYY``, ``D/M/YYYY``,
``M/D/YY``, ``DD.MM.YYYY``, ``YYYY/MM/DD``… (``D``/``DD`` day, ``M``/``MM``
month, ``YY``/``YYYY`` year; a time after the date is allowed and ignored, the
month being all a period needs). With it, a value that does not fit the format
is still an error: ``7/1/25`` is not read by ``M/D/YYYY``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from costloop.engine.model.periods import parse_period

_TOKENS = {"YYYY": r"(?P<y4>\d{4})", "YY": r"(?P<y2>\d{2})", "MM": r"(?P<m>\d{2})",
           "M": r"(?P<m>\d{1,2})", "DD": r"(?P<d>\d{2})", "D": r"(?P<d>\d{1,2})"}  # fmt: skip
_TOKEN = re.compile("YYYY|YY|MM|M|DD|D")
_SEPARATORS = set("/-. ")
_UTC_SUFFIX = re.compile(r"(?:\s*UTC|z)$")
# Two-digit years are this century's: usage files are about the recent past.
_CENTURY = 2000


def date_format_pattern(text: str) -> tuple[re.Pattern[str] | None, str | None]:
    """(the regular expression of a UsageDateFormat, None) or (None, why it is not one)."""
    fmt = text.strip().upper()
    parts, seen, at = [], [], 0
    for found in _TOKEN.finditer(fmt):
        between = fmt[at : found.start()]
        if any(ch not in _SEPARATORS for ch in between):
            break
        parts.append(re.escape(between))
        parts.append(_TOKENS[found.group(0)])
        seen.append(found.group(0)[0])
        at = found.end()
    rest = fmt[at:]
    if sorted(seen) != ["D", "M", "Y"] or rest:
        return None, (
            f"UsageDateFormat must spell a date with D (day), M (month) and YYYY or YY (year) "
            f"and separators such as / - or ., e.g. M/D/YYYY; got {text.strip()!r}"
        )
    # A time may follow the date (Excel writes "7/1/2025 0:00"); only the month is kept.
    return re.compile("^" + "".join(parts) + r"(?:[ T].*)?$"), None


def month_reader(pattern: re.Pattern[str] | None) -> Callable[[str], str | None]:
    """A function giving ``YYYY-MM`` of one written date, or None when it cannot be read."""

    def month(text: str) -> str | None:
        value = text.strip()
        if not value:
            return None
        period = parse_period(value)
        if period is not None:
            return period
        iso = _iso_month(value)
        if iso is not None or pattern is None:
            return iso
        found = pattern.match(value)
        if found is None:
            return None
        groups = found.groupdict()
        year = int(groups["y4"]) if groups.get("y4") else _CENTURY + int(groups["y2"])
        try:
            day = dt.date(year, int(groups["m"]), int(groups["d"]))
        except ValueError:  # 2/30/2025: no such day, so not a date at all
            return None
        return f"{day.year:04d}-{day.month:02d}"

    return month


def _iso_month(text: str) -> str | None:
    # ISO 8601's extended form only: fromisoformat also takes "20250401", which a file of
    # numbers could hold by chance, so the text must start YYYY-MM-DD.
    if not re.match(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])", text):
        return None
    # "… 00:00:00 UTC" (as BigQuery exports write it) and a lower-case "z" are UTC too.
    text = _UTC_SUFFIX.sub("+00:00", text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment.year:04d}-{moment.month:02d}"
