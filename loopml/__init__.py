"""loopml: the whole machine-learning lifecycle in one tool.

>>> import loopml
>>> with loopml.start_run(experiment="churn") as run:       # doctest: +SKIP
...     run.log_params({"alpha": 0.1})
...     run.log_metric("loss", 0.25)
...     mv = loopml.register_model(estimator, "churn", input_example=X.head())
>>> loopml.set_alias("churn", "production", mv.version)     # doctest: +SKIP
>>> loopml.load_model("models:/churn@production").predict(X)  # doctest: +SKIP
"""

import importlib

from loopml import data, errors, registry, tracking
from loopml._version import __version__
from loopml.api import (
    delete_alias,
    get_metric_history,
    get_model_version,
    get_run,
    init,
    lineage,
    load_model,
    log_artifact,
    log_dict,
    log_figure,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    register_model,
    search_runs,
    set_alias,
    set_tag,
    set_tags,
)
from loopml.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    LoopmlError,
    MissingDependency,
    NotFound,
    Unauthorized,
)
from loopml.settings import Settings
from loopml.store import Workspace, use_workspace
from loopml.tracking import active_run, start_run

# What loads heavy libraries (scikit-learn, model libraries, uvicorn) is imported on first
# use (PEP 562), so `import loopml` stays quick: name -> (module, attribute or None).
_LAZY: dict[str, tuple[str, str | None]] = {
    "train": ("loopml.training", "train"),
    "tune": ("loopml.training", "tune"),
    "automl": ("loopml.training", "automl"),
    "drift_report": ("loopml.monitoring", "drift_report"),
    "features": ("loopml.features", None),
    "training": ("loopml.training", None),
    "monitoring": ("loopml.monitoring", None),
    "serving": ("loopml.serving", None),
    "loop": ("loopml.loop", None),
    "server": ("loopml.server", None),
    "pipelines": ("loopml.pipelines", None),
    "step": ("loopml.pipelines", "step"),
    "pipeline": ("loopml.pipelines", "pipeline"),
}


def __getattr__(name: str) -> object:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    module = importlib.import_module(found[0])
    return module if found[1] is None else getattr(module, found[1])


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
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
]
