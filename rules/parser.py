"""Parse `Rules` cells into the rule AST (docs/rules-language.md).

Choices this module makes where the language leaves room (also in docs/rules-language.md):

* **What Excel does to typed text is undone before lexing, 1-for-1**, so every
  span still indexes the cell text as read: curly double quotes become ``"``,
  non-breaking and other unicode spaces become a space, Alt+Enter line breaks
  (LF or CRLF) are whitespace, and the ``_x000D_`` escapes some writers leave
  in shared strings become spaces of the same length. Curly *single* quotes
  are not name quotes: a name in them gets a message saying so.
* **Column names are bare words**: a letter or underscore, then letters,
  digits or underscores (``Headcount``, ``Cost_Center``). A header with spaces
  is written Excel-table style in square brackets: ``BY [Cost Center]``.
* **Numbers are plain**: ``1000``, ``0.05``, ``.5``. ``1,000`` is rejected with
  "write 1000 without a thousands separator" because the comma already
  separates shares, tiers and IN values. ``60 %`` (a space before the sign) is
  accepted as ``60%``.
* The trailing clauses of ALLOCATE (``WHERE``, ``IF NO USAGE``,
  ``RECIPROCAL``) may come in any order, each at most once.
* ``PERIOD`` and ``PERIODS`` are interchangeable (``OVER 1 PERIOD``,
  ``PER PERIODS``).
* A cell holding only a ``--`` comment is treated like a blank cell.
* Within one cell the first syntax mistake is reported (what follows it can't
  be read reliably); across cells every mistake is reported.

The lark parser is built lazily on first use and cached by lark in the temp
directory, keyed by a hash of grammar, options and lark version, so importing
this module is cheap and a read-only install still works (a cache that cannot
be written is skipped).
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING

from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import (
    Allocate,
    ByPlan,
    Charge,
    Column,
    ColumnDriver,
    Condition,
    CostDriver,
    EvenDriver,
    FixedRate,
    Forecast,
    Growth,
    Name,
    RateCard,
    Receivers,
    Rule,
    RuleCell,
    RunRate,
    Share,
    SharesDriver,
    Span,
    Tier,
    Tiered,
    Trend,
    UsageDriver,
)

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

GRAMMAR_FILE = "grammar.lark"
DEFAULT_RUN_RATE_PERIODS = 3

_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02"
_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000\u200b\u200c\u200d\u2060\ufeff\u0085\u2028\u2029\x0b\x0c"
)
_TRANSLATE = str.maketrans(
    {**{c: '"' for c in _DOUBLE_QUOTES}, **{c: " " for c in _SPACES}, "\uff05": "%"}
)
_EXCEL_ESCAPE = re.compile(r"_x00(?:0[9AaDd])_")
_ONLY_COMMENTS = re.compile(r"(?:\s|--[^\n]*)*")


def normalise(text: str) -> str:
    """The cell text with Excel's typing artefacts undone, same length as ``text``."""
    out = text.translate(_TRANSLATE)
    if "_x00" in out:
        out = _EXCEL_ESCAPE.sub(lambda m: " " * len(m.group()), out)
    return out


def is_blank(text: str) -> bool:
    """Blank, or nothing but whitespace and ``--`` comments."""
    return _ONLY_COMMENTS.fullmatch(normalise(text)) is not None


@functools.cache
def lark_parser(strict: bool = False) -> Lark:
    """The LALR parser, built once (``strict=True`` is for the grammar's own test)."""
    from lark import Lark

    grammar = resources.files("costloop.rules").joinpath(GRAMMAR_FILE).read_text("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        strict=strict,
        cache=not strict,
    )


def parse_rule(cell: RuleCell) -> tuple[Rule | None, list[Problem]]:
    """One Rules cell to its statement, or None with the problems that stopped it."""
    if not cell.enabled or is_blank(cell.text):
        return None, []
    from lark.exceptions import UnexpectedInput

    text = normalise(cell.text)
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput:
        from costloop.rules.diagnose import diagnose

        return None, [diagnose(cell, text)]
    builder = _Builder(cell, text)
    rule = builder.statement(tree.children[0])
    return rule, builder.problems


