"""Training: model families, splits, evaluation (metrics, plots, sliced metrics, paired
comparisons), ``train``, which fits preprocessing + model on a dataset version and tracks
everything in a run, ``tune``, hyperparameter search with a child run per trial, and
``automl``, a time-budgeted search across model families."""

from loopml.training._automl import AutoMLResult, automl, default_space
from loopml.training._compare import (
    BootstrapResult,
    McNemarResult,
    better,
    mcnemar,
    paired_bootstrap,
)
from loopml.training._families import FAMILIES, build_estimator
from loopml.training._metrics import Task, evaluate, infer_task, sliced
from loopml.training._plots import plot_data, render_png
from loopml.training._space import load_space
from loopml.training._splits import Split, make_splits
from loopml.training._train import TrainResult, train
from loopml.training._tune import TuneResult, tune

__all__ = [
    "FAMILIES",
    "AutoMLResult",
    "BootstrapResult",
    "McNemarResult",
    "Split",
    "Task",
    "TorchClassifier",
    "TorchRegressor",
    "TrainResult",
    "TuneResult",
    "automl",
    "better",
    "build_estimator",
    "default_space",
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


def __getattr__(name: str) -> object:
    # the torch estimators import torch (slow): only when first asked for
    if name in ("TorchClassifier", "TorchRegressor"):
        from loopml.training import _torch

        return getattr(_torch, name)
    raise AttributeError(f"module 'loopml.training' has no attribute {name!r}")
