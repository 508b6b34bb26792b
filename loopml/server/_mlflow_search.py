"""MLflow's search language: filter and order_by strings, and one-table searches.

Run filters and orders are translated token by token into loopml's run-filter language
(:mod:`loopml.tracking._filter`), which is a superset of MLflow's: MLflow's bare attribute
names (``status = 'FINISHED'``), its entity spellings (``parameters.``, ``attribute.``) and
its attributes that loopml keeps elsewhere (``user_id`` is the ``mlflow.user`` tag;
``tags.mlflow.runName`` is the run's name) are rewritten, everything else is passed
through, and loopml's parser then checks the whole. Experiments, registered models and
model versions take MLflow's smaller grammar, ``clause AND clause ...``, parsed here into
:class:`Clause` objects, compiled to SQL by :func:`clause_condition` and run a page at a
time by :func:`search_page`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import InvalidInput
from loopml.server._mlflow_protocol import (
    Fields,
    decode_token,
    encode_token,
    max_results,
    not_implemented,
)
from loopml.store import Workspace
from loopml.tracking._filter import Expr, OrderKey, Token, parse_filter, parse_order_by, tokenize

# -- run filters and orders -----------------------------------------------------------------
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"})
_ENTITIES = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes",
    "run": "attributes",
}  # fmt: skip
# MLflow's run attributes (and its alternate spellings) as loopml fields
_RUN_ATTRIBUTES = {
    "run_id": "attributes.run_id",
    "run_name": "attributes.run_name",
    "run name": "attributes.run_name", "Run name": "attributes.run_name",
    "Run Name": "attributes.run_name",
    "status": "attributes.status",
    "start_time": "attributes.start_time",
    "created": "attributes.start_time", "Created": "attributes.start_time",
    "end_time": "attributes.end_time",
    "user_id": "tags.`mlflow.user`",
}  # fmt: skip
# loopml's own attributes, which MLflow lacks, pass through as they are
_LOOPML_ATTRIBUTES = frozenset({"id", "name", "parent_run_id", "parent_id", "experiment"})
# MLflow system tags that loopml stores as run columns
TAG_COLUMNS = {
    "mlflow.runName": "attributes.run_name",
    "mlflow.parentRunId": "attributes.parent_run_id",
}


def _quote(key: str) -> str:
    return "`" + key.replace("`", "``") + "`"


def _field(token: Token, what: str) -> str:
    entity = _ENTITIES.get(token.entity.lower())
    if token.entity.lower() in ("dataset", "datasets"):
        raise not_implemented(f"{what}: {token.text!r}: loopml does not search runs by dataset")
    if entity is None:
        return token.text  # loopml's parser names the unknown entity
    if entity == "tags" and token.value in TAG_COLUMNS:
        return TAG_COLUMNS[token.value]
    if entity != "attributes":
        return f"{entity}.{_quote(token.value)}"
    if token.value in _RUN_ATTRIBUTES:
        return _RUN_ATTRIBUTES[token.value]
    if token.value.lower() in _LOOPML_ATTRIBUTES:
        return f"attributes.{token.value.lower()}"
    raise InvalidInput(
        f"{what}: attribute {token.value!r} cannot be searched; attributes are run_id, "
        "run_name, status, start_time, end_time, user_id, parent_run_id and experiment"
    )


def translate(text: str, what: str) -> str:
    """``text`` (an MLflow run filter or order_by item) in loopml's run-filter language."""
    parts = []
    for token in tokenize(text, what)[:-1]:
        if token.kind == "field":
            parts.append(_field(token, what))
        elif (
            token.kind == "word" and token.value not in _KEYWORDS and token.text in _RUN_ATTRIBUTES
        ):
            parts.append(_RUN_ATTRIBUTES[token.text])
        else:
            parts.append(token.text)
    return " ".join(parts)


def _reworded(exc: InvalidInput, original: str, translated: str) -> InvalidInput:
    if " ".join(t.text for t in tokenize(original)[:-1]) == translated:
        return exc
    return InvalidInput(f"{exc} (in the filter as loopml reads it: {translated!r})")


def run_filter(text: str | None) -> Expr | None:
    """An MLflow run filter as a loopml filter tree (None: every run)."""
    if not text or not text.strip():
        return None
    translated = translate(text, "filter")
    try:
        return parse_filter(translated)
    except InvalidInput as exc:
        raise _reworded(exc, text, translated) from None


