"""Turn a syntax error into a message a finance user can act on (docs/contract.md#errors).

Only called when a cell fails to parse, so it can afford to re-run the parse
step by step: before each token it records the parser state and the tokens
that state accepts. At the failure it knows what was expected, what came
before and what was found, and it tries small repairs on a copy of the parser
(a misspelled keyword, one missing keyword, a missing comma) to say *which*
fix works, in words: "expected TO after the pool name "Cloud"", not
"Expected one of: ESCAPED_STRING".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser

from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import RuleCell
from costloop.rules.parser import lark_parser
from costloop.rules.suggest import closest_keyword

END = "$END"
_SINGLE_QUOTED = re.compile(r"['\u2018\u2019\u201a\u201b`]([^'\u2018\u2019\n]*)['\u2018\u2019]")
_WORD_TYPES = {"COLUMN"}
_STARTERS = ("ALLOCATE", "CHARGE", "FORECAST")
# Words that end a name a user forgot to quote ("Service Desk TO ...").
_AFTER_NAME = {"to", "for", "by", "and", "where", "if", "reciprocal", "at", "tiered", "evenly"}
# How a keyword reads when it is the start of a phrase.
_PHRASES = {"IF": "IF NO USAGE", "RUN": "RUN RATE", "NO": "NO USAGE"}
# The order expected things are listed in (roughly the order they are written).
_ORDER = [
    "ALLOCATE", "CHARGE", "FORECAST", "NAME", "COLUMN", "BRACKETED", "NUMBER", "PERCENT",
    "COMPARE", "IN", "LPAR", "TO", "DEPARTMENTS", "POOLS", "FOR", "AT", "RATE", "CARD",
    "TIERED", "FIRST", "NEXT", "ABOVE", "USAGE", "COST", "BY", "EVENLY", "TREND", "GROWTH",
    "PLAN", "RUN", "OVER", "PER", "PERIODS", "PERIOD", "COMMA", "AND", "WHERE", "IF", "NO",
    "FAIL", "KEEP", "RECIPROCAL", "RPAR", END,
]  # fmt: skip
_KEYWORDS = frozenset(_ORDER) - {
    "NAME", "COLUMN", "BRACKETED", "NUMBER", "PERCENT", "COMPARE", "LPAR", "RPAR", "COMMA", END
}  # fmt: skip
_RANK = {name: i for i, name in enumerate(_ORDER)}
_NAME_ROLES = {
    "pool": "the pool name",
    "metric": "the metric name",
    "share": "a department or pool name",
    "value": "a value",
    "name": "a name",
}


@dataclass
class _Step:
    """The parser just before a token: its state and what it accepts there."""

    token: Token
    parser: InteractiveParser
    accepts: frozenset[str]


@dataclass
class _Failure:
    text: str
    history: list[_Step]
    """Tokens accepted before the failure."""
    parser: InteractiveParser
    """The parser at the failure (before the bad token)."""
    accepts: frozenset[str]
    token: Token | None
    """The token that did not fit (``$END`` if the rule stopped short), or None ..."""
    char_pos: int | None = None
    """... when no token could be read at this character."""

    @property
    def prev(self) -> list[Token]:
        return [step.token for step in self.history]

    @property
    def kind(self) -> str | None:
        return self.history[0].token.type if self.history else None

    @property
    def in_tiers(self) -> bool:
        return any(t.type == "TIERED" for t in self.prev)


def diagnose(cell: RuleCell, text: str) -> Problem:
    """The first syntax problem in ``text`` (the normalised text of ``cell``)."""
    failure = _replay(text)
    code, message, start, end = _explain(failure)
    return Problem(
        code=code,
        severity=Severity.ERROR,
        where=cell.where,
        message=message,
        text=cell.text,
        start=start,
        end=end,
        rule_id=cell.rule_id,
    )


def _replay(text: str) -> _Failure:
    parser = lark_parser().parse_interactive(text)
    tokens = parser.lexer_thread.lex(parser.parser_state)
    history: list[_Step] = []
    while True:
        accepts = frozenset(parser.accepts())
        try:
            token = next(tokens)
        except StopIteration:
            last = history[-1].token if history else None
            token = Token(END, "", last.end_pos if last else 0, end_pos=last.end_pos if last else 0)
        except UnexpectedToken as error:  # the root lexer read a token this state refuses
            return _Failure(text, history, parser, accepts, error.token)
        except UnexpectedCharacters as error:
            return _Failure(text, history, parser, accepts, None, error.pos_in_stream)
        before = parser.copy()
        try:
            parser.feed_token(token)
        except UnexpectedToken:
            return _Failure(text, history, before, accepts, token)
        if token.type == END:  # pragma: no cover - only called on text that fails
            raise AssertionError("diagnose() called on a rule that parses")
        history.append(_Step(token, before, accepts))


# --- explaining ----------------------------------------------------------------


def _explain(f: _Failure) -> tuple[Reason, str, int, int]:
    if f.token is None:
        return _bad_character(f)
    token = f.token
    for special in (_thousands, _text_after_number, _second_rule, _tiers, _misread_word):
        found = special(f, token)
        if found:
            return found
    if token.type == END:
        return _stops_short(f)
    for special in (_empty_in, _double_equals, _quoted_column, _unquoted_name, _missing):
        found = special(f, token)
        if found:
            return found
    what = _expected(f.accepts, f.prev)
    return Reason.SYNTAX, f"expected {what}{_after(f.prev)}, found {_shown(token)}", *_at(token)


def _bad_character(f: _Failure) -> tuple[Reason, str, int, int]:
    pos = f.char_pos
    char = f.text[pos]
    at = (pos, pos + 1)
    if char == '"':
        return (
            Reason.UNCLOSED_QUOTE,
            'this name has no closing double quote: add " at the end of the name',
            *at,
        )
    if char in "'\u2018\u2019\u201a\u201b`":
        quoted = _SINGLE_QUOTED.match(f.text, pos)
        fix = f': write "{quoted.group(1).strip()}"' if quoted else ""
        return Reason.SYNTAX, f"names go in double quotes, not single quotes{fix}", *at
    if char in "$€£¥":
        return Reason.SYNTAX, "write the amount as a plain number, without a currency sign", *at
    if f.text.startswith("!=", pos):
        return Reason.SYNTAX, 'write <> for "not equal to", not !=', pos, pos + 2
    if char == ";":
        return Reason.SYNTAX, 'remove the ";": a cell holds one rule and needs no ending mark', *at
    if char == "-" and pos + 1 < len(f.text) and f.text[pos + 1].isdigit():
        return Reason.SYNTAX, "numbers in rules cannot be negative", *at
    what = _expected(f.accepts, f.prev)
    return Reason.SYNTAX, f'unexpected "{char}": expected {what}{_after(f.prev)}', *at


def _thousands(f: _Failure, token: Token):
    """``1,000``: the comma reads as a list separator, so say what to write instead."""
    if token.type != "COMMA" or not f.prev or f.prev[-1].type != "NUMBER":
        return None
    number = f.prev[-1]
    written = re.match(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])", f.text[number.start_pos :])
    if token.start_pos != number.end_pos or not written:
        return None
    plain = written.group().replace(",", "")
    return (
        Reason.SYNTAX,
        f"write {plain} without a thousands separator",
        number.start_pos,
        number.start_pos + len(written.group()),
    )


def _text_after_number(f: _Failure, token: Token):
    if token.type == END or not f.prev or f.prev[-1].type != "NUMBER":
        return None
    number = f.prev[-1]
    if token.start_pos != number.end_pos or not str(token)[:1].isalpha():
        return None
    return (
        Reason.SYNTAX,
        f"a number cannot have text after it: write {number}, not {number}{token}",
        number.start_pos,
        token.end_pos,
    )


def _second_rule(f: _Failure, token: Token):
    if token.type in _STARTERS and f.history:
        return (
            Reason.SYNTAX,
            "one rule per cell: move this second rule to a row of its own",
            *_at(token),
        )
    return None


def _tiers(f: _Failure, token: Token):
    if not f.in_tiers:
        return None
    if token.type == END and f.accepts == {"COMMA"}:
        return (
            Reason.BAD_TIERS,
            "the tiers need a last band for everything above them: add , ABOVE AT <rate>",
            *_at(token),
        )
    if token.type == "COMMA" and "ABOVE" in {t.type for t in f.prev}:
        return Reason.BAD_TIERS, "ABOVE must be the last tier", *_at(token)
    return None


def _misread_word(f: _Failure, token: Token):
    """A misspelled keyword: either this word, or the word just before it.

    The word before counts when lark took it for a column (``BY usgae``) and
    only fails at the next token; a keyword is suggested only if putting it in
    place of the word lets the parse go on.
    """
    # A real keyword in the wrong place is not a misspelling (FIRST is not FORECAST).
    if token.type in _WORD_TYPES:
        keyword = _repair_word(f.parser, f.accepts, token, None, f.prev)
        if keyword:
            return Reason.UNKNOWN_KEYWORD, _unknown_word(token, keyword, f.prev), *_at(token)
    if f.history and f.history[-1].token.type in _WORD_TYPES:
        step = f.history[-1]
        keyword = _repair_word(step.parser, step.accepts, step.token, token, f.prev[:-1])
        if keyword:
            before = f.prev[:-1]
            message = _unknown_word(step.token, keyword, before)
            return Reason.UNKNOWN_KEYWORD, message, *_at(step.token)
    return None


def _repair_word(
    parser: InteractiveParser,
    accepts: frozenset[str],
    word: Token,
    then: Token | None,
    prev: list[Token],
) -> str | None:
    keywords = {_keyword_phrase(t, prev): t for t in accepts if _is_keyword(t)}
    phrase = closest_keyword(str(word), keywords)
    if phrase is None:
        return None
    if then is not None:
        trial = parser.copy()
        try:
            trial.feed_token(Token(keywords[phrase], phrase))
        except UnexpectedToken:
            return None
        if then.type not in trial.accepts():
            return None
    return phrase


def _unknown_word(word: Token, keyword: str, before: list[Token]) -> str:
    if before and before[-1].type == "BY" and before[0].type == "ALLOCATE":
        kind = "driver"
    elif before and before[-1].type == "BY" and before[0].type == "FORECAST":
        kind = "forecast method"
    elif not before:
        kind = "statement"
    else:
        kind = "word"
    return f'unknown {kind} "{word}" — did you mean {keyword}?'


def _stops_short(f: _Failure):
    last = f.prev[-1] if f.prev else None
    if last is not None and last.type == "COMMA":
        what = _expected(f.accepts, f.prev)
        return (
            Reason.SYNTAX,
            f"the rule ends with a comma: remove it, or add {what} after it",
            last.start_pos,
            last.end_pos,
        )
    what = _expected(f.accepts, f.prev)
    if not f.prev:
        return Reason.SYNTAX, f"a rule starts with {what}", 0, 0
    return Reason.SYNTAX, f"expected {what}{_after(f.prev)}, but the rule ends there", *_at(f.token)


def _empty_in(f: _Failure, token: Token):
    if token.type == "RPAR" and f.prev and f.prev[-1].type == "LPAR":
        return (
            Reason.SYNTAX,
            'the IN list is empty: put at least one value in the brackets, like IN ("EC2", "S3")',
            *_at(token),
        )
    return None


def _double_equals(f: _Failure, token: Token):
    if token.type == "COMPARE" and f.prev and f.prev[-1].type == "COMPARE":
        pair = f"{f.prev[-1]}{token}"
        fix = "=" if pair == "==" else "<>" if pair in ("=!", "!=") else f.prev[-1]
        return Reason.SYNTAX, f"write a single {fix} to compare, not {pair}", *_at(f.prev[-1])
    return None


def _quoted_column(f: _Failure, token: Token):
    if token.type != "NAME" or not {"COLUMN", "BRACKETED"} & f.accepts or "NAME" in f.accepts:
        return None
    inner = str(token)[1:-1].strip()
    column = inner if re.fullmatch(r"[^\W\d]\w*", inner) else f"[{inner}]"
    return (
        Reason.SYNTAX,
        f"column names are written without quotes: write {column}, not {token}",
        *_at(token),
    )


def _unquoted_name(f: _Failure, token: Token):
    if "NAME" not in f.accepts or not (_is_word(token) or _is_keyword(token.type)):
        return None
    words = []
    for word in re.split(r"[ \t\r\n]+", f.text[token.start_pos :]):
        bare = re.match(r"[\w\-./&]+", word)
        if not bare or bare.group().casefold() in _AFTER_NAME or (words and word[0] in '"%(,'):
            break
        words.append(bare.group())
        if bare.group() != word:
            break
    if not words:  # the name is missing, not unquoted: the general message says so
        return None
    role = _NAME_ROLES[_name_role(f.prev)]
    return Reason.SYNTAX, f'{role} goes in double quotes: write "{" ".join(words)}"', *_at(token)


def _missing(f: _Failure, token: Token):
    """One keyword or comma left out: say which one makes the rest fit."""
    fits = []
    for candidate in sorted(f.accepts, key=lambda t: _RANK.get(t, 99)):
        if not (_is_keyword(candidate) or candidate == "COMMA"):
            continue
        trial = f.parser.copy()
        try:
            trial.feed_token(Token(candidate, candidate))
        except UnexpectedToken:
            continue
        if token.type in trial.accepts():
            fits.append(candidate)
    if len(fits) != 1 or (len(f.accepts) == 1 and fits != ["COMMA"]):
        return None
    missing = fits[0]
    if missing == "COMMA":
        return Reason.SYNTAX, f"put a comma before {_shown(token)}", *_at(token)
    word = _keyword_phrase(missing, f.prev)
    return Reason.SYNTAX, f"expected {word}{_after(f.prev)}, found {_shown(token)}", *_at(token)


# --- words for what was expected, found and came before ----------------------


def _expected(accepts: frozenset[str], prev: list[Token]) -> str:
    last = prev[-1].type if prev else None
    kind = prev[0].type if prev else None
    if last == "BY" and kind == "ALLOCATE":
        return 'a driver: USAGE "metric", a Departments column, shares like 60% "ADM", or COST'
    if last == "BY" and kind == "FORECAST":
        return "a method: TREND, GROWTH, PLAN or RUN RATE"
    role = _name_role(prev)
    words: list[str] = []
    for terminal in sorted(accepts, key=lambda t: _RANK.get(t, 99)):
        word = _describe(terminal, role, last, accepts, prev)
        if word and word not in words:
            words.append(word)
    if not words:
        return "nothing more"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe(terminal: str, role: str, last: str | None, accepts, prev) -> str | None:
    if terminal == "NAME":
        if role == "value":
            return "a value in double quotes or a number"
        if role == "pool" and last in ("POOLS", "COMMA"):
            return "pool names in double quotes"
        return f"{_NAME_ROLES[role]} in double quotes"
    if terminal == "NUMBER":
        if role == "value" and "NAME" in accepts:
            return None
        if last == "COMMA" and _name_role(prev) == "share":
            return 'the next share (like 40% "FIN")'
        return {
            "AT": "a rate",
            "FIRST": "a quantity",
            "NEXT": "a quantity",
            "OVER": "a number of periods",
            "GROWTH": "a percentage like 2%",
        }.get(last, "a number")
    if terminal in ("COLUMN", "BRACKETED"):
        return "a column name"
    if terminal == "COMPARE":
        return "a comparison (=, <>, <, <=, >, >=)"
    if terminal == "PERIOD":
        return "PERIODS"
    return {
        "COMMA": "a comma",
        "PERCENT": "%",
        "LPAR": '"("',
        "RPAR": '")"',
        END: "the end of the rule",
    }.get(terminal) or _keyword_phrase(terminal, prev)


def _keyword_phrase(terminal: str, prev: list[Token] | None) -> str:
    if terminal == "RATE" and prev and prev[-1].type == "AT":
        return "RATE CARD"
    return _PHRASES.get(terminal, terminal)


def _name_role(prev: list[Token]) -> str:
    """What the next quoted name would be, from the token before it."""
    if not prev:
        return "name"
    last = prev[-1].type
    if last in ("ALLOCATE", "CHARGE", "POOLS") or (last == "COST" and prev[0].type == "FORECAST"):
        return "pool"
    if last in ("FOR", "USAGE"):
        return "metric"
    if last == "PERCENT":
        return "share"
    if last in ("COMPARE", "LPAR"):
        return "value"
    if last == "COMMA":
        for token in reversed(prev):
            if token.type in ("POOLS", "IN", "PERCENT"):
                return {"POOLS": "pool", "IN": "value", "PERCENT": "share"}[token.type]
    return "name"


def _after(prev: list[Token]) -> str:
    if not prev:
        return " at the start of the rule"
    token = prev[-1]
    kind = token.type
    if kind == "NAME":
        role = _name_role(prev[:-1])
        if role == "value":
            return f" after {token}"
        return f" after {_NAME_ROLES[role].replace('a ', 'the ', 1)} {token}"
    if kind == "PERCENT":
        return f" after {prev[-2]}%"
    if kind == "COMMA":
        return " after the comma"
    if kind in ("LPAR", "RPAR"):
        return f' after "{token}"'
    if _is_keyword(kind):
        return f" after {kind}"
    return f" after {token}"


def _shown(token: Token) -> str:
    if token.type == "NAME" or not _is_keyword(token.type):
        return str(token) if token.type != "COMMA" else "a comma"
    return token.type


def _at(token: Token) -> tuple[int, int]:
    return token.start_pos, max(token.end_pos, token.start_pos + 1)


def _is_keyword(terminal: str) -> bool:
    return terminal in _KEYWORDS


def _is_word(token: Token) -> bool:
    return token.type in _WORD_TYPES or _is_keyword(token.type)
