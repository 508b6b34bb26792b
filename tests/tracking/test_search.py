"""search_runs and its filter language, on SQLite and PostgreSQL.

Five runs in two experiments are written straight into the schema tables (not through the
run-logging API), so each test states exactly which runs a filter or an order must give.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.store import Workspace
from loopml.store.schema import experiments, latest_metrics, params, run_tags, runs
from loopml.tracking._filter import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_VALUES,
    And,
    Compare,
    Field,
    Not,
    Or,
    parse_filter,
)
from loopml.tracking._search import BASE_COLUMNS, compile_filter, search_runs

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in milliseconds
HOUR = 3_600_000
ALL = ["r1", "r2", "r3", "r4", "r5"]


def _seed(ws: Workspace) -> None:
    """Two experiments with five runs between them, and a third experiment with none.

    ====  =======  =========  ========  =====  ======  ===  =============  ==========
    run   exp      status     start     ended  parent  auc  model          team tag
    ====  =======  =========  ========  =====  ======  ===  =============  ==========
    r1    exp-a    FINISHED   01:00     yes            0.9  xgb            Vision
    r2    exp-a    FINISHED   02:00     yes            0.7  rf             nlp
    r3    exp-a    FAILED     03:00     yes            NaN  XGBoost
    r4    exp-b    RUNNING    04:00     no     r1           linear         vision
    r5    exp-b    KILLED     05:00     yes    r1      0.8  o'brien_50%    NLP
    ====  =======  =========  ========  =====  ======  ===  =============  ==========
    """
    run_rows = [
        ("r1", 1, "alpha", "FINISHED", 1, 10, None),
        ("r2", 1, "beta", "FINISHED", 2, 10, None),
        ("r3", 1, "gamma", "FAILED", 3, 5, None),
        ("r4", 2, "delta", "RUNNING", 4, None, "r1"),
        ("r5", 2, "Epsilon", "KILLED", 5, 1, "r1"),
    ]
    metric_rows = {
        "r1": {"auc": 0.9, "loss": 0.1, "val auc": 0.85, "val.auc": 0.86},
        "r2": {"auc": 0.7, "loss": 0.3},
        "r3": {"auc": None, "loss": 0.5},  # NULL is NaN
        "r4": {"loss": 0.2},
        "r5": {"auc": 0.8, "loss": 0.4},
    }
    param_rows = {
        "r1": {"model": "xgb", "depth": "5", "lr": "0.1"},
        "r2": {"model": "rf", "depth": "10"},
        "r3": {"model": "XGBoost", "depth": "3"},
        "r4": {"model": "linear"},
        "r5": {"model": "o'brien_50%", "depth": "5"},
    }
    tag_rows = {
        "r1": {"team": "Vision", "my tag": "yes"},
        "r2": {"team": "nlp"},
        "r4": {"team": "vision"},
        "r5": {"team": "NLP"},
    }
    with ws.db.write() as conn:
        conn.execute(
            experiments.insert(),
            [
                {"id": i, "name": name, "created_at": T0}
                for i, name in enumerate(["exp-a", "exp-b", "empty-exp"], start=1)
            ],
        )
        for run_id, exp, name, status, hour, minutes, parent in run_rows:
            start = T0 + hour * HOUR
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    experiment_id=exp,
                    name=name,
                    status=status,
                    start_time=start,
                    end_time=None if minutes is None else start + minutes * 60_000,
                    parent_id=parent,
                )
            )
        conn.execute(
            latest_metrics.insert(),
            [
                {"run_id": r, "key": k, "value": v, "step": 0, "timestamp": T0}
                for r, values in metric_rows.items()
                for k, v in values.items()
            ],
        )
        for table, rows in ((params, param_rows), (run_tags, tag_rows)):
            conn.execute(
                table.insert(),
                [
                    {"run_id": r, "key": k, "value": v}
                    for r, values in rows.items()
                    for k, v in values.items()
                ],
            )


def _run_count(ws: Workspace) -> int:
    return len(search_runs(ws, max_results=100))


@pytest.fixture
def seeded(ws: Workspace, db_ws: Workspace) -> Workspace:
    _seed(db_ws)
    return ws


def _ids(
    ws: Workspace,
    filter: str | None = None,
    *,
    experiments: str | list[str] | None = None,
    order_by: list[str] | None = None,
    max_results: int = 1000,
) -> list[str]:
    frame = search_runs(ws, experiments, filter, order_by, max_results)
    return list(frame["run_id"])


# -- which runs a filter selects ------------------------------------------------------------
MATCHES = [
    # metrics: numbers; a NaN (NULL) value differs from everything; a missing metric fails all
    ("metrics.auc > 0.8", ["r1"]),
    ("metrics.auc >= 0.8", ["r1", "r5"]),
    ("metrics.auc < 0.8", ["r2"]),
    ("metrics.auc <= 0.8", ["r2", "r5"]),
    ("metrics.auc = 0.7", ["r2"]),
    ("metrics.auc == 0.7", ["r2"]),
    ("metrics.auc != 0.7", ["r1", "r3", "r5"]),
    ("metrics.auc <> 0.7", ["r1", "r3", "r5"]),
    ("metrics.auc IN (0.7, 0.9)", ["r1", "r2"]),
    ("metrics.auc NOT IN (0.7, 0.9)", ["r3", "r5"]),
    ("metrics.auc IS NULL", ["r4"]),
    ("metrics.auc IS NOT NULL", ["r1", "r2", "r3", "r5"]),
    ("metrics.loss > 1e-1", ["r2", "r3", "r4", "r5"]),
    ("metrics.loss > -1", ALL),
    ("metrics.loss<.25", ["r1", "r4"]),
    ("metric.auc > 0.8", ["r1"]),
    ("METRICS.auc > 0.8", ["r1"]),
    ("metrics.`val auc` > 0.8", ["r1"]),
    ("metrics.val.auc = 0.86", ["r1"]),
    ('metrics."val.auc" = 0.86', ["r1"]),
    # params: strings; a number compares by its text; != means "has it, with another value"
    ("params.model = 'xgb'", ["r1"]),
    ('params.model = "xgb"', ["r1"]),
    ("params.depth = 5", ["r1", "r5"]),
    ("params.depth = '5'", ["r1", "r5"]),
    ("params.depth = 5.0", []),
    ("params.model != 'xgb'", ["r2", "r3", "r4", "r5"]),
    ("params.depth != 5", ["r2", "r3"]),
    ("params.model IN ('xgb', 'rf')", ["r1", "r2"]),
    ("params.model NOT IN ('xgb', 'rf')", ["r3", "r4", "r5"]),
    ("params.model LIKE 'xgb%'", ["r1"]),
    ("params.model LIKE 'XGB%'", ["r3"]),
    ("params.model ILIKE 'xgb%'", ["r1", "r3"]),
    ("params.model NOT LIKE 'xgb%'", ["r2", "r3", "r4", "r5"]),
    ("params.model NOT ILIKE 'xgb%'", ["r2", "r4", "r5"]),
    ("params.model LIKE '_f'", ["r2"]),
    ("params.model LIKE '%\\%'", ["r5"]),
    ("params.model LIKE 'o''brien\\_5%'", ["r5"]),
    ("params.model LIKE '*'", []),
    ("params.model LIKE '[x]gb'", []),
    ("params.model = 'o''brien_50%'", ["r5"]),
    ("params.lr IS NULL", ["r2", "r3", "r4", "r5"]),
    ("params.lr IS NOT NULL", ["r1"]),
    ("param.lr = 0.1", ["r1"]),
    # tags
    ("tags.team = 'Vision'", ["r1"]),
    ("tags.team ILIKE 'vision'", ["r1", "r4"]),
    ("tags.team LIKE 'v%'", ["r4"]),
    ("tags.team IN ('nlp', 'NLP')", ["r2", "r5"]),
    ("tags.team != 'nlp'", ["r1", "r4", "r5"]),
    ("tags.team IS NULL", ["r3"]),
    ("tags.`my tag` = 'yes'", ["r1"]),
    ('tag.team = "nlp"', ["r2"]),
    # attributes
    ("attributes.status = 'FINISHED'", ["r1", "r2"]),
    ("attributes.status = 'finished'", ["r1", "r2"]),
    ("attributes.status != 'FINISHED'", ["r3", "r4", "r5"]),
    ("attributes.status IN ('FAILED', 'killed')", ["r3", "r5"]),
    ("attributes.name = 'alpha'", ["r1"]),
    ("attributes.run_name = 'beta'", ["r2"]),
    ("attributes.name LIKE 'e%'", []),
    ("attributes.name ILIKE 'e%'", ["r5"]),
    ("attributes.run_id = 'r3'", ["r3"]),
    ("attributes.id IN ('r1', 'r2')", ["r1", "r2"]),
    ("attributes.parent_run_id = 'r1'", ["r4", "r5"]),
    ("attributes.parent_id IS NULL", ["r1", "r2", "r3"]),
    (f"attributes.start_time > {T0 + 3 * HOUR}", ["r4", "r5"]),
    (f"attributes.start_time = {T0 + 3 * HOUR}", ["r3"]),
    ("attributes.start_time >= '2024-01-01T03:00:00Z'", ["r3", "r4", "r5"]),
    ("attributes.start_time < '2024-01-01 02:00'", ["r1"]),
    ("attributes.start_time >= '2024-01-01T05:00:00+02:00'", ["r3", "r4", "r5"]),
    ("attributes.end_time IS NULL", ["r4"]),
    (f"attributes.end_time < {T0 + 2 * HOUR}", ["r1"]),
    ("attributes.experiment = 'exp-b'", ["r4", "r5"]),
    ("attr.experiment != 'exp-a'", ["r4", "r5"]),
    ("run.experiment LIKE 'exp-%'", ALL),
    ("run.STATUS = 'running'", ["r4"]),
    # AND binds tighter than OR, NOT tighter than AND; parentheses override
    ("metrics.auc > 0.8 OR metrics.auc < 0.75 AND params.model = 'xgb'", ["r1"]),
    ("(metrics.auc > 0.8 OR metrics.auc < 0.75) AND params.model = 'rf'", ["r2"]),
    ("params.model = 'rf' or params.model = 'xgb' and tags.team = 'nlp'", ["r2"]),
    ("NOT metrics.auc > 0.8", ["r2", "r3", "r4", "r5"]),
    ("NOT metrics.auc > 0.8 AND params.model = 'rf'", ["r2"]),
    ("NOT (metrics.auc > 0.8 OR params.model = 'rf')", ["r3", "r4", "r5"]),
    ("not not params.model = 'rf'", ["r2"]),
    ("((params.model = 'rf'))", ["r2"]),
    ("attributes.status = 'FINISHED' AND metrics.auc > 0.8", ["r1"]),
    # no filter
    ("", ALL),
    ("   ", ALL),
    (None, ALL),
]


@pytest.mark.parametrize(("filter", "expected"), MATCHES)
def test_filter_selects_runs(seeded: Workspace, filter: str | None, expected: list[str]) -> None:
    assert sorted(_ids(seeded, filter)) == expected


def test_precedence_in_the_tree() -> None:
    a, b, c = (Compare(Field("param", key), "=", "1") for key in "abc")
    assert parse_filter("params.a = 1 OR params.b = 1 AND NOT params.c = 1") == Or(
        (a, And((b, Not(c))))
    )
    assert parse_filter("(params.a = 1 OR params.b = 1) AND params.c = 1") == And((Or((a, b)), c))


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (" OR ".join(["params.model = 'rf'"] * MAX_CONDITIONS), ["r2"]),
        ("(" * MAX_DEPTH + "params.model = 'rf'" + ")" * MAX_DEPTH, ["r2"]),
        ("NOT " * MAX_DEPTH + "params.model = 'rf'", ["r2"]),  # an even number of NOTs
        (
            "params.model IN (" + ", ".join(f"'{i}'" for i in range(MAX_VALUES - 1)) + ", 'rf')",
            ["r2"],
        ),
    ],
)
def test_largest_accepted_filters_run(seeded: Workspace, filter: str, expected: list[str]) -> None:
    assert _ids(seeded, filter) == expected


# -- order and limit --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r5", "r4", "r3", "r2", "r1"]),  # newest first
        ([], ["r5", "r4", "r3", "r2", "r1"]),
        (["metrics.auc DESC"], ["r1", "r5", "r2", "r3", "r4"]),  # NaN and missing last
        (["metrics.auc ASC"], ["r2", "r5", "r1", "r3", "r4"]),
        (["metrics.auc"], ["r2", "r5", "r1", "r3", "r4"]),
        (["params.depth"], ["r2", "r3", "r1", "r5", "r4"]),  # strings: '10' < '3' < '5'
        (["params.depth desc"], ["r1", "r5", "r3", "r2", "r4"]),
        (["attributes.run_id DESC"], ["r5", "r4", "r3", "r2", "r1"]),
        (["attributes.end_time DESC"], ["r5", "r3", "r2", "r1", "r4"]),
        (["attributes.experiment DESC", "metrics.loss"], ["r4", "r5", "r1", "r2", "r3"]),
        (["tags.`my tag`", "attributes.start_time"], ["r1", "r2", "r3", "r4", "r5"]),
    ],
)
def test_order_by(seeded: Workspace, order_by: list[str] | None, expected: list[str]) -> None:
    assert _ids(seeded, order_by=order_by) == expected


def test_max_results_cuts_after_ordering(seeded: Workspace) -> None:
    frame = search_runs(seeded, order_by=["metrics.auc DESC"], max_results=2)
    assert list(frame["run_id"]) == ["r1", "r5"]
    assert list(frame["metrics.auc"]) == [0.9, 0.8]
    assert list(frame["params.model"]) == ["xgb", "o'brien_50%"]
    assert "metrics.val auc" in frame.columns  # r1 has it
    assert _ids(seeded, max_results=1) == ["r5"]
    assert len(_ids(seeded, max_results=1_000_000)) == 5


@pytest.mark.parametrize("bad", [0, -1, 1_000_001, 1.5, True, "10"])
def test_max_results_out_of_range(seeded: Workspace, bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_results"):
        search_runs(seeded, max_results=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "order_by",
    [
        ["metrics.auc sideways"],
        [""],
        ["start_time DESC"],
        ["DROP TABLE runs"],
        ["metrics.auc; DROP TABLE runs"],
        ["metrics.auc DESC, params.x"],
        ["foo.bar"],
        ["attributes.owner"],
        [3],
    ],
)
def test_bad_order_by(seeded: Workspace, order_by: list[str]) -> None:
    with pytest.raises(InvalidInput, match="order_by item"):
        search_runs(seeded, order_by=order_by)


# -- the frame --------------------------------------------------------------------------------
def test_frame_columns_and_types(seeded: Workspace) -> None:
    frame = search_runs(seeded, order_by=["attributes.run_id"])
    assert list(frame.columns) == [
        *BASE_COLUMNS,
        "metrics.auc",
        "metrics.loss",
        "metrics.val auc",
        "metrics.val.auc",
        "params.depth",
        "params.lr",
        "params.model",
        "tags.my tag",
        "tags.team",
    ]
    assert str(frame["start_time"].dtype) == "datetime64[ms, UTC]"
    assert str(frame["end_time"].dtype) == "datetime64[ms, UTC]"
    assert frame["metrics.auc"].dtype == "float64"
    r1, r3, r4 = (frame.set_index("run_id").loc[r] for r in ("r1", "r3", "r4"))
    assert r1["experiment"] == "exp-a"
    assert r1["name"] == "alpha"
    assert r1["status"] == "FINISHED"
    assert r1["start_time"] == pd.Timestamp("2024-01-01T01:00:00Z")
    assert r1["end_time"] == pd.Timestamp("2024-01-01T01:10:00Z")
    assert pd.isna(r1["parent_run_id"])
    assert r1["metrics.val auc"] == 0.85
    assert r1["params.depth"] == "5"
    assert r1["tags.my tag"] == "yes"
    assert pd.isna(r3["metrics.auc"])  # NaN logged
    assert pd.isna(r4["metrics.auc"])  # never logged
    assert pd.isna(r4["end_time"])  # still running
    assert r4["parent_run_id"] == "r1"
    assert pd.isna(r4["params.lr"])


def test_no_match_gives_empty_frame_with_base_columns(seeded: Workspace) -> None:
    frame = search_runs(seeded, filter="metrics.auc > 5")
    assert frame.empty
    assert list(frame.columns) == list(BASE_COLUMNS)
    assert str(frame["start_time"].dtype) == "datetime64[ms, UTC]"


def test_columns_only_for_keys_of_matched_runs(seeded: Workspace) -> None:
    frame = search_runs(seeded, filter="params.model = 'rf'")
    assert [c for c in frame.columns if c not in BASE_COLUMNS] == [
        "metrics.auc",
        "metrics.loss",
        "params.depth",
        "params.model",
        "tags.team",
    ]


def test_empty_workspace(ws: Workspace) -> None:
    assert list(search_runs(ws).columns) == list(BASE_COLUMNS)


# -- experiments ------------------------------------------------------------------------------
def test_experiments_restrict_the_search(seeded: Workspace) -> None:
    assert sorted(_ids(seeded, experiments="exp-b")) == ["r4", "r5"]
    assert sorted(_ids(seeded, experiments=["exp-a", "exp-b"])) == ALL
    assert _ids(seeded, "metrics.auc > 0.75", experiments=["exp-b"]) == ["r5"]
    assert _ids(seeded, experiments="empty-exp") == []
    assert _ids(seeded, experiments=[]) == []


def test_unknown_experiment(seeded: Workspace) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        search_runs(seeded, experiments=["exp-a", "nope"])


# -- hostile and malformed filters ------------------------------------------------------------
HOSTILE = [
    "params.model = 'x'; DROP TABLE runs; --",
    "metrics.auc > 0.8 UNION SELECT * FROM params",
    "1=1",
    "metrics.auc > (SELECT 1)",
    "DROP TABLE runs",
    "params.model = 'unterminated",
    "params.model = `x`",
    "(metrics.auc > 0.8",
    "metrics.auc > 0.8)",
    "()",
    "metrics.auc >",
    "metrics.auc > 0.8 AND",
    "AND metrics.auc > 0.8",
    "NOT",
    "params.x < 'a'",
    "tags.team >= 'a'",
    "attributes.name > 'a'",
    "foo.bar = 1",
    "attributes.owner = 'me'",
    "metrics.auc > 'high'",
    "metrics.auc LIKE '0.%'",
    "attributes.start_time LIKE '2024%'",
    "attributes.status = 'DONE'",
    "attributes.start_time > 'yesterday'",
    "attributes.start_time > 1.5",
    "attributes.start_time > 1e30",
    "metrics.auc > 0.8 --",
    "metrics.auc > 0.8 -- comment",
    "metrics.auc > 0.8 /* x */",
    "params.model = 'a' OR 1=1",
    "params.model = x",
    "params.model = NULL",
    "params.model = TRUE",
    "params.model IN ()",
    "params.model IN 'a'",
    "params.model IN ('a' 'b')",
    "params.model LIKE 5",
    "params.model LIKE 'a\\'",
    "params.model = 'a\x00b'",
    "params.model = '\ud800'",
    "metrics.",
    "metrics.`` = 1",
    "metrics.auc = 1abc",
    "metrics.auc = 1.2.3",
    "metrics.auc > 0.8 metrics.loss < 1",
    "params.model == = 'a'",
    "params.model = $1",
    "params.model = :x",
    "params.model = ?",
    "metrics.auc > 0.8 && metrics.loss < 1",
    "metrics.auc > 0.8 ORDER BY 1",
    "metrics.auc > 0.8 LIMIT 1",
    "attributes.status IS 'FINISHED'",
    "metrics.auc IS NOT",
    "metrics.auc NOT = 1",
    "metrics auc > 1",
    "status = 'FINISHED'",
    "(" * 40 + "params.model = 'a'" + ")" * 40,
    "NOT " * 40 + "params.model = 'a'",
    " OR ".join(["params.model = 'a'"] * 201),
    "params.model IN (" + ", ".join(["'a'"] * 1001) + ")",
    "params.model = '" + "a" * 30_000 + "'",
]


@pytest.mark.parametrize("filter", HOSTILE)
def test_hostile_filter_is_invalid_input(seeded: Workspace, filter: str) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid filter at position \d+: "):
        search_runs(seeded, filter=filter)
    assert _run_count(seeded) == 5


@pytest.mark.parametrize(
    "filter",
    [
        "params.model = 'x'' OR ''1''=''1'",
        'params.model = "x"" OR 1=1 --"',
        "params.`x'; DROP TABLE runs; --` = 'a'",
        "tags.team IN ('x'');DELETE FROM runs;--')",
        "attributes.name LIKE '%'' OR ''a''=''a'",
    ],
)
def test_injection_attempts_are_plain_values(seeded: Workspace, filter: str) -> None:
    assert _ids(seeded, filter) == []
    assert _run_count(seeded) == 5
    assert _ids(seeded) == ["r5", "r4", "r3", "r2", "r1"]


def test_values_are_bound_parameters() -> None:
    compiled = compile_filter(parse_filter("params.`k'ey` = 'evil'' OR 1=1'"), "postgresql")
    sql = str(compiled)
    assert "evil" not in sql
    assert "k'ey" not in sql
    assert set(compiled.compile().params.values()) == {"k'ey", "evil' OR 1=1"}


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ("metrics.auc >", "invalid filter at position 13: expected a value after '>'"),
        ("params.model = 'x'; DROP TABLE runs", "invalid filter at position 18: unexpected ';'"),
        ("params.x < 'a'", "position 9: params are strings; use =, !=, IN or LIKE"),
        ("foo.bar = 1", "unknown entity 'foo'"),
        ("attributes.owner = 'me'", "attributes are run_id, name, status, start_time"),
        ("params.model = 'abc", "position 15: unterminated string"),
        ("(metrics.auc > 1", "position 16: expected ')' to close the '(' at position 0"),
        ("metrics.auc > 0.8 UNION", "position 18: expected AND, OR or the end of the filter"),
        ("attributes.status = 'DONE'", "status must be one of RUNNING, FINISHED, FAILED, KILLED"),
        ("start_time > 5", "did you mean attributes.start_time?"),
    ],
)
def test_error_messages_say_where_and_what(seeded: Workspace, filter: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        search_runs(seeded, filter=filter)
