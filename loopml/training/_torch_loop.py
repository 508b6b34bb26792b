"""The fit loop behind the torch estimators: batches, optimizers, early stopping, and the
per-epoch metrics and checkpoints logged to the active run.

One epoch runs a *step* on every mini-batch. The built-in step is the usual
zero-grad / loss / backward / optimizer-step; a custom ``train_step(module, batch,
optimizers) -> {name: float}`` replaces it for models with their own loop (a GAN's
alternating generator and discriminator updates). Whatever a step returns is averaged
over the epoch (weighted by batch size), kept in the estimator's ``history_`` and logged
with ``step=epoch`` when a loopml run is active.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from loopml.errors import InvalidInput
from loopml.tracking import Run

Batch = tuple[torch.Tensor, ...]
TrainStep = Callable[[nn.Module, Batch, Mapping[str, torch.optim.Optimizer]], Mapping[str, float]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


@dataclass
class LoopResult:
    """What :func:`fit_loop` did: per-epoch metrics, the epoch kept, epochs run."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    n_epochs: int = 0


def resolve_device(device: object) -> torch.device:
    """``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` as a torch device.

    Raises
    ------
    InvalidInput
        An unknown name, or CUDA asked for on a machine (or torch build) without it.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if isinstance(device, str) and device.partition(":")[0] == "cuda":
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise InvalidInput(f"device {device!r} is not a CUDA device name such as 'cuda:0'")
        if not torch.cuda.is_available():
            raise InvalidInput(
                f"device={device!r} but CUDA is not available (torch {torch.__version__}, "
                "torch.cuda.is_available() is False); use device='cpu' or 'auto'"
            )
        return torch.device(device)
    raise InvalidInput(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")


def make_optimizers(
    optimizer: object, module: nn.Module, lr: float
) -> dict[str, torch.optim.Optimizer]:
    """The optimizers of ``module`` by name.

    ``optimizer`` is ``"adam"``, ``"adamw"`` or ``"sgd"`` (one optimizer, named ``"main"``),
    a ``torch.optim.Optimizer`` subclass (built on all parameters with ``lr``), or a callable
    ``optimizer(module, lr)`` returning one optimizer or a dict of named optimizers (e.g.
    ``{"g": ..., "d": ...}`` for a GAN).

    Raises
    ------
    InvalidInput
        The callable returned something other than optimizers.
    """
    if isinstance(optimizer, str):
        return {"main": OPTIMIZERS[optimizer](module.parameters(), lr=lr)}
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        build: Callable[..., torch.optim.Optimizer] = optimizer
        return {"main": build(module.parameters(), lr=lr)}
    made = optimizer(module, lr) if callable(optimizer) else None
    made = {"main": made} if isinstance(made, torch.optim.Optimizer) else made
    if (
        not isinstance(made, Mapping)
        or not made
        or not all(isinstance(o, torch.optim.Optimizer) for o in made.values())
    ):
        raise InvalidInput(
            "optimizer(module, lr) must return a torch.optim.Optimizer or a non-empty dict of "
            f"them, got {type(made).__name__}"
        )
    return {str(k): v for k, v in made.items()}


def default_step(loss_fn: LossFn) -> TrainStep:
    """The built-in step: one gradient update of ``loss_fn(module(x), y)``."""

    def step(
        module: nn.Module, batch: Batch, optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> dict[str, float]:
        x, y = batch
        for opt in optimizers.values():
            opt.zero_grad()
        loss = loss_fn(module(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        for opt in optimizers.values():
            opt.step()
        return {"train_loss": float(loss.detach())}

    return step


def state_bytes(module: nn.Module) -> bytes:
    """``module.state_dict()`` written with ``torch.save`` (tensors moved to CPU)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
    return buffer.getvalue()


def _batches(tensors: Batch, batch_size: int, generator: torch.Generator | None) -> list[Batch]:
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [tuple(t[order[i : i + batch_size]] for t in tensors) for i in range(0, n, batch_size)]


def _mean_loss(module: nn.Module, loss_fn: LossFn, data: Batch, batch_size: int) -> float:
    module.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in _batches(data, batch_size, None):
            total += float(loss_fn(module(x), y)) * len(x)
    return total / len(data[0])


def _run_step(
    step: TrainStep, module: nn.Module, batch: Batch, optimizers: Mapping[str, Any]
) -> dict[str, float]:
    out = step(module, batch, optimizers)
    if not isinstance(out, Mapping):
        raise InvalidInput(f"train_step must return a dict of floats, got {type(out).__name__}")
    values: dict[str, float] = {}
    for key, value in out.items():
        try:
            values[str(key)] = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"train_step returned {key!r}={value!r}, which is not a number"
            ) from None
    return values


def fit_loop(
    module: nn.Module,
    train: Batch,
    val: Batch | None,
    *,
    step: TrainStep,
    loss_fn: LossFn | None,
    optimizers: Mapping[str, torch.optim.Optimizer],
    epochs: int,
    batch_size: int,
    patience: int | None,
    checkpoint_every: int | None,
    generator: torch.Generator,
    run: Run | None,
) -> LoopResult:
    """Train ``module`` in place; with ``val``, keep the weights of the lowest ``val_loss``.

    ``train`` and ``val`` are tuples of tensors already on the module's device. With an
    active ``run``, each epoch's metrics are logged at ``step=epoch`` (from 1), every
    ``checkpoint_every`` epochs the weights go to ``checkpoints/epoch_N.pt``, and the weights
    kept at the end to ``checkpoints/best.pt``.

    Raises
    ------
    InvalidInput
        A loss or step result is NaN or infinite (training diverged), or a custom step
        returned something other than a dict of numbers.
    """
    result = LoopResult()
    best_loss, best_state, waited = math.inf, None, 0
    for epoch in range(1, epochs + 1):
        module.train()
        sums: dict[str, float] = {}
        for batch in _batches(train, batch_size, generator):
            for key, value in _run_step(step, module, batch, optimizers).items():
                sums[key] = sums.get(key, 0.0) + value * len(batch[0])
        metrics = {k: v / len(train[0]) for k, v in sums.items()}
        if val is not None and loss_fn is not None:
            metrics["val_loss"] = _mean_loss(module, loss_fn, val, batch_size)
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise InvalidInput(
                f"training diverged at epoch {epoch}: {', '.join(bad)} is not finite; "
                "lower lr or scale the features"
            )
        for key, value in metrics.items():
            result.history.setdefault(key, []).append(value)
        result.n_epochs = epoch
        if run is not None:
            run.log_metrics(metrics, step=epoch)
            if checkpoint_every is not None and epoch % checkpoint_every == 0:
                run.log_bytes(state_bytes(module), f"checkpoints/epoch_{epoch}.pt")
        if "val_loss" in metrics:
            if metrics["val_loss"] < best_loss:
                best_loss, waited, result.best_epoch = metrics["val_loss"], 0, epoch
                best_state = copy.deepcopy(module.state_dict())
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
        else:
            result.best_epoch = epoch
    if best_state is not None:
        module.load_state_dict(best_state)
    if run is not None:
        run.log_bytes(state_bytes(module), "checkpoints/best.pt")
    return result
