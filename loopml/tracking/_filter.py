"""The run-filter language: a tokenizer and a recursive-descent parser to a tree.

A filter such as ``metrics.auc > 0.8 AND params.model IN ('xgb', 'rf')`` goes through three
steps, each of which can refuse input but never passes text through to the database:

1. :func:`tokenize` cuts the text into names, keywords, numbers, quoted strings and
   operators. A character outside the language (``;``, ``--``, a stray quote) is an error.
2. :func:`parse_filter` builds a tree of frozen dataclasses and checks every comparison
   against its field: metrics are numbers, params and tags are strings, ``status`` is one
   of :data:`~loopml.tracking.STATUSES`, times are milliseconds or ISO 8601 dates.
3. :func:`loopml.tracking._search.compile_filter` turns the tree into an SQLAlchemy
   condition on the ``runs`` table in which every value is a bound parameter.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" expr ")" | comparison
    comparison := field op value
                | field ["NOT"] "IN" "(" value ("," value)* ")"
                | field ["NOT"] ("LIKE" | "ILIKE") 'pattern'
                | field "IS" ["NOT"] "NULL"
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    field      := entity "." (bare-name | `back-quoted name` | "double-quoted name")
    entity     := metrics | params | tags | attributes  (or metric, param, tag, attr, run)
    value      := number | 'single-quoted' | "double-quoted"   ('' inside '...' is one ')

Positions in error messages count characters from 0.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn

from loopml.errors import InvalidInput
from loopml.tracking._runs import STATUSES

Entity = Literal["metric", "param", "tag", "attribute"]

MAX_LENGTH = 20_000
"""Longest filter or order_by item accepted, in characters."""
MAX_CONDITIONS = 200
"""Most comparisons one filter may hold (SQLite refuses very deep expressions)."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and NOT."""
MAX_VALUES = 1_000
"""Most values (in all comparisons and IN lists together) one filter may hold."""