def run_order(items: Sequence[str]) -> list[OrderKey]:
    """MLflow order_by items (``metrics.rmse DESC``, ``start_time``) as loopml order keys."""
    keys = []
    for item in items:
        translated = translate(item, f"order_by item {item!r}")
        try:
            keys.extend(parse_order_by([translated]))
        except InvalidInput as exc:
            raise _reworded(exc, item, translated) from None
    return keys


# -- the simple grammar of experiments and registered models ----------------------------------
Scalar = str | float


@dataclass(frozen=True)
class Clause:
    """One ``key op value`` of a filter; ``tag`` says whether ``key`` is a tag's key."""

    key: str
    tag: bool
    op: str
    value: Scalar | tuple[Scalar, ...] | None


class _Clauses:
    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.tokens = tokenize(text, what)
        self.i = 0

    def fail(self, message: str) -> InvalidInput:
        token = self.tokens[self.i]
        found = "the end" if token.kind == "end" else repr(token.text)
        return InvalidInput(
            f"invalid {self.what} at position {token.position}: {message}, found {found}"
        )

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += token.kind != "end"
        return token

    def word(self, *words: str) -> bool:
        token = self.tokens[self.i]
        if token.kind == "word" and token.value in words:
            self.i += 1
            return True
        return False

    def value(self) -> Scalar:
        token = self.take()
        if token.kind == "number":
            return float(token.value)
        if token.kind in ("string", "dquoted"):
            return token.value
        self.i -= 1
        raise self.fail("expected a number or a 'quoted string'")

    def clause(self) -> Clause:
        token = self.take()
        if token.kind == "field" and token.entity.lower() in ("tag", "tags"):
            key, tag = token.value, True
        elif token.kind == "field" and _ENTITIES.get(token.entity.lower()) == "attributes":
            key, tag = token.value, False
        elif token.kind == "word" and token.value not in _KEYWORDS:
            key, tag = token.text, False
        else:
            self.i -= 1
            raise self.fail("expected a name such as name, tags.<key> or attributes.<key>")
        if self.tokens[self.i].kind == "op":
            return Clause(key, tag, self.take().value, self.value())
        if self.word("IS"):
            negated = self.word("NOT")
            if not self.word("NULL"):
                raise self.fail("expected NULL after IS")
            return Clause(key, tag, "IS NOT NULL" if negated else "IS NULL", None)
        negated = self.word("NOT")
        if self.word("IN"):
            if self.take().kind != "(":
                self.i -= 1
                raise self.fail("expected '(' after IN")
            values = [self.value()]
            while self.tokens[self.i].kind == ",":
                self.i += 1
                values.append(self.value())
            if self.take().kind != ")":
                self.i -= 1
                raise self.fail("expected ',' or ')' in the IN list")
            return Clause(key, tag, "NOT IN" if negated else "IN", tuple(values))
        for like in ("LIKE", "ILIKE"):
            if self.word(like):
                pattern = self.value()
                if not isinstance(pattern, str):
                    raise InvalidInput(f"invalid {self.what}: {like} takes a 'quoted pattern'")
                return Clause(key, tag, f"NOT {like}" if negated else like, pattern)
        raise self.fail("expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN or IS NULL)")


def parse_clauses(text: str | None, what: str = "filter") -> list[Clause]:
    """An MLflow filter of clauses joined by AND (None or blank: no clause)."""
    if not text or not text.strip():
        return []
    parser = _Clauses(text, what)
    clauses = [parser.clause()]
    while parser.word("AND"):
        clauses.append(parser.clause())
    if parser.tokens[parser.i].kind != "end":
        raise parser.fail("expected AND or the end of the filter")
    return clauses


def _like(column: sa.ColumnElement[Any], pattern: str, dialect: str) -> sa.ColumnElement[bool]:
    """A case-sensitive LIKE, also on SQLite (whose LIKE ignores case): as loopml's runs."""
    if dialect != "sqlite":
        return column.like(pattern)
    glob = "".join(
        "*" if c == "%" else "?" if c == "_" else f"[{c}]" if c in "*?[" else c for c in pattern
    )
    return column.op("GLOB", return_type=sa.Boolean)(glob)


