"""Did-you-mean: the closest real spelling to a misspelled keyword or name.

Matching is case-insensitive (names and keywords are, per docs/contract.md and
docs/rules-language.md) and uses the stdlib's ``difflib`` ratio; the cutoff is
loose enough for one or two typos in a short word ("usgae" -> USAGE,
"Servce Desk" -> "Service Desk") and tight enough not to suggest an unrelated word.

The engine asks here too (a missing sheet or column, an unknown setting or
department), so every "did you mean" is found and phrased one way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from costloop.rules.ast import name_key

CUTOFF = 0.6
# Keywords are short, so one stray letter moves the ratio a lot; a little
# stricter keeps FIRST from suggesting FORECAST while ADN still finds AND.
KEYWORD_CUTOFF = 0.65


def closest(word: str, candidates: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The candidate spelled most like ``word`` (as the candidate is spelled), or None."""
    by_key: dict[str, str] = {}
    for candidate in candidates:
        by_key.setdefault(name_key(candidate), candidate)
    key = name_key(word)
    if not key or key in by_key:
        return by_key.get(key)
    match = difflib.get_close_matches(key, list(by_key), n=1, cutoff=cutoff)
    return by_key[match[0]] if match else None


def closest_keyword(word: str, keywords: Iterable[str]) -> str | None:
    """The keyword (or keyword phrase like ``RATE CARD``) closest to a bare word.

    A phrase also matches its run-together spelling, so ``RATECARD`` finds
    ``RATE CARD``.
    """
    spellings: dict[str, str] = {}
    for phrase in keywords:
        spellings.setdefault(phrase.replace(" ", "").casefold(), phrase)
        spellings.setdefault(phrase.split()[0].casefold(), phrase)
    key = word.replace(" ", "").casefold()
    if key in spellings:
        return spellings[key]
    match = difflib.get_close_matches(key, list(spellings), n=1, cutoff=KEYWORD_CUTOFF)
    return spellings[match[0]] if match else None


def did_you_mean(suggestion: str) -> str:
    """``did you mean "X"?``: the one phrasing of a suggested name, in rules and workbook
    messages alike (a keyword, written bare in a rule, is suggested bare: `keyword_hint`)."""
    return f'did you mean "{suggestion}"?'


def quoted_hint(suggestion: str | None) -> str:
    """`` — did you mean "X"?`` for a name, or nothing."""
    return f" — {did_you_mean(suggestion)}" if suggestion else ""


def keyword_hint(suggestion: str | None) -> str:
    """`` — did you mean USAGE?`` for a keyword, or nothing."""
    return f" — did you mean {suggestion}?" if suggestion else ""
