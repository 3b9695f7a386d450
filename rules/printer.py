"""A deterministic, readable text form of the rule AST, for golden files and debugging.

Walks the dataclass fields generically, so a field added to the AST shows up
in the goldens (as a diff a reviewer can read) without touching this module.
Spans print as ``@start..end``; names as ``"text"``; columns bare.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from costloop.rules.ast import Column, Name, Span, Statement

# Statement fields that repeat the input (shown elsewhere in a golden) or its cell.
_SKIP = {"text"}


def print_rule(rule: Statement) -> str:
    """The statement as indented ``field: value`` lines."""
    return "\n".join(_node(rule, 0))


def _node(node: object, depth: int) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}{type(node).__name__}{_span_of(node)}"]
    for field in dataclasses.fields(node):
        if field.name in _SKIP or field.name == "span":
            continue
        value = getattr(node, field.name)
        lines.extend(_field(field.name, value, depth + 1))
    return lines


def _field(label: str, value: object, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, tuple):
        if not value:
            return [f"{pad}{label}: ()"]
        if all(_is_leaf(v) for v in value):
            return [f"{pad}{label}: ({', '.join(_leaf(v) for v in value)})"]
        lines = [f"{pad}{label}:"]
        for item in value:
            lines.extend(_item(item, depth + 1))
        return lines
    if _is_leaf(value):
        return [f"{pad}{label}: {_leaf(value)}"]
    inner = _node(value, depth)
    return [f"{pad}{label}: {inner[0].strip()}", *inner[1:]]


def _item(value: object, depth: int) -> list[str]:
    pad = "  " * depth
    if _is_leaf(value):
        return [f"{pad}- {_leaf(value)}"]
    inner = _node(value, depth)
    return [f"{pad}- {inner[0].strip()}", *inner[1:]]


def _is_leaf(value: object) -> bool:
    if isinstance(value, tuple):
        return False
    return not dataclasses.is_dataclass(value) or isinstance(value, Name | Column | Span)


def _leaf(value: object) -> str:
    if isinstance(value, Name):
        return f'"{value.text}" @{value.span.start}..{value.span.end}'
    if isinstance(value, Column):
        return f"{value.text} (column) @{value.span.start}..{value.span.end}"
    if isinstance(value, Span):
        return f"@{value.start}..{value.end}"
    if isinstance(value, Decimal):
        return f"{value} (number)"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _span_of(node: object) -> str:
    span = getattr(node, "span", None)
    return f" @{span.start}..{span.end}" if isinstance(span, Span) else ""