def parse_rules(cells: list[RuleCell]) -> tuple[list[Rule], list[Problem]]:
    """Every enabled, non-blank cell parsed; every problem of every cell."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    for cell in cells:
        rule, found = parse_rule(cell)
        problems.extend(found)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _span(node: Tree | Token) -> Span:
    """From the node's first token to its last (cheaper than lark's propagate_positions;
    brackets and % are named terminals, so they stay in the tree and count)."""
    first = last = node
    while not _is_token(first):
        first = first.children[0]
    while not _is_token(last):
        last = last.children[-1]
    return Span(first.start_pos, last.end_pos)


class _Builder:
    """Turns one lark tree into AST nodes, collecting problems lark cannot see."""

    def __init__(self, cell: RuleCell, text: str) -> None:
        self.cell = cell
        self.text = text
        self.problems: list[Problem] = []

    def problem(self, code: Reason, message: str, span: Span) -> None:
        self.problems.append(
            Problem(
                code=code,
                severity=Severity.ERROR,
                where=self.cell.where,
                message=message,
                text=self.cell.text,
                start=span.start,
                end=span.end,
                rule_id=self.cell.rule_id,
            )
        )

    def common(self, tree: Tree) -> dict:
        return {
            "rule_id": self.cell.rule_id,
            "where": self.cell.where,
            "text": self.cell.text,
            "span": _span(tree),
        }

    def statement(self, tree: Tree) -> Rule:
        return getattr(self, tree.data)(tree)

    # --- statements ---------------------------------------------------------

    def allocate(self, tree: Tree) -> Allocate:
        _kw, pool, _to, receivers, spread, *options = tree.children
        clauses: dict[str, Tree] = {}
        for option in options:
            if option.data in clauses:
                self.problem(
                    Reason.SYNTAX, f"{_CLAUSE_WORDS[option.data]} is given twice", _span(option)
                )
            clauses.setdefault(option.data, option)
        where = clauses.get("where_clause")
        if_no_usage = clauses.get("if_no_usage")
        return Allocate(
            **self.common(tree),
            pool=self.name(pool),
            receivers=self.receivers(receivers),
            driver=self.driver(spread),
            where_clause=self.where_clause(where) if where is not None else (),
            if_no_usage=if_no_usage.children[-1].upper() if if_no_usage is not None else "FAIL",
            reciprocal="reciprocal" in clauses,
        )

    def charge(self, tree: Tree) -> Charge:
        _kw, pool, _for, metric, pricing, *rest = tree.children
        return Charge(
            **self.common(tree),
            pool=self.name(pool),
            metric=self.name(metric),
            pricing=self.pricing(pricing),
            where_clause=self.where_clause(rest[0]) if rest else (),
        )

    def forecast(self, tree: Tree) -> Forecast:
        _kw, kind, name, _by, method = tree.children
        return Forecast(
            **self.common(tree),
            kind=kind.upper(),
            name=self.name(name),
            method=self.method(method),
        )

    # --- parts --------------------------------------------------------------

    def name(self, tree: Tree) -> Name:
        token = tree.children[0]
        span = _span(token)
        text = self.text[span.start + 1 : span.end - 1].strip()
        if not text:
            self.problem(Reason.SYNTAX, "the name between the quotes is empty", span)
        return Name(text, span)

    def column(self, tree: Tree) -> Column:
        token = tree.children[0]
        span = _span(token)
        text = str(token)
        if token.type == "BRACKETED":
            text = text[1:-1].strip()
        return Column(text, span)

    def receivers(self, tree: Tree) -> Receivers:
        departments = False
        pools = False
        names: list[Name] = []
        for target in tree.children:
            if _is_token(target):  # AND
                continue
            if target.data == "departments_target":
                departments = True
            else:
                pools = True
                names.extend(self.name(n) for n in target.children[1:])
        return Receivers(departments, pools, tuple(names), _span(tree))

    def driver(self, spread: Tree):
        if spread.data == "evenly":
            return EvenDriver(_span(spread))
        tree = spread.children[1]
        span = _span(tree)
        kind = tree.data
        if kind == "usage_driver":
            return UsageDriver(self.name(tree.children[1]), span)
        if kind == "column_driver":
            return ColumnDriver(self.column(tree.children[0]), span)
        if kind == "cost_driver":
            return CostDriver(span)
        if kind == "evenly":
            return EvenDriver(span)
        shares = tuple(
            Share(self.number(share.children[0]), self.name(share.children[2]), _span(share))
            for share in tree.children
        )
        return SharesDriver(shares, span)

    def where_clause(self, tree: Tree) -> tuple[Condition, ...]:
        return tuple(self.condition(c) for c in tree.children if not _is_token(c))

    def condition(self, tree: Tree) -> Condition:
        column = self.column(tree.children[0])
        if tree.data == "compare":
            op = str(tree.children[1])
            values = (self.value(tree.children[2]),)
        else:
            op = "IN"
            values = tuple(self.value(v) for v in tree.children[2:] if v.type not in _BRACKETS)
        return Condition(column, op, values, _span(tree))

    def value(self, token: Token) -> str | Decimal:
        if token.type == "NAME":
            return self.text[token.start_pos + 1 : token.end_pos - 1].strip()
        return self.number(token)

    def number(self, token: Token) -> Decimal:
        return Decimal(str(token))

    def periods(self, token: Token) -> int:
        """A count of periods: whole (how few is too few is checks.py's call)."""
        value = self.number(token)
        if value != value.to_integral_value():
            self.problem(
                Reason.BAD_FORECAST,
                f"the number of periods must be a whole number, got {token}",
                _span(token),
            )
        return int(value)

    def pricing(self, tree: Tree):
        span = _span(tree)
        if tree.data == "fixed_rate":
            return FixedRate(self.number(tree.children[1]), span)
        if tree.data == "rate_card":
            return RateCard(span)
        tiers = []
        for band in tree.children[1:]:
            numbers = [c for c in band.children if c.type == "NUMBER"]
            width = None if band.data == "above_tier" else self.number(numbers[0])
            tiers.append(Tier(width, self.number(numbers[-1]), _span(band)))
        return Tiered(tuple(tiers), span)

    def method(self, tree: Tree):
        span = _span(tree)
        kind = tree.data
        if kind == "trend":
            return Trend(self.periods(tree.children[2]), span)
        if kind == "growth":
            return Growth(self.number(tree.children[1]), span)
        if kind == "plan":
            return ByPlan(span)
        if len(tree.children) > 2:
            return RunRate(self.periods(tree.children[3]), span)
        return RunRate(DEFAULT_RUN_RATE_PERIODS, span)


_BRACKETS = ("LPAR", "RPAR")
_CLAUSE_WORDS = {"where_clause": "WHERE", "if_no_usage": "IF NO USAGE", "reciprocal": "RECIPROCAL"}


def _is_token(node) -> bool:
    return not hasattr(node, "data")
