"""The top-level surface users import: it changes only on purpose."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import loopml

EXPECTED = {
    "AlreadyExists",
    "Conflict",
    "InvalidInput",
    "LoopmlError",
    "MissingDependency",
    "NotFound",
    "Settings",
    "Unauthorized",
    "Workspace",
    "__version__",
    "active_run",
    "automl",
    "data",
    "delete_alias",
    "drift_report",
    "errors",
    "features",
    "get_metric_history",
    "get_model_version",
    "get_run",
    "init",
    "lineage",
    "load_model",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "loop",
    "monitoring",
    "pipeline",
    "pipelines",
    "register_model",
    "registry",
    "search_runs",
    "server",
    "serving",
    "set_alias",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "tracking",
    "train",
    "training",
    "tune",
    "use_workspace",
}


def test_public_surface_is_deliberate() -> None:
    assert set(loopml.__all__) == EXPECTED
    for name in loopml.__all__:
        assert hasattr(loopml, name), name


def test_module_level_logging_needs_an_active_run() -> None:
    import pytest

    with pytest.raises(loopml.InvalidInput, match="no active run"):
        loopml.log_metric("loss", 1.0)


def test_every_name_the_docs_use_resolves_after_a_bare_import() -> None:
    """Each ``loopml.a.b`` in the README's and docs' Python examples is reachable from
    ``import loopml`` alone (checked in a fresh interpreter, so nothing is preloaded)."""
    root = Path(__file__).parents[1]
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    blocks = [b for t in texts for b in re.findall(r"```python\n(.*?)```", t.read_text(), re.S)]
    names = sorted({m for b in blocks for m in re.findall(r"\bloopml(?:\.[A-Za-z_]\w*)+", b)})
    assert "loopml.train" in names and len(names) > 10
    script = "import functools, loopml\n" + "".join(
        f"functools.reduce(getattr, {n.split('.')[1:]!r}, loopml)\n" for n in names
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
