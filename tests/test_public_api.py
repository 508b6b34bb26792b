"""The top-level surface users import: it changes only on purpose."""

from __future__ import annotations

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
    "data",
    "delete_alias",
    "errors",
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
    "register_model",
    "registry",
    "search_runs",
    "set_alias",
    "set_tag",
    "set_tags",
    "start_run",
    "tracking",
    "train",
    "training",
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
