"""``loopml build``: the image build context parses as a Dockerfile, its requirements resolve
in a fresh venv to exactly the pinned set, and ``loopml serve`` run as its entry point says
answers predictions from the bundled workspace."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pandas as pd
import pytest
from dockerfile_parse import DockerfileParser
from packaging.utils import canonicalize_name
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import InvalidInput, NotFound
from loopml.registry import ModelVersion, register_model
from loopml.store import Workspace
from loopml.targets import build_context
from loopml.targets._wheel import write_wheel
from tests.conftest import free_port

runner = CliRunner()


def _instructions(path: Path) -> list[tuple[str, str]]:
    parser = DockerfileParser(path=str(path / "Dockerfile"))
    return [(i["instruction"], i["value"]) for i in parser.structure]


def test_dockerfile_pins_the_recorded_python_and_runs_loopml_serve_unprivileged(
    sqlite_ws: Workspace, churn: ModelVersion, tmp_path: Path
) -> None:
    ctx = build_context(sqlite_ws, "Churn_Model@production", tmp_path / "ctx")
    assert ctx.model_version.version == churn.version and ctx.served_ref == "Churn_Model/1"
    parser = DockerfileParser(path=str(ctx.path / "Dockerfile"))
    assert parser.baseimage == f"python:{platform.python_version()}-slim"
    steps = _instructions(ctx.path)
    kinds = [kind for kind, _ in steps]
    assert kinds.count("FROM") == 1 and kinds[-1] == "ENTRYPOINT"
    user = next(value for kind, value in steps if kind == "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    health = next(value for kind, value in steps if kind == "HEALTHCHECK")
    assert "/readyz" in health and "CMD" in health
    entry = json.loads(next(value for kind, value in steps if kind == "ENTRYPOINT"))
    assert entry[:4] == ["loopml", "--workspace", "/srv/workspace", "serve"]
    assert entry[4] == "Churn_Model/1" and "--no-log" in entry
    copies = [value for kind, value in steps if kind == "COPY"]
    assert any(v.endswith("workspace/ ./workspace/") for v in copies)
    info = json.loads((ctx.path / "loopml-build.json").read_text())
    assert info["source_uri"] == churn.uri and info["package_digest"] == churn.package_digest


def test_requirements_pin_recorded_versions_and_resolve_alone_in_a_fresh_venv(
    sqlite_ws: Workspace, churn: ModelVersion, tmp_path: Path
) -> None:
    """pip --dry-run (a full install of numpy, scikit-learn... would take minutes): every
    pin is available, the set is consistent, and nothing beyond it is pulled in."""
    ctx = build_context(sqlite_ws, churn.uri, tmp_path / "ctx", runtime="onnx")
    lines = (ctx.path / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if "==" in line)
    import numpy
    import sklearn

    assert pins["scikit-learn"] == sklearn.__version__ and pins["numpy"] == numpy.__version__
    assert "onnxruntime" in pins and "uvicorn" in pins and "starlette" in pins
    assert lines[-1] == "./wheels/loopml-0.1.0-py3-none-any.whl"
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    done = subprocess.run(
        [*pip, "--dry-run", "--quiet", "--report", str(report), "-r", "requirements.txt"],
        cwd=ctx.path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    installed = {
        str(canonicalize_name(item["metadata"]["name"])): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert installed == {**pins, "loopml": "0.1.0"}


def test_loopml_serve_from_the_context_answers_predictions(
    sqlite_ws: Workspace,
    churn: ModelVersion,
    model: LogisticRegression,
    frame: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """The image's entry point, run here on the context folder (no Docker engine here)."""
    out = tmp_path / "ctx"
    result = runner.invoke(
        app, ["-w", str(sqlite_ws.home), "build", "Churn_Model@production", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Churn_Model/1" in result.output
    entry = json.loads(next(v for k, v in _instructions(out) if k == "ENTRYPOINT"))
    port = free_port()
    args = [str(out / "workspace") if a == "/srv/workspace" else a for a in entry[1:]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rows = frame[["a", "b", "c"]].head(3)
        body = {"dataframe_split": {"columns": ["a", "b", "c"], "data": rows.values.tolist()}}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(rows).tolist()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_onnx_runtime_and_cli_errors(
    sqlite_ws: Workspace, churn: ModelVersion, tmp_path: Path
) -> None:
    ctx = build_context(sqlite_ws, churn.uri, tmp_path / "onnx", runtime="onnx", port=9000)
    entry = json.loads(next(v for k, v in _instructions(ctx.path) if k == "ENTRYPOINT"))
    assert entry[-4:] == ["9000", "--runtime", "onnx", "--no-log"]
    assert next(v for k, v in _instructions(ctx.path) if k == "EXPOSE") == "9000"
    with pytest.raises(InvalidInput, match="Churn_Model/1 has no ONNX export"):
        build_context(sqlite_ws, "Churn_Model/1", tmp_path / "x", runtime="onnx")
    with pytest.raises(InvalidInput, match="exists and is not empty"):
        build_context(sqlite_ws, churn.uri, ctx.path)
    with pytest.raises(InvalidInput, match="runtime must be one of"):
        build_context(sqlite_ws, churn.uri, tmp_path / "y", runtime="gpu")
    with pytest.raises(InvalidInput, match="port must be an integer in 1-65535"):
        build_context(sqlite_ws, churn.uri, tmp_path / "y", port=0)
    with pytest.raises(NotFound):
        build_context(sqlite_ws, "Churn_Model/9", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    forced = build_context(sqlite_ws, churn.uri, ctx.path, force=True)
    assert "--runtime" not in (forced.path / "Dockerfile").read_text()
    result = runner.invoke(app, ["-w", str(sqlite_ws.home), "build", "nope/1", "-o", "z"])
    assert isinstance(result.exception, NotFound) and "'nope'" in str(result.exception)
    assert "--runtime" in runner.invoke(app, ["build", "--help"]).output


def test_the_loopml_wheel_is_reproducible_and_installable_metadata(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_wheel(tmp_path / "a"), write_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert "loopml/__init__.py" in names and "loopml-0.1.0.dist-info/RECORD" in names
        assert not any("__pycache__" in n for n in names)
        assert (
            "loopml = loopml.cli:main"
            in zf.read("loopml-0.1.0.dist-info/entry_points.txt").decode()
        )


def test_the_final_step_library_of_a_pipeline_is_pinned(
    sqlite_ws: Workspace, frame: pd.DataFrame, tmp_path: Path
) -> None:
    import xgboost
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model = Pipeline([("s", StandardScaler()), ("m", xgboost.XGBClassifier(n_estimators=2))])
    model.fit(frame[["a", "b", "c"]], frame["y"])
    mv = register_model(sqlite_ws, model, "boosted", input_example=frame[["a", "b", "c"]].head())
    assert mv.flavor == "pipeline"
    ctx = build_context(sqlite_ws, mv.uri, tmp_path / "ctx")
    assert ctx.requirements["xgboost"] == xgboost.__version__
    assert f"xgboost=={xgboost.__version__}" in (ctx.path / "requirements.txt").read_text()
