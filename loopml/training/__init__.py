"""Training: model families, splits, evaluation (metrics, plots, sliced metrics, paired
comparisons), ``train``, which fits preprocessing + model on a dataset version and tracks
everything in a run, and ``tune``, hyperparameter search with a child run per trial."""

from loopml.training._compare import BootstrapResult, McNemarResult, mcnemar, paired_bootstrap
from loopml.training._families import FAMILIES, build_estimator
from loopml.training._metrics import Task, evaluate, infer_task, sliced
from loopml.training._plots import plot_data, render_png
from loopml.training._space import load_space
from loopml.training._splits import Split, make_splits
from loopml.training._train import TrainResult, train
from loopml.training._tune import TuneResult, tune

__all__ = [
    "FAMILIES",
    "BootstrapResult",
    "McNemarResult",
    "Split",
    "Task",
    "TrainResult",
    "TuneResult",
    "build_estimator",
    "evaluate",
    "infer_task",
    "load_space",
    "make_splits",
    "mcnemar",
    "paired_bootstrap",
    "plot_data",
    "render_png",
    "sliced",
    "train",
    "tune",
]
