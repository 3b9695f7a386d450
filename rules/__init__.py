"""The rules language: grammar, parser, AST, static checks and messages (docs/rules-language.md).

``parse_rules`` turns Rules cells into statements, ``check`` tests them against
the workbook's names, ``order`` puts the allocations in dependency order.
Every one returns problems as values; nothing here raises at a user's mistake.
"""

from costloop.rules.checks import Names, check, check_ids, set_aside
from costloop.rules.order import order
from costloop.rules.parser import parse_rule, parse_rules

__all__ = ["Names", "check", "check_ids", "order", "parse_rule", "parse_rules", "set_aside"]
