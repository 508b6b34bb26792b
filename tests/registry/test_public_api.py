"""The public face of loopml.registry, its flavor plug-in table and its import layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

import loopml.registry
from loopml.errors import InvalidInput, NotFound
from loopml.registry import SklearnFlavor, _flavors, flavor_for, get_flavor, register_flavor

PUBLIC = {
    "RUNTIMES",
    "ColumnSpec",
    "Flavor",
    "LoadedModel",
    "ModelVersion",
    "RegisteredModel",
    "Signature",
    "SklearnFlavor",
    "delete_alias",
    "flavor_for",
    "get_flavor",
    "get_model_version",
    "list_models",
    "list_versions",
    "load_model",
    "parse_model_uri",
    "register_flavor",
    "register_model",
    "set_alias",
    "set_description",
    "set_model_tag",
}


def test_the_public_surface_does_not_drift() -> None:
    assert set(loopml.registry.__all__) == PUBLIC
    assert all(hasattr(loopml.registry, name) for name in PUBLIC)


def test_registry_imports_only_lower_layers() -> None:
    allowed = ("loopml.store", "loopml.settings", "loopml.errors", "loopml._version")
    folder = Path(loopml.registry.__file__).parent
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("loopml") and not name.startswith("loopml.registry"):
                    assert name.startswith(allowed), f"{source.name} imports {name}"


def test_sklearn_flavor_takes_predictors_and_transformers() -> None:
    assert isinstance(flavor_for(KMeans()), SklearnFlavor)
    assert isinstance(flavor_for(StandardScaler()), SklearnFlavor)  # answers by transform
    with pytest.raises(InvalidInput, match=r"builtins\.dict.*predict or transform"):
        flavor_for({})


def test_unknown_flavor_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match="no model flavor 'tensorflow'; known flavors: "):
        get_flavor("tensorflow")


class _DictFlavor:
    """A toy flavor for plain dicts, to exercise the plug-in table."""

    name = "dicts"

    def can_save(self, model: object) -> bool:
        return isinstance(model, dict)

    def save(self, model: object, path: Path) -> None:
        (path / "model.txt").write_text(repr(model))

    def load(self, path: Path) -> object:
        return ast.literal_eval((path / "model.txt").read_text())


def test_registered_flavors_are_found_and_tried_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_flavors, "_flavors", dict(_flavors._flavors))
    register_flavor(_DictFlavor())
    assert get_flavor("dicts").name == "dicts"
    assert flavor_for({"a": 1}).name == "dicts"
    assert flavor_for(KMeans()).name == "sklearn"
    with pytest.raises(InvalidInput, match="non-empty string name"):
        register_flavor(object())  # type: ignore[arg-type]
