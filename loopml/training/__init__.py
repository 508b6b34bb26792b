"""Training: model families, splits, evaluation (metrics, plots, sliced metrics, paired
comparisons) and ``train``, which fits preprocessing + model on a dataset version and
tracks everything in a run."""

from loopml.training._compare import BootstrapResult, McNemarResult, mcnemar, paired_bootstrap
from loopml.training._families import FAMILIES, build_estimator
from loopml.training._metrics import Task, evaluate, infer_task, sliced
from loopml.training._plots import plot_data, render_png
from loopml.training._splits import Split, make_splits
from loopml.training._train import TrainResult, train

__all__ = [
    "FAMILIES",
    "BootstrapResult",
    "McNemarResult",
    "Split",
    "Task",
    "TrainResult",
    "build_estimator",
    "evaluate",
    "infer_task",
    "make_splits",
    "mcnemar",
    "paired_bootstrap",
    "plot_data",
    "render_png",
    "sliced",
    "train",
]
