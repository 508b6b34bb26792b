"""PyTorch models as scikit-learn estimators: :class:`TorchClassifier`, :class:`TorchRegressor`.

Each wraps a user's ``nn.Module`` with a small fit loop (epochs, mini-batches, optimizer,
early stopping on a validation split, device choice) and takes the same DataFrame or 2-D
array every other loopml model takes: ``input_shape`` reshapes each flat row into what the
module expects, e.g. ``(1, 8, 8)`` for an image or ``(T, F)`` for a sequence. So a torch
model goes through ``loopml.train``, the registry (flavor ``torch``: a ``torch.export``
program, no pickle) and serving like any other.

Fits are reproducible with ``random_state`` and leave torch's global random state as they
found it. With an active loopml run, per-epoch metrics and checkpoints are logged to it
(see :mod:`loopml.training._torch_loop`).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry._torch import as_rows, check_input_shape, forward, to_proba, to_values
from loopml.tracking import active_run
from loopml.training._torch_loop import (
    OPTIMIZERS,
    LossFn,
    TrainStep,
    default_step,
    fit_loop,
    make_optimizers,
    resolve_device,
)

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - torch is part of the dev environment
    raise MissingDependency("torch", "torch") from exc

Array = np.ndarray[Any, np.dtype[Any]]


def _positive_int(value: object, name: str, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 1:
        allowed = "a positive int or None" if optional else "a positive int"
        raise InvalidInput(f"{name} must be {allowed}, got {value!r}")


class _TorchEstimator(BaseEstimator):  # type: ignore[misc]
    """Shared constructor, validation, fit and forward of the torch estimators."""

    _loopml_torch = True  # the registry's torch flavor recognises the model by this mark

    def __init__(
        self,
        module: nn.Module | Callable[[], nn.Module],
        *,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str | Callable[..., Any] = "adam",
        loss: LossFn | None = None,
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        device: str = "cpu",
        random_state: int | None = None,
        train_step: TrainStep | None = None,
        input_shape: Sequence[int] | None = None,
        checkpoint_every: int | None = None,
    ) -> None:
        self.module = module
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.loss = loss
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.train_step = train_step
        self.input_shape = input_shape
        self.checkpoint_every = checkpoint_every

    # -- validation ---------------------------------------------------------------------
    def _check_params(self) -> torch.device:
        name = type(self).__name__
        if not isinstance(self.module, nn.Module) and not callable(self.module):
            raise InvalidInput(
                f"{name}: module must be an nn.Module or a callable returning one, "
                f"got {type(self.module).__name__}"
            )
        _positive_int(self.epochs, f"{name}: epochs")
        _positive_int(self.batch_size, f"{name}: batch_size")
        _positive_int(self.early_stopping, f"{name}: early_stopping (patience)", optional=True)
        _positive_int(self.checkpoint_every, f"{name}: checkpoint_every", optional=True)
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < float(lr) < 10:
            raise InvalidInput(f"{name}: lr must be a number in (0, 10), got {lr!r}")
        if self.optimizer not in OPTIMIZERS and not callable(self.optimizer):
            raise InvalidInput(
                f"{name}: optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or a "
                f"callable, got {self.optimizer!r}"
            )
        for attr in ("loss", "train_step"):
            if getattr(self, attr) is not None and not callable(getattr(self, attr)):
                raise InvalidInput(f"{name}: {attr} must be callable or None")
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise InvalidInput(f"{name}: validation_fraction must be a number in (0, 1)")
        if not 0 < float(fraction) < 1:
            raise InvalidInput(f"{name}: validation_fraction must be in (0, 1), got {fraction!r}")
        if self.early_stopping is not None and self.train_step is not None:
            raise InvalidInput(
                f"{name}: early_stopping needs the built-in loop's val_loss; it cannot be "
                "combined with a custom train_step"
            )
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, numbers.Integral)):
            raise InvalidInput(f"{name}: random_state must be an int or None, got {rs!r}")
        return resolve_device(self.device)

    def _check_X(self, X: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
        who = f"{type(self).__name__}.fit"
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        rows = as_rows(X, None, None, who)
        if len(rows) < 2:
            raise InvalidInput(f"{who}: X has {len(rows)} row(s); at least 2 are needed")
        self.n_features_in_ = rows.shape[1]
        self.input_shape_ = check_input_shape(self.input_shape, rows.shape[1], who)
        return rows

    # -- fitting ------------------------------------------------------------------------
    def _build_module(self) -> nn.Module:
        if isinstance(self.module, nn.Module):
            return copy.deepcopy(self.module)
        built = self.module()
        if not isinstance(built, nn.Module):
            raise InvalidInput(
                f"{type(self).__name__}: module() must return an nn.Module, "
                f"got {type(built).__name__}"
            )
        return built

    def _probe(self, module: nn.Module, rows: Array) -> torch.Tensor:
        """The module's output on two rows: a wrong input_shape fails here, not mid-fit."""
        x = torch.from_numpy(rows[:2]).reshape(-1, *self.input_shape_)
        module.eval()
        try:
            with torch.no_grad():
                out = module(x)
        except Exception as exc:  # any failure of user code: report it as bad input
            raise InvalidInput(
                f"{type(self).__name__}: the module failed on input of shape "
                f"{tuple(x.shape)} (input_shape={self.input_shape_}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != len(x):
            raise InvalidInput(
                f"{type(self).__name__}: the module must return a tensor with one row per "
                f"input row, got {getattr(out, 'shape', type(out).__name__)}"
            )
        return out

    def _loss(self, out: torch.Tensor) -> LossFn:
        raise NotImplementedError

    def _fit(self, rows: Array, target: Array | None) -> None:
        device = self._check_params()
        seed = (
            int(self.random_state)
            if self.random_state is not None
            else int(np.random.SeedSequence().generate_state(1)[0])
        )
        run = active_run()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_module()
            loss_fn: LossFn | None = self.loss
            if self.train_step is None or target is not None:
                out = self._probe(module, rows)
                loss_fn = self.loss or self._loss(out)
            module.to(device)
            x = torch.from_numpy(rows).reshape(-1, *self.input_shape_).to(device)
            data: tuple[torch.Tensor, ...] = (x,)
            if target is not None:
                data = (x, torch.from_numpy(target).to(device))
            train, val = data, None
            if self.early_stopping is not None:
                train, val = self._split(data, seed)
            generator = torch.Generator().manual_seed(seed)
            step = self.train_step or default_step(self._require_loss(loss_fn))
            result = fit_loop(
                module,
                train,
                val,
                step=step,
                loss_fn=loss_fn,
                optimizers=make_optimizers(self.optimizer, module, float(self.lr)),
                epochs=int(self.epochs),
                batch_size=int(self.batch_size),
                patience=self.early_stopping,
                checkpoint_every=self.checkpoint_every,
                generator=generator,
                run=run,
            )
        self.module_ = module.to("cpu").eval()
        self.history_ = result.history
        self.n_epochs_ = result.n_epochs
        self.best_epoch_ = result.best_epoch

    def _require_loss(self, loss_fn: LossFn | None) -> LossFn:
        if loss_fn is None:
            raise InvalidInput(f"{type(self).__name__}: fitting without y needs a train_step")
        return loss_fn

    def _split(
        self, data: tuple[torch.Tensor, ...], seed: int
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        n = len(data[0])
        n_val = round(n * float(self.validation_fraction))
        if n_val < 1 or n - n_val < 1:
            raise InvalidInput(
                f"{type(self).__name__}: validation_fraction={self.validation_fraction} of "
                f"{n} rows leaves no validation or no training rows for early stopping"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
        order = order.to(data[0].device)
        val, train = order[:n_val], order[n_val:]
        return tuple(t[train] for t in data), tuple(t[val] for t in data)

    # -- predicting ---------------------------------------------------------------------
    def _outputs(self, X: Any) -> Array:
        try:
            check_is_fitted(self, "module_")
        except NotFittedError:
            raise InvalidInput(f"{type(self).__name__} is not fitted; call fit first") from None
        who = f"{type(self).__name__}.predict"
        names = getattr(self, "feature_names_in_", None)
        rows = as_rows(X, self.n_features_in_, None if names is None else list(names), who)
        self.module_.eval()
        return forward(self.module_, rows, self.input_shape_)


class TorchClassifier(ClassifierMixin, _TorchEstimator):  # type: ignore[misc]
    """Classify with a torch ``nn.Module`` that outputs one logit per class.

    The module maps a batch ``(n, *input_shape)`` to logits ``(n, n_classes)`` (or
    ``(n, 1)`` for two classes: a sigmoid logit). The default loss is cross-entropy
    (binary cross-entropy for one logit); a custom ``loss(logits, class_index)`` may be given.

    Parameters
    ----------
    module : an ``nn.Module`` (copied at fit, trained from its current weights) or a callable
        returning one (called after seeding, so ``random_state`` fixes its initial weights).
    epochs, batch_size, lr : the loop's epochs, mini-batch size and learning rate.
    optimizer : ``"adam"``, ``"adamw"``, ``"sgd"``, a ``torch.optim.Optimizer`` class, or a
        callable ``optimizer(module, lr)`` returning an optimizer or a dict of them.
    loss : ``loss(output, target) -> scalar tensor``; default as above.
    early_stopping : patience in epochs: hold out ``validation_fraction`` of the rows, stop
        when ``val_loss`` has not improved for that many epochs, keep the best weights.
    validation_fraction : share of rows held out when ``early_stopping`` is set.
    device : ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; the fitted module is on CPU.
    random_state : seed of weights (for a callable ``module``), shuffling and the split.
    train_step : ``train_step(module, batch, optimizers) -> {name: float}`` replacing the
        built-in step; ``batch`` is ``(x, y)`` (or ``(x,)`` when fit without y),
        ``optimizers`` the dict from ``optimizer``. Returned values are tracked per epoch.
    input_shape : shape of one example, e.g. ``(1, 8, 8)``; default ``(n_features,)``.
    checkpoint_every : with an active run, log the weights every that many epochs.

    Attributes
    ----------
    module_ : the trained module (CPU, eval mode).
    classes_ : class labels, in logit order.
    history_ : per-epoch metrics (``train_loss``, ``val_loss`` or the train_step's keys).
    n_features_in_, feature_names_in_, input_shape_, n_epochs_, best_epoch_.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> clf = TorchClassifier(net, epochs=30, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X[:2]).shape  # doctest: +SKIP
    (2, 3)
    """

    def fit(self, X: Any, y: Any) -> TorchClassifier:
        """Train on ``X`` (DataFrame or 2-D array of numbers) and class labels ``y``.

        Raises
        ------
        InvalidInput
            A bad hyperparameter, NaN in X or y, fewer than two classes, an ``input_shape``
            or module output that does not fit the data, or a diverging loss.
        """
        rows = self._check_X(X)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(rows):
            raise InvalidInput(
                f"TorchClassifier.fit: y must be 1-D with one label per row of X "
                f"({len(rows)}), got shape {labels.shape}"
            )
        if pd.isna(labels).any():
            raise InvalidInput("TorchClassifier.fit: y has missing labels; drop those rows")
        self.classes_, codes = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidInput(f"TorchClassifier.fit: y has one class only ({self.classes_[0]!r})")
        self._fit(rows, codes.astype(np.int64))
        return self

    def _loss(self, out: torch.Tensor) -> LossFn:
        width, n_classes = out.reshape(len(out), -1).shape[1], len(self.classes_)
        if width == 1 and n_classes == 2:
            bce = nn.BCEWithLogitsLoss()
            return lambda logits, y: bce(logits.reshape(-1), y.to(logits.dtype))
        if width != n_classes:
            raise InvalidInput(
                f"TorchClassifier: the module outputs {width} value(s) per row but y has "
                f"{n_classes} classes; make its last layer output {n_classes}"
            )
        ce = nn.CrossEntropyLoss()
        return lambda logits, y: ce(logits.reshape(len(logits), -1), y)

    def predict_proba(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probability of each class (columns in ``classes_`` order) for each row of ``X``."""
        outputs = self._outputs(X)  # first: it checks that the model is fitted
        return to_proba(outputs, len(self.classes_))

    def predict(self, X: Any) -> Array:
        """The most probable class of each row of ``X``."""
        best = np.argmax(self.predict_proba(X), axis=1)
        labels: Array = self.classes_[best]
        return labels


class TorchRegressor(RegressorMixin, _TorchEstimator):  # type: ignore[misc]
    """Regress with a torch ``nn.Module``; the default loss is mean squared error.

    The module maps ``(n, *input_shape)`` to ``(n, 1)`` / ``(n,)`` for one target or
    ``(n, k)`` for ``k``. ``y`` may be omitted when a ``train_step`` trains the module on X
    alone (e.g. a GAN, whose ``forward`` is then the generator). Parameters and attributes
    as :class:`TorchClassifier`, without ``classes_``.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))
    >>> reg = TorchRegressor(net, epochs=50, early_stopping=5).fit(X, y)  # doctest: +SKIP
    """

    def fit(self, X: Any, y: Any = None) -> TorchRegressor:
        """Train on ``X`` and targets ``y`` (1-D, or 2-D for several targets).

        Raises
        ------
        InvalidInput
            A bad hyperparameter, NaN in X or y, no y without a ``train_step``, an
            ``input_shape`` or module output that does not fit, or a diverging loss.
        """
        rows = self._check_X(X)
        if y is None:
            if self.train_step is None:
                raise InvalidInput("TorchRegressor.fit: y is required unless train_step is set")
            self._fit(rows, None)
            return self
        values = np.asarray(y, dtype=object)
        if values.ndim not in (1, 2) or len(values) != len(rows):
            raise InvalidInput(
                f"TorchRegressor.fit: y must be 1-D or 2-D with one row per row of X "
                f"({len(rows)}), got shape {values.shape}"
            )
        target = as_rows(values.reshape(len(values), -1), None, None, "TorchRegressor.fit (y)")
        self.n_outputs_ = target.shape[1]
        self._fit(rows, target[:, 0] if values.ndim == 1 else target)
        return self

    def _loss(self, out: torch.Tensor) -> LossFn:
        width = out.reshape(len(out), -1).shape[1]
        if width != self.n_outputs_:
            raise InvalidInput(
                f"TorchRegressor: the module outputs {width} value(s) per row but y has "
                f"{self.n_outputs_} target(s); make its last layer output {self.n_outputs_}"
            )
        mse = nn.MSELoss()
        return lambda pred, y: mse(pred.reshape(y.shape), y)

    def predict(self, X: Any) -> Array:
        """The module's output for each row of ``X`` (1-D for a single target)."""
        return to_values(self._outputs(X))