def clause_condition(
    clause: Clause, column: sa.ColumnElement[Any], kind: str, dialect: str, what: str
) -> sa.ColumnElement[bool]:
    """The SQL test ``clause`` makes of ``column``, which holds ``kind`` values
    (``"string"`` or ``"number"``)."""
    values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
    wanted = float if kind == "number" else str
    if clause.value is not None and not all(isinstance(v, wanted) for v in values):
        raise InvalidInput(
            f"invalid {what}: {clause.key} holds {kind}s; compare it with a "
            + ("number" if kind == "number" else "'quoted string'")
        )
    op, value = clause.op, clause.value
    if op in ("<", "<=", ">", ">=") and kind != "number":
        raise InvalidInput(f"invalid {what}: {clause.key} is a string; use =, !=, LIKE or IN")
    if op.endswith("LIKE") and kind != "string":
        raise InvalidInput(f"invalid {what}: {clause.key} is a number; LIKE compares strings")
    test: sa.ColumnElement[bool]
    match op.removeprefix("NOT "):
        case "=":
            test = column == value
        case "!=":
            test = column != value
        case "<":
            test = column < value
        case "<=":
            test = column <= value
        case ">":
            test = column > value
        case ">=":
            test = column >= value
        case "LIKE":
            test = _like(column, str(value), dialect)
        case "ILIKE":
            test = column.ilike(str(value))
        case "IN":
            test = column.in_(values)
        case "IS NULL":
            test = column.is_(None)
        case "IS NOT NULL":
            test = column.is_not(None)
        case _:
            raise AssertionError(f"operator {op!r} is not in the grammar")
    return sa.not_(test) if op.startswith("NOT ") else test


def parse_order(
    items: Sequence[str], known: Mapping[str, str], what: str
) -> list[tuple[str, bool]]:
    """MLflow order_by items as (canonical key, descending); ``known`` maps every accepted
    spelling (``name``, ``attributes.name``...) to its canonical key."""
    keys = []
    for item in items:
        tokens = tokenize(item, f"{what} {item!r}")
        name = tokens[0].text if tokens[0].kind in ("word", "field") else ""
        if tokens[0].kind == "field" and _ENTITIES.get(tokens[0].entity.lower()) == "attributes":
            name = tokens[0].value
        rest = [t.value for t in tokens[1:-1]]
        if name not in known or rest not in ([], ["ASC"], ["DESC"]):
            raise InvalidInput(
                f"invalid {what} {item!r}: expected one of {', '.join(sorted(set(known)))} "
                "followed by ASC or DESC"
            )
        keys.append((known[name], rest == ["DESC"]))
    return keys


@dataclass(frozen=True)
class Searched:
    """What a one-table search reads: the table, the columns a filter may test (with the
    kind of their values) and the names order_by gives them, how a tag clause reads, the
    order when none is given and the one that breaks ties, and the answer's key and JSON."""

    what: str
    table: sa.Table
    columns: Mapping[str, tuple[sa.ColumnElement[Any], str]]
    order: Mapping[str, str]
    tag_test: Callable[[Clause, str], sa.ColumnElement[bool]]
    default_order: tuple[sa.ColumnElement[Any], ...]
    ties: tuple[sa.ColumnElement[Any], ...]
    key: str
    to_json: Callable[[Connection, Sequence[Any]], list[dict[str, Any]]]


def search_page(ws: Workspace, f: Fields, s: Searched, default: int, most: int) -> dict[str, Any]:
    """One page of search ``s``: MLflow's filter, order_by, max_results and page_token."""
    limit = max_results(f, default, most)
    offset = decode_token(f.text("page_token"))
    what, conditions = f"{s.what} filter", []
    for clause in parse_clauses(f.text("filter"), what):
        if clause.tag:
            conditions.append(s.tag_test(clause, ws.db.dialect))
        elif clause.key in s.columns:
            column, kind = s.columns[clause.key]
            conditions.append(clause_condition(clause, column, kind, ws.db.dialect, what))
        else:
            raise InvalidInput(
                f"invalid {what}: unknown attribute {clause.key!r}; use "
                f"{', '.join(s.columns)} or tags.<key>"
            )
    known = dict(s.order) | {f"attributes.{k}": v for k, v in s.order.items()}
    order = [
        s.columns[key][0].desc() if desc else s.columns[key][0].asc()
        for key, desc in parse_order(f.texts("order_by"), known, f"{s.what} order_by item")
    ]
    query = sa.select(s.table).where(sa.and_(sa.true(), *conditions))
    query = query.order_by(*(order or s.default_order), *s.ties)
    with ws.db.read() as conn:
        rows = conn.execute(query.offset(offset).limit(limit + 1)).all()
        answer: dict[str, Any] = {s.key: s.to_json(conn, rows[:limit])}
    if len(rows) > limit:
        answer["next_page_token"] = encode_token(offset + limit)
    return answer
