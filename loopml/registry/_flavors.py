"""Model flavors: how one family of models is written to a folder and read back.

A flavor is a small :class:`Flavor` protocol. ``sklearn`` is built in; other libraries
(xgboost, lightgbm, torch...) plug in with :func:`register_flavor`. When a model is
registered without naming a flavor, the most recently registered flavor that can save it
wins, so a specific flavor registered later beats the generic scikit-learn one.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import joblib

from loopml.errors import InvalidInput, NotFound


class Flavor(Protocol):
    """Saves and loads one family of models.

    Attributes
    ----------
    name : the flavor's name, recorded in the model package (e.g. ``"sklearn"``).
    """

    name: str

    def can_save(self, model: object) -> bool:
        """Whether this flavor knows how to save ``model``."""
        ...

    def save(self, model: object, path: Path) -> None:
        """Write ``model`` as files into the existing, empty folder ``path``."""
        ...

    def load(self, path: Path) -> object:
        """Read the native model back from folder ``path``."""
        ...


class SklearnFlavor:
    """Any scikit-learn-compatible estimator or Pipeline that predicts (or, like a PCA,
    transforms), saved with joblib."""

    name = "sklearn"
    filename = "model.joblib"

    def can_save(self, model: object) -> bool:
        """True for objects with the estimator API: ``fit`` and ``predict`` (or ``transform``)."""
        answers = callable(getattr(model, "predict", None)) or callable(
            getattr(model, "transform", None)
        )
        return callable(getattr(model, "fit", None)) and answers

    def save(self, model: object, path: Path) -> None:
        """Write ``model.joblib`` into ``path``."""
        joblib.dump(model, path / self.filename)

    def load(self, path: Path) -> object:
        """Read ``model.joblib`` from ``path``."""
        model: object = joblib.load(path / self.filename)
        return model


# The plugin table: flavor name -> flavor, in registration order (later ones win ties).
_flavors: dict[str, Flavor] = {"sklearn": SklearnFlavor()}


def register_flavor(flavor: Flavor) -> None:
    """Make ``flavor`` available by its name, replacing any flavor of the same name.

    Parameters
    ----------
    flavor : the flavor; it is tried before every flavor registered earlier.

    Raises
    ------
    InvalidInput
        ``flavor.name`` is not a non-empty string.
    """
    if not isinstance(getattr(flavor, "name", None), str) or not flavor.name:
        raise InvalidInput(f"a flavor needs a non-empty string name; got {flavor!r}")
    _flavors.pop(flavor.name, None)
    _flavors[flavor.name] = flavor


# registered by loopml.registry._native
NATIVE = ("xgboost", "lightgbm", "pipeline", "torch", "keras")


def _load_native() -> None:
    """Register the native flavors on first need: their module imports scikit-learn, which
    ``import loopml`` (and so every CLI command) should not pay for."""
    importlib.import_module("loopml.registry._native").register_native_flavors()


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name``.

    Raises
    ------
    NotFound
        No flavor has that name; the message lists the known ones.
    """
    if name in NATIVE and name not in _flavors:
        _load_native()
    try:
        return _flavors[name]
    except KeyError:
        raise NotFound(
            f"no model flavor {name!r}; known flavors: {', '.join(sorted(_flavors))}"
        ) from None


def flavor_for(model: object) -> Flavor:
    """The flavor that saves ``model``: the latest registered one whose ``can_save`` agrees.

    Raises
    ------
    InvalidInput
        No flavor can save a model of this type.
    """
    if NATIVE[0] not in _flavors:
        _load_native()
    for flavor in reversed(_flavors.values()):
        if flavor.can_save(model):
            return flavor
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise InvalidInput(
        f"no model flavor can save a {kind}; known flavors: {', '.join(sorted(_flavors))} "
        "(a scikit-learn model must have fit and predict or transform)"
    )
