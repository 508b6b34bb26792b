"""loopml: the whole machine-learning lifecycle in one tool.

>>> import loopml
>>> with loopml.start_run(experiment="churn") as run:       # doctest: +SKIP
...     run.log_params({"alpha": 0.1})
...     run.log_metric("loss", 0.25)
...     mv = loopml.register_model(estimator, "churn", input_example=X.head())
>>> loopml.set_alias("churn", "production", mv.version)     # doctest: +SKIP
>>> loopml.load_model("models:/churn@production").predict(X)  # doctest: +SKIP
"""

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


def __getattr__(name: str) -> object:
    # training loads scikit-learn and its model libraries: only when first used
    if name in ("train", "training"):
        import loopml.training

        return loopml.training if name == "training" else loopml.training.train
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")


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
]
