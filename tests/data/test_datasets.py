"""Ingestion and versioned datasets, on SQLite and PostgreSQL metadata stores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from loopml import data
from loopml.errors import InvalidInput, NotFound
from loopml.store import Node, Workspace, upstream


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(60)],
            "Age": [20 + i % 50 for i in range(60)],
            "Monthly Fee": [10.0 + i for i in range(60)],
            "plan": ["basic", "pro", "max"] * 20,
            "churned": [i % 3 == 0 for i in range(60)],
        }
    )


def test_csv_ingest_versions_and_dedup(
    ws: Workspace, tmp_path: Path, customers: pd.DataFrame
) -> None:
    path = tmp_path / "customers.csv"
    customers.to_csv(path, index=False)
    v1 = data.ingest(path, name="churn", workspace=ws)
    assert (v1.ref, v1.num_rows) == ("churn@1", 60)
    assert v1.column_names == ["customer_id", "age", "monthly_fee", "plan", "churned"]
    kinds = {c.name: c.kind for c in v1.columns}
    assert kinds["monthly_fee"] == "numeric" and kinds["churned"] == "boolean"
    assert kinds["plan"] == "categorical" and kinds["customer_id"] == "identifier"
    # identical data (even from another format) is the same version
    customers.to_parquet(tmp_path / "customers.parquet", index=False)
    again = data.ingest(tmp_path / "customers.parquet", name="churn", workspace=ws)
    assert again.ref == "churn@1"
    v2 = data.ingest(customers.head(30), name="churn", workspace=ws)
    assert v2.ref == "churn@2" and v2.num_rows == 30
    assert data.resolve("churn@latest", workspace=ws).ref == "churn@2"
    assert data.resolve("churn", workspace=ws).ref == "churn@2"
    frame = data.resolve("churn@1", workspace=ws).to_pandas()
    assert frame["monthly_fee"].tolist() == customers["Monthly Fee"].tolist()
    batches = list(v1.iter_batches(batch_size=25))
    assert [b.num_rows for b in batches] == [25, 25, 10]
    edges = upstream(ws.db, Node("dataset_version", "churn@1"))
    assert any(e.src.id.endswith("customers.csv") and e.role == "ingested_from" for e in edges)


def test_globs_jsonl_arrow_and_aliases(ws: Workspace, tmp_path: Path) -> None:
    for i in range(3):
        pd.DataFrame({"x": [i, i + 1], "y": ["a", "b"]}).to_csv(
            tmp_path / f"part{i}.csv", index=False
        )
    v = data.ingest(str(tmp_path / "part*.csv"), name="parts", workspace=ws)
    assert v.num_rows == 6 and len(v.source["paths"]) == 3
    (tmp_path / "rows.jsonl").write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    assert data.ingest(tmp_path / "rows.jsonl", name="j", workspace=ws).num_rows == 2
    t = pa.table({"k": [1, 2, 3]})
    assert data.ingest(t, name="arrow", workspace=ws).num_rows == 3
    data.set_alias("parts", "clean", 1, workspace=ws)
    assert data.resolve("parts@clean", workspace=ws).ref == "parts@1"
    with pytest.raises(NotFound, match="aliases: clean"):
        data.resolve("parts@dirty", workspace=ws)
    with pytest.raises(InvalidInput, match="version"):
        data.set_alias("parts", "7", 1, workspace=ws)


def test_sql_sources_on_sqlite_and_postgres(
    ws: Workspace, tmp_path: Path, postgres_url: str
) -> None:
    for url in (f"sqlite:///{tmp_path / 'src.db'}", postgres_url):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS src_customers")
            conn.exec_driver_sql("CREATE TABLE src_customers (id INTEGER, fee REAL)")
            conn.exec_driver_sql("INSERT INTO src_customers VALUES (1, 9.5), (2, 20.0)")
        engine.dispose()
        v = data.ingest(
            data.SQL("select * from src_customers order by id", url), name="from_sql", workspace=ws
        )
        assert v.to_pandas()["fee"].tolist() == [9.5, 20.0]
        assert "***" in v.source["url"] or "@" not in v.source["url"]
        with pytest.raises(InvalidInput, match="query failed"):
            data.ingest(data.SQL("select * from no_such_table", url), name="x", workspace=ws)


def test_append_checks_the_schema(ws: Workspace, customers: pd.DataFrame) -> None:
    base = data.ingest(customers, name="churn", workspace=ws)
    more = customers.head(5).assign(customer_id=[f"n{i}" for i in range(5)])
    v2 = data.append(base, more, workspace=ws)
    assert (v2.ref, v2.num_rows) == ("churn@2", 65)
    assert any(e.role == "derived_from" for e in upstream(ws.db, v2.lineage_node))
    bad = customers.head(5).assign(Age=["old"] * 5).drop(columns=["plan"])
    with pytest.raises(InvalidInput) as err:
        data.append(base, bad, workspace=ws)
    message = str(err.value)
    assert "'plan'" in message and "column 'age' is string, expected int64" in message


def test_sql_over_versions_and_diff(ws: Workspace, customers: pd.DataFrame) -> None:
    data.ingest(customers, name="churn", workspace=ws)
    data.ingest(customers.head(30).drop(columns=["plan"]), name="churn", workspace=ws)
    out = data.sql(
        "select plan, count(*) as n from {churn@1} group by plan order by plan", workspace=ws
    )
    assert out.to_dict("records") == [
        {"plan": "basic", "n": 20},
        {"plan": "max", "n": 20},
        {"plan": "pro", "n": 20},
    ]
    with pytest.raises(InvalidInput, match="sql"):
        data.sql("select nope from {churn@1}", workspace=ws)
    d = data.diff("churn@1", "churn@2", workspace=ws)
    assert d.rows == (60, 30) and d.removed == ("plan",) and d.schema_changed
    assert "monthly_fee" in set(d.stats["column"])


@pytest.mark.parametrize(
    ("content", "kwargs", "error", "message"),
    [
        ("a,b\n1,2\n3,4,5\n6,7\n", {}, InvalidInput, "line 3 has 3 fields"),
        ("", {}, InvalidInput, "empty"),
        ("Ag e,ag_e\n1,2\n", {}, InvalidInput, "both become 'ag_e'"),
        (b"name,n\nCaf\xe9,1\n", {}, InvalidInput, "encoding"),
        ("a,b\n1,2\n", {"encoding": "no-such-codec"}, InvalidInput, "unknown encoding"),
        ("a,b\n1,2\n", {"on_bad_lines": "ignore"}, InvalidInput, "on_bad_lines"),
    ],
)
def test_bad_csv_input(
    sqlite_ws: Workspace,
    tmp_path: Path,
    content: str | bytes,
    kwargs: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error, match=message):
        data.ingest(path, name="bad", workspace=sqlite_ws, **kwargs)
    with pytest.raises(NotFound):
        data.resolve("bad", workspace=sqlite_ws)  # nothing half-written


def test_skipped_lines_are_recorded(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n8\n")
    v = data.ingest(path, name="rows", on_bad_lines="skip", workspace=sqlite_ws)
    assert v.num_rows == 2
    assert [s["line"] for s in v.source["skipped_lines"]] == [3, 5]


def test_other_bad_sources(sqlite_ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        data.ingest(tmp_path / "missing.csv", name="m", workspace=sqlite_ws)
    with pytest.raises(NotFound, match="no files match"):
        data.ingest(str(tmp_path / "*.csv"), name="m", workspace=sqlite_ws)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="unreadable Parquet"):
        data.ingest(tmp_path / "broken.parquet", name="m", workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="unknown file type"):
        data.ingest(__file__, name="m", workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="cannot ingest a int"):
        data.ingest(42, name="m", workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="invalid dataset name"):
        data.ingest(pa.table({"a": [1]}), name="bad name!", workspace=sqlite_ws)
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        data.resolve("nope@2", workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="has no column"):
        data.ingest(pa.table({"a": [1]}), name="ok", workspace=sqlite_ws).to_arrow(["b"])


def test_a_crash_mid_ingest_leaves_no_version(
    sqlite_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopml.data._datasets as datasets_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    (tmp_path / "a.csv").write_text("a\n1\n2\n")
    monkeypatch.setattr(datasets_module, "add_edge", broken)  # fails after the version row
    with pytest.raises(RuntimeError):
        data.ingest(tmp_path / "a.csv", name="half", workspace=sqlite_ws)
    monkeypatch.undo()
    with pytest.raises(NotFound):
        data.resolve("half", workspace=sqlite_ws)


def test_parquet_is_zstd_and_content_hash_ignores_chunking(sqlite_ws: Workspace) -> None:
    t = pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
    chunked = pa.concat_tables([t.slice(0, 300), t.slice(300)])
    assert data.content_hash(t) == data.content_hash(chunked)
    v = data.ingest(t, name="z", workspace=sqlite_ws)
    meta = pq.ParquetFile(v.path()).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_progress_reports_bytes_read(sqlite_ws: Workspace, tmp_path: Path) -> None:
    for i in range(2):
        pd.DataFrame({"x": range(5000), "y": ["v"] * 5000}).assign(x=lambda f, i=i: f.x + i).to_csv(
            tmp_path / f"p{i}.csv", index=False
        )
    total = sum(p.stat().st_size for p in tmp_path.glob("p*.csv"))
    calls: list[tuple[int, int]] = []
    data.ingest(
        str(tmp_path / "p*.csv"),
        name="p",
        workspace=sqlite_ws,
        progress=lambda done, all_: calls.append((done, all_)),
    )
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
