"""The bill page's two charts, drawn with Altair and rendered to SVG on the server.

The page shows them with ``<img src=".../chart.svg">``: no JavaScript runs in the
browser and the SVG that vl-convert writes has no style attribute, so the page's
Content-Security-Policy stays as strict as it is. The figures on the page and in
its tables are the exact Decimals; a chart needs only the bar heights, so it is the
one place an amount becomes a float.

Rendering takes tens of milliseconds, so each chart is made once per snapshot and
kept: `ChartCache` forgets everything when the portal moves to a new run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from decimal import Decimal

import altair as alt
import pandas as pd
import vl_convert

from costloop.bills.statement import Statement
from costloop.bills.workbook import month_label

SVG_TYPE = "image/svg+xml"
CHARTS = ("months", "budget")
"""The charts a bill page has: ``months.svg`` and ``budget.svg``."""

_ACCENT, _MUTED, _PLAN = "#1f5f99", "#9fb8d3", "#c9a227"
_WIDTH, _HEIGHT = 620, 220


def _height(amount: Decimal | None) -> float | None:
    return None if amount is None else float(amount)


def _axis_y(title: str) -> alt.Y:
    # From zero: a bar chart with a cut axis makes a 1% change look like a doubling.
    return alt.Y("Amount:Q", title=title, axis=alt.Axis(format=",.0f"), scale=alt.Scale(zero=True))


def months_chart(s: Statement) -> dict:
    """The fiscal year's bills by month, this bill's month dark; months not billed yet
    keep their place on the axis with no bar."""
    data = pd.DataFrame(
        {
            "Month": [month_label(p) for p, _ in s.months],
            "Amount": [_height(m) for _, m in s.months],
            "Bill": ["this bill" if p == s.period else "other months" for p, _ in s.months],
        }
    )
    order = list(data["Month"])
    chart = (
        alt.Chart(data, title=f"Your bills by month, {s.fiscal_year} ({s.currency})")
        .mark_bar()
        .encode(
            x=alt.X("Month:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
            y=_axis_y(s.currency),
            color=alt.Color(
                "Bill:N",
                scale=alt.Scale(domain=["this bill", "other months"], range=[_ACCENT, _MUTED]),
                legend=None,
            ),
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )
    return chart.to_dict()


def budget_chart(s: Statement) -> dict:
    """Budget against actual by month, up to this bill's month: two bars a month."""
    rows = []
    for (period, planned), (_, charged) in zip(s.budget, s.charged, strict=True):
        if planned is None and charged is None:
            continue
        rows.append({"Month": month_label(period), "Kind": "Budget", "Amount": _height(planned)})
        rows.append({"Month": month_label(period), "Kind": "Actual", "Amount": _height(charged)})
    data = pd.DataFrame(rows, columns=["Month", "Kind", "Amount"])
    order = list(dict.fromkeys(data["Month"]))
    chart = (
        alt.Chart(data, title=f"Budget against actual by month ({s.currency})")
        .mark_bar()
        .encode(
            x=alt.X("Month:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("Kind:N", sort=["Budget", "Actual"]),
            y=_axis_y(s.currency),
            color=alt.Color(
                "Kind:N",
                scale=alt.Scale(domain=["Budget", "Actual"], range=[_PLAN, _ACCENT]),
                legend=alt.Legend(title=None, orient="top"),
            ),
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )
    return chart.to_dict()


_DRAW = {"months": months_chart, "budget": budget_chart}


def render_svg(s: Statement, kind: str) -> bytes:
    return vl_convert.vegalite_to_svg(_DRAW[kind](s)).encode("utf-8")


class ChartCache:
    """Rendered charts of the current snapshot, by (department key, period, chart).

    At most ``limit`` charts are kept, the least recently asked for dropped first: a
    chart is about 12 KB, and 2,000 departments with a year of closed periods would
    otherwise keep every chart ever asked for (some 600 MB)."""

    def __init__(self, limit: int = 4096) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._snapshot: object | None = None
        self._svgs: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    def svg(self, snapshot: object, key: str, s: Statement, kind: str) -> bytes:
        name = (key, s.period, kind)
        with self._lock:
            if snapshot is not self._snapshot:  # a new run: the old charts are of the old one
                self._snapshot, self._svgs = snapshot, OrderedDict()
            made = self._svgs.get(name)
            if made is not None:
                self._svgs.move_to_end(name)
                return made
        made = render_svg(s, kind)  # outside the lock: two charts render at once
        with self._lock:
            if snapshot is self._snapshot:
                self._svgs[name] = made
                while len(self._svgs) > self._limit:
                    self._svgs.popitem(last=False)
        return made

    def __len__(self) -> int:
        return len(self._svgs)