ENTITIES: dict[str, Entity] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "run": "attribute",
}  # fmt: skip
ATTRIBUTES: dict[str, str] = {
    "run_id": "run_id", "id": "run_id",
    "name": "name", "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "parent_run_id": "parent_run_id", "parent_id": "parent_run_id",
    "experiment": "experiment",
}  # fmt: skip
_TIMES = frozenset({"start_time", "end_time"})
_OPS = {"==": "=", "!=": "!=", "<>": "!=", "<=": "<=", ">=": ">=", "=": "=", "<": "<", ">": ">"}
_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME_PUNCTUATION = frozenset("_-/:.")
_QUOTES = {"'": "string", '"': "dquoted", "`": "backquoted"}
_QUOTED = {"'": "string", '"': "double-quoted string", "`": "back-quoted name"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63


# -- tokens -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, source text, decoded value and position in the text.

    ``kind`` is one of ``field`` (``value`` = the key, ``entity`` = the entity as written),
    ``word`` (``value`` upper-cased), ``number``, ``string`` ('...'), ``dquoted`` ("..."),
    ``backquoted``, ``op`` (``value`` = the canonical operator), ``(``, ``)``, ``,``, ``end``.
    """

    kind: str
    text: str
    value: str
    position: int
    entity: str = ""


def _fail(what: str, position: int, message: str) -> NoReturn:
    raise InvalidInput(f"invalid {what} at position {position}: {message}")


def _quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """The content of the quoted run starting at ``start`` (a doubled quote is one quote)."""
    quote, parts, i = text[start], [], start + 1
    while (j := text.find(quote, i)) >= 0:
        parts.append(text[i:j])
        if not text.startswith(quote, j + 1):
            return "".join(parts), j + 1
        parts.append(quote)
        i = j + 2
    _fail(what, start, f"unterminated {_QUOTED[quote]}: no closing {quote}")


def _field_name(text: str, start: int, what: str, entity: str) -> tuple[str, int]:
    """The name after ``<entity>.`` at ``start``: quoted, or a run of name characters."""
    if start < len(text) and text[start] in '`"':
        name, end = _quoted(text, start, what)
    else:
        end = start
        while end < len(text) and (text[end].isalnum() or text[end] in _NAME_PUNCTUATION):
            end += 1
        name = text[start:end]
    if not name:
        _fail(what, start, f"expected a name after {entity + '.'!r}")
    return name, end


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Cut ``text`` into tokens, ending with an ``end`` token.

    Raises
    ------
    InvalidInput
        At the first character that cannot start a token, or an unterminated quote.
    """
    if len(text) > MAX_LENGTH:
        _fail(what, MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    try:
        text.encode("utf-8")  # no lone surrogates: the database could not take them
    except UnicodeEncodeError as exc:
        _fail(what, exc.start, f"unexpected character {text[exc.start]!r}")
    if (nul := text.find("\x00")) >= 0:
        _fail(what, nul, "unexpected character '\\x00'")
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "(),":
            tokens.append(Token(ch, ch, ch, start))
            i += 1
        elif op := next((o for o in _OPS if text.startswith(o, i)), None):
            tokens.append(Token("op", op, _OPS[op], start))
            i += len(op)
        elif ch in _QUOTES:
            value, i = _quoted(text, i, what)
            tokens.append(Token(_QUOTES[ch], text[start:i], value, start))
        elif m := _NUMBER.match(text, i):
            i = m.end()
            if i < len(text) and (text[i].isalnum() or text[i] in "_."):
                _fail(what, start, f"malformed number {text[start : i + 1]!r}")
            tokens.append(Token("number", m.group(), m.group(), start))
        elif m := _WORD.match(text, i):
            i = m.end()
            if i < len(text) and text[i] == ".":
                key, i = _field_name(text, i + 1, what, m.group())
                tokens.append(Token("field", text[start:i], key, start, entity=m.group()))
            else:
                tokens.append(Token("word", m.group(), m.group().upper(), start))
        else:
            _fail(what, start, f"unexpected {ch!r}")
    tokens.append(Token("end", "", "", len(text)))
    return tokens


# -- the tree ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """A field of a run: a metric, param or tag key, or an attribute's canonical name."""

    entity: Entity
    key: str
    text: str = dataclasses.field(default="", compare=False, repr=False)
    position: int = dataclasses.field(default=0, compare=False, repr=False)

    @property
    def kind(self) -> Literal["number", "time", "status", "string"]:
        """What the field holds, which decides the operators and values it accepts."""
        if self.entity == "metric":
            return "number"
        if self.entity == "attribute" and self.key in _TIMES:
            return "time"
        return "status" if self.entity == "attribute" and self.key == "status" else "string"


Value = float | int | str


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value`` with ``op`` one of ``= != < <= > >=``."""

    field: Field
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class In:
    """``field [NOT] IN (values)``."""

    field: Field
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    """``field [NOT] LIKE|ILIKE pattern`` (``%`` any run, ``_`` one character, ``\\`` escape)."""

    field: Field
    pattern: str
    negated: bool = False
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    """``field IS [NOT] NULL``: for metrics, params and tags, whether the run has the key."""

    field: Field
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``."""

    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    """All operands hold."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one operand holds."""

    operands: tuple[Expr, ...]


Condition = Compare | In | Like | IsNull
Expr = Condition | Not | And | Or


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``order_by`` item: a field and a direction."""

    field: Field
    descending: bool = False


DEFAULT_ORDER = (OrderKey(Field("attribute", "start_time", "attributes.start_time"), True),)
"""The order when none is given: newest first (ties, as always, broken by run id)."""


# -- the parser -------------------------------------------------------------------------
def _describe(token: Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.tokens = tokenize(text, what)
        self.index = 0
        self.depth = 0
        self.conditions = 0
        self.values = 0

    def fail(self, token: Token, message: str) -> NoReturn:
        _fail(self.what, token.position, message)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, *words: str) -> Token | None:
        token = self.peek()
        return self.advance() if token.kind == "word" and token.value in words else None

    def expect(self, kind: str, message: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(token, f"{message}, found {_describe(token)}")
        return self.advance()

    def finish(self, expected: str) -> None:
        token = self.peek()
        if token.kind != "end":
            self.fail(token, f"expected {expected}, found {_describe(token)}")

    @contextmanager
    def nested(self, token: Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(token, f"nested more than {MAX_DEPTH} levels deep")
        yield
        self.depth -= 1

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.accept("OR"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.accept("AND"):
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Expr:
        token = self.peek()
        if self.accept("NOT"):
            with self.nested(token):
                return Not(self.not_expr())
        if token.kind == "(":
            self.advance()
            with self.nested(token):
                expr = self.or_expr()
            self.expect(")", f"expected ')' to close the '(' at position {token.position}")
            return expr
        return self.comparison()

    def field(self) -> Field:
        token = self.peek()
        if token.kind != "field":
            hint = "a field such as metrics.<key>, params.<key>, tags.<key> or attributes.status"
            if token.kind == "word" and token.text.lower() in ATTRIBUTES:
                hint = f"a field (did you mean attributes.{token.text.lower()}?)"
            self.fail(token, f"expected {hint}, found {_describe(token)}")
        self.advance()
        entity = ENTITIES.get(token.entity.lower())
        if entity is None:
            self.fail(
                token,
                f"unknown entity {token.entity!r} in {token.text!r}; a field starts with "
                "metrics., params., tags. or attributes.",
            )
        key = token.value
        if entity == "attribute":
            if token.value.lower() not in ATTRIBUTES:
                known = ", ".join(dict.fromkeys(ATTRIBUTES.values()))
                self.fail(token, f"unknown attribute {token.value!r}; attributes are {known}")
            key = ATTRIBUTES[token.value.lower()]
        return Field(entity, key, token.text, token.position)

    def comparison(self) -> Condition:
        field = self.field()
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            self.fail(self.peek(), f"more than {MAX_CONDITIONS} comparisons")
        token = self.peek()
        if token.kind == "op":
            self.advance()
            if token.value in _ORDERING_OPS and field.kind in ("string", "status"):
                subject = f"{field.entity}s are strings"
                if field.entity == "attribute":
                    subject = f"{field.text} is a string"
                self.fail(token, f"{subject}; use =, !=, IN or LIKE")
            return Compare(field, token.value, self.value(field, f"after {token.text!r}"))
        if self.accept("IS"):
            negated = self.accept("NOT") is not None
            if not self.accept("NULL"):
                self.fail(self.peek(), f"expected NULL after IS, found {_describe(self.peek())}")
            return IsNull(field, negated)
        negated = self.accept("NOT") is not None
        if self.accept("IN"):
            self.expect("(", "expected '(' after IN")
            values = [self.value(field, "in the IN list")]
            while self.peek().kind == ",":
                self.advance()
                values.append(self.value(field, "after ','"))
            self.expect(")", "expected ',' or ')' in the IN list")
            return In(field, tuple(values), negated)
        if like := self.accept("LIKE", "ILIKE"):
            if field.kind in ("number", "time"):
                self.fail(like, f"{field.text} is a number; LIKE compares strings")
            pattern = self.expect("string", f"expected a 'quoted pattern' after {like.text}")
            if (len(pattern.value) - len(pattern.value.rstrip("\\"))) % 2:
                self.fail(pattern, "a LIKE pattern cannot end with the escape character \\")
            return Like(field, pattern.value, negated, like.value == "ILIKE")
        expected = "an operator (=, !=, <, <=, >, >=, IN, LIKE, ILIKE or IS NULL)"
        if negated:
            expected = "IN, LIKE or ILIKE after NOT"
        self.fail(
            self.peek(),
            f"expected {expected} after {field.text!r}, found {_describe(self.peek())}",
        )

    def value(self, field: Field, where: str) -> Value:
        token = self.peek()
        self.values += 1
        if self.values > MAX_VALUES:
            self.fail(token, f"more than {MAX_VALUES} values")
        if token.kind not in ("number", "string", "dquoted"):
            hint = " (test for a missing value with IS NULL)" if token.value == "NULL" else ""
            if token.kind == "backquoted":
                hint = " (backquotes are for names; quote values with '...')"
            self.fail(
                token,
                f"expected a value {where} (a number or a 'quoted string'), "
                f"found {_describe(token)}{hint}",
            )
        self.advance()
        if field.kind == "number":
            if token.kind != "number":
                self.fail(
                    token, f"{field.text} is a number; compare it with a number, not a string"
                )
            return float(token.value)
        if field.kind == "time":
            return _milliseconds(self, token, field)
        if field.kind == "status" and token.value.upper() not in STATUSES:
            self.fail(token, f"status must be one of {', '.join(STATUSES)}, not {token.text}")
        return token.value.upper() if field.kind == "status" else token.value


def _milliseconds(parser: _Parser, token: Token, field: Field) -> int:
    """A time value: integer milliseconds since the epoch, or an ISO 8601 date (UTC if naive)."""
    if token.kind == "number":
        number = float(token.value)
        if not (number.is_integer() and abs(number) < _INT64):
            parser.fail(token, f"{field.text} takes whole milliseconds, not {token.text}")
        digits = token.value.lstrip("-")
        return int(token.value) if digits.isdigit() and len(digits) <= 19 else int(number)
    try:
        moment = datetime.fromisoformat(token.value)
    except ValueError:
        parser.fail(
            token,
            f"{field.text} takes milliseconds since the epoch or an ISO 8601 date such as "
            f"'2024-05-01T12:00:00Z', not {token.text}",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run filter; ``None`` or a blank string is no filter (every run matches).

    Parameters
    ----------
    text : the filter, e.g. ``"metrics.auc > 0.8 AND params.model = 'xgb'"``.

    Returns
    -------
    The expression tree, or ``None`` for no filter.

    Raises
    ------
    InvalidInput
        If the text is not in the grammar or compares a field with the wrong kind of value;
        the message gives the position and what was expected there.

    Examples
    --------
    >>> parse_filter("params.depth = 5")
    Compare(field=Field(entity='param', key='depth'), op='=', value='5')
    """
    if text is not None and not isinstance(text, str):
        raise InvalidInput(f"filter must be a string, not {type(text).__name__}")
    if text is None or not text.strip():
        return None
    parser = _Parser(text, "filter")
    expr = parser.or_expr()
    parser.finish("AND, OR or the end of the filter")
    return expr


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse ``order_by`` items, each ``<field> [ASC|DESC]`` (ascending by default).

    Raises
    ------
    InvalidInput
        For an item that is not a field optionally followed by ASC or DESC.

    Examples
    --------
    >>> parse_order_by(["metrics.auc DESC"])
    [OrderKey(field=Field(entity='metric', key='auc'), descending=True)]
    """
    keys = []
    for item in [items] if isinstance(items, str) else items or ():
        if not isinstance(item, str):
            raise InvalidInput(f"order_by items must be strings, not {type(item).__name__}")
        parser = _Parser(item, f"order_by item {item!r}")
        field = parser.field()
        direction = parser.accept("ASC", "DESC")
        parser.finish("ASC, DESC or the end of the item")
        keys.append(OrderKey(field, direction is not None and direction.value == "DESC"))
    return keys
