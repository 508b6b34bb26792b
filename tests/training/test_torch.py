"""Torch estimators: an MLP through ``train``, a CNN on digits, an LSTM on sequences, a GAN
with a custom train_step, early stopping, tracked curves and checkpoints, bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import loopml
from loopml.errors import InvalidInput
from loopml.registry import load_model
from loopml.store import Workspace
from loopml.tracking import get_metric_history, list_artifacts, start_run
from loopml.training import TorchClassifier, TorchRegressor, train


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))


@pytest.fixture(scope="module")
def tabular() -> pd.DataFrame:
    """Two numeric features; the class is which side of a circle a point lies."""
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(400, 2))
    return pd.DataFrame(
        {"x": xy[:, 0], "y": xy[:, 1], "label": np.where((xy**2).sum(axis=1) < 1.2, "in", "out")}
    )


def test_mlp_trains_through_train_and_registers(
    sqlite_ws: Workspace, tabular: pd.DataFrame
) -> None:
    model = TorchClassifier(lambda: mlp(2, 2), epochs=40, lr=1e-2, batch_size=32)
    result = train(tabular, target="label", model=model, seed=3, workspace=sqlite_ws)
    assert result.metrics["accuracy"] > 0.9
    fitted = result.model[-1]
    assert isinstance(fitted, TorchClassifier)
    assert fitted.random_state == 3  # train seeds the estimator
    assert list(fitted.classes_) == ["in", "out"]
    history = get_metric_history(sqlite_ws, result.run_id, "train_loss")
    assert set(history["step"]) == set(range(1, 41))
    assert "checkpoints/best.pt" in set(list_artifacts(sqlite_ws, result.run_id)["path"])

    mv = result.register("circle")
    assert mv.flavor == "pipeline"
    loaded = load_model(sqlite_ws, mv.uri)
    X = tabular[["x", "y"]]
    np.testing.assert_array_equal(loaded.predict(X), result.model.predict(X))
    np.testing.assert_allclose(
        loaded.predict_proba(X), result.model.predict_proba(X), rtol=1e-5, atol=1e-6
    )


def test_cnn_learns_the_digits_images() -> None:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 10),
        )

    clf = TorchClassifier(cnn, epochs=10, lr=3e-3, input_shape=(1, 8, 8), random_state=0)
    clf.fit(X[:1400], y[:1400])
    assert clf.input_shape_ == (1, 8, 8)
    assert (clf.predict(X[1400:]) == y[1400:]).mean() > 0.85
    proba = clf.predict_proba(X[1400:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


class LastStep(nn.Module):
    """An LSTM read out at its last time step."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 16, batch_first=True)
        self.head = nn.Linear(16, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        head: torch.Tensor = self.head(out[:, -1])
        return head


def sequences(n: int, steps: int = 10) -> np.ndarray[Any, Any]:
    return np.random.default_rng(1).normal(size=(n, steps))


def test_lstm_classifies_the_sign_of_a_sequence_sum() -> None:
    X = sequences(800)
    y = (X.sum(axis=1) > 0).astype(int)
    clf = TorchClassifier(LastStep(1), epochs=15, lr=1e-2, input_shape=(10, 1), random_state=0)
    clf.fit(X[:600], y[:600])  # one logit for two classes: binary cross-entropy
    assert (clf.predict(X[600:]) == y[600:]).mean() > 0.85


def test_lstm_regresses_the_mean_of_a_sequence() -> None:
    X = sequences(600)
    y = X.mean(axis=1)
    reg = TorchRegressor(LastStep(1), epochs=15, lr=1e-2, input_shape=(10, 1), random_state=0)
    reg.fit(X[:500], y[:500])
    pred = reg.predict(X[500:])
    assert pred.shape == (100,)
    assert np.mean((pred - y[500:]) ** 2) < 0.2 * np.var(y[500:])


class GAN(nn.Module):
    """A generator of 2-D points and a discriminator; ``forward`` generates."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.generator(z)
        return out


def gan_optimizers(gan: GAN, lr: float) -> dict[str, torch.optim.Optimizer]:
    return {
        "g": torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(0.5, 0.999)),
        "d": torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(0.5, 0.999)),
    }


def gan_step(
    gan: GAN, batch: tuple[torch.Tensor, ...], opt: Mapping[str, torch.optim.Optimizer]
) -> dict[str, float]:
    (real,) = batch
    fake = gan.generator(torch.randn_like(real))
    ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
    opt["d"].zero_grad()
    loss_d = F.binary_cross_entropy_with_logits(
        gan.discriminator(real), ones
    ) + F.binary_cross_entropy_with_logits(gan.discriminator(fake.detach()), zeros)
    loss_d.backward()
    opt["d"].step()
    opt["g"].zero_grad()
    loss_g = F.binary_cross_entropy_with_logits(gan.discriminator(fake), ones)
    loss_g.backward()
    opt["g"].step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


def test_gan_with_a_custom_train_step_is_tracked_and_learns(sqlite_ws: Workspace) -> None:
    target = np.array([3.0, -2.0])
    real = np.random.default_rng(0).normal(target, 0.5, size=(1024, 2))
    noise = np.random.default_rng(1).normal(size=(500, 2))
    gan = TorchRegressor(
        GAN, train_step=gan_step, optimizer=gan_optimizers, lr=5e-3, epochs=1, random_state=0
    )
    start = np.linalg.norm(gan.fit(real).predict(noise).mean(axis=0) - target)
    with start_run("gan", workspace=sqlite_ws) as run:
        gan.set_params(epochs=20).fit(real)
    end = np.linalg.norm(gan.predict(noise).mean(axis=0) - target)
    assert start > 2.0
    assert end < 0.3 * start
    assert set(gan.history_) == {"loss_d", "loss_g"}
    for key in ("loss_d", "loss_g"):
        history = get_metric_history(sqlite_ws, run.id, key)
        assert list(history["step"]) == list(range(1, 21))
        np.testing.assert_allclose(history["value"], gan.history_[key])


def test_early_stopping_stops_and_keeps_the_best_weights() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(300, 5)), rng.normal(size=300)  # nothing to learn: overfits
    reg = TorchRegressor(
        lambda: mlp(5, 1), epochs=300, lr=2e-2, early_stopping=3, random_state=0, batch_size=16
    ).fit(X, y)
    val = reg.history_["val_loss"]
    assert reg.n_epochs_ < 300
    assert len(val) == reg.n_epochs_
    assert reg.best_epoch_ == reg.n_epochs_ - 3
    assert min(val) == val[reg.best_epoch_ - 1]
    assert min(val[reg.best_epoch_ :]) >= val[reg.best_epoch_ - 1]


def test_curves_and_checkpoints_are_run_artifacts(sqlite_ws: Workspace) -> None:
    X, y = sequences(200), np.arange(200) % 3
    clf = TorchClassifier(
        lambda: mlp(10, 3), epochs=4, early_stopping=10, checkpoint_every=2, random_state=0
    )
    with start_run("ckpt", workspace=sqlite_ws) as run:
        clf.fit(X, y)
    for key in ("train_loss", "val_loss"):
        history = get_metric_history(sqlite_ws, run.id, key)
        assert list(history["step"]) == [1, 2, 3, 4]
        np.testing.assert_allclose(history["value"], clf.history_[key])
    paths = set(list_artifacts(sqlite_ws, run.id)["path"])
    assert {"checkpoints/epoch_2.pt", "checkpoints/epoch_4.pt", "checkpoints/best.pt"} <= paths
    assert "checkpoints/epoch_1.pt" not in paths
    best = loopml.tracking.download_artifacts(
        sqlite_ws, run.id, "checkpoints/best.pt", sqlite_ws.settings.state_dir / "dl"
    )
    state = torch.load(io.BytesIO(best.read_bytes()), weights_only=True)
    fresh = mlp(10, 3)
    fresh.load_state_dict(state)
    with torch.no_grad():
        logits = fresh(torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_array_equal(clf.classes_[logits.argmax(axis=1)], clf.predict(X))


def test_without_an_active_run_it_simply_fits() -> None:
    clf = TorchClassifier(lambda: mlp(10, 2), epochs=2, random_state=0)
    clf.fit(sequences(50), np.arange(50) % 2)
    assert len(clf.history_["train_loss"]) == 2


def test_fits_are_reproducible_and_leave_global_rng_alone() -> None:
    X, y = sequences(200), np.arange(200) % 2
    state = torch.random.get_rng_state()

    def fit() -> np.ndarray[Any, Any]:
        est = TorchClassifier(lambda: mlp(10, 2), epochs=3, random_state=7)
        return est.fit(X, y).predict_proba(X)

    first = fit()
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(first, fit())
    other = TorchClassifier(lambda: mlp(10, 2), epochs=3, random_state=8).fit(X, y)
    assert not np.array_equal(first, other.predict_proba(X))


def test_a_module_instance_is_copied_not_trained_in_place() -> None:
    net = mlp(10, 2)
    before = [p.detach().clone() for p in net.parameters()]
    TorchClassifier(net, epochs=2, random_state=0).fit(sequences(40), np.arange(40) % 2)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_predict_checks_columns_by_name() -> None:
    frame = pd.DataFrame(sequences(40), columns=[f"t{i}" for i in range(10)])
    clf = TorchClassifier(lambda: mlp(10, 2), epochs=1).fit(frame, np.arange(40) % 2)
    assert list(clf.feature_names_in_) == list(frame.columns)
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_array_equal(clf.predict_proba(shuffled), clf.predict_proba(frame))
    with pytest.raises(InvalidInput, match="'t3'"):
        clf.predict(frame.drop(columns="t3"))
    with pytest.raises(InvalidInput, match="has 9 feature"):
        clf.predict(frame.to_numpy()[:, :9])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"lr": 0}, "lr must be a number"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"device": "tpu"}, "device must be"),
        ({"validation_fraction": 1.5}, "validation_fraction must be in"),
        ({"early_stopping": 0}, "early_stopping"),
        ({"random_state": "x"}, "random_state"),
        ({"input_shape": (3, 3)}, r"input_shape \(3, 3\) holds 9 values"),
        ({"input_shape": (0, 10)}, "tuple of positive ints"),
        ({"input_shape": (2, 5)}, "module failed on input of shape"),
        ({"module": "net"}, "module must be an nn.Module"),
        ({"module": lambda: 3}, "must return an nn.Module"),
        ({"module": lambda: mlp(10, 4)}, "outputs 4 value"),
        ({"train_step": gan_step, "early_stopping": 2}, "cannot be combined"),
        ({"checkpoint_every": -1}, "checkpoint_every"),
    ],
)
def test_bad_hyperparameters_are_refused_before_training(
    params: dict[str, Any], match: str
) -> None:
    base: dict[str, Any] = {"module": lambda: mlp(10, 2), "epochs": 1}
    with pytest.raises(InvalidInput, match=match):
        TorchClassifier(**{**base, **params}).fit(sequences(20), np.arange(20) % 2)


def test_bad_data_is_refused() -> None:
    X, y = sequences(20), np.arange(20) % 2
    clf = TorchClassifier(lambda: mlp(10, 2), epochs=1)
    holey = pd.DataFrame(X, columns=[f"t{i}" for i in range(10)])
    holey.loc[4, "t2"] = np.nan
    with pytest.raises(InvalidInput, match=r"column 't2' has 1 NaN.*row 4"):
        clf.fit(holey, y)
    with pytest.raises(InvalidInput, match=r"column 'kind' is .*numeric columns"):
        clf.fit(holey.fillna(0).assign(kind="a"), y)
    with pytest.raises(InvalidInput, match="one class only"):
        clf.fit(X, np.zeros(20))
    with pytest.raises(InvalidInput, match="one label per row"):
        clf.fit(X, y[:5])
    with pytest.raises(InvalidInput, match="not fitted"):
        clf.predict(X)
    reg = TorchRegressor(lambda: mlp(10, 1), epochs=1)
    with pytest.raises(InvalidInput, match="y is required"):
        reg.fit(X)
    with pytest.raises(InvalidInput, match="NaN"):
        reg.fit(X, np.where(y == 0, np.nan, 1.0))
    with pytest.raises(InvalidInput, match="diverged"):
        TorchRegressor(lambda: mlp(10, 1), epochs=3, lr=5.0, optimizer="sgd").fit(X * 1e6, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    clf = TorchClassifier(lambda: mlp(10, 2), device="cuda")
    with pytest.raises(InvalidInput, match="CUDA is not available"):
        clf.fit(sequences(20), np.arange(20) % 2)
    assert (
        TorchClassifier(lambda: mlp(10, 2), epochs=1, device="auto")
        .fit(sequences(20), np.arange(20) % 2)
        .module_
    )


def test_importing_loopml_training_does_not_import_torch() -> None:
    code = (
        "import sys, loopml, loopml.training\n"
        "assert 'torch' not in sys.modules\n"
        "assert {'TorchClassifier', 'TorchRegressor'} <= set(loopml.training.__all__)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert loopml.training.TorchRegressor is TorchRegressor  # the lazy export
