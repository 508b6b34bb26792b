"""Reading definitions from a Python file (every definition object at its top level) or a
YAML file (``entities:``, ``feature_views:``, ``feature_services:`` lists)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import yaml

from loopml.errors import InvalidInput, NotFound
from loopml.features._definitions import (
    KINDS,
    Definition,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
)

_YAML_KEYS = {
    "entities": (Entity, {"name", "join_keys", "description"}),
    "feature_views": (
        FeatureView,
        {
            "name",
            "entities",
            "source",
            "timestamp_field",
            "ttl",
            "features",
            "owner",
            "tags",
            "description",
        },
    ),
    "feature_services": (FeatureService, {"name", "features", "owner", "tags", "description"}),
}


def load_definitions(path: str | Path) -> list[Definition]:
    """The definitions in a ``.py`` or ``.yaml``/``.yml`` file, or in every such file of a
    folder (sorted by name)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".py", ".yaml", ".yml"))
        return [d for f in files for d in load_definitions(f)]
    if not p.is_file():
        raise NotFound(f"no such file or folder: {p}")
    if p.suffix == ".py":
        return _from_python(p)
    if p.suffix in (".yaml", ".yml"):
        return _from_yaml(p)
    raise InvalidInput(f"{p}: definitions are read from .py or .yaml files")


def _from_python(path: Path) -> list[Definition]:
    try:
        namespace = runpy.run_path(str(path), run_name="loopml_features_definitions")
    except Exception as exc:
        raise InvalidInput(f"{path}: running the file failed: {exc!r}") from exc
    found: dict[int, Definition] = {}
    for value in namespace.values():
        if type(value) in KINDS:
            found.setdefault(id(value), value)
    if not found:
        raise InvalidInput(f"{path}: defines no Entity, FeatureView or FeatureService")
    return list(found.values())


def _from_yaml(path: Path) -> list[Definition]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a mapping with entities/feature_views/...")
    unknown = set(doc) - set(_YAML_KEYS)
    if unknown:
        raise InvalidInput(
            f"{path}: unknown section(s) {sorted(unknown)} (use {sorted(_YAML_KEYS)}; "
            "on-demand views are defined in Python)"
        )
    out: list[Definition] = []
    for section, (cls, fields) in _YAML_KEYS.items():
        items = doc.get(section) or []
        if not isinstance(items, list):
            raise InvalidInput(f"{path}: {section} must be a list")
        for i, item in enumerate(items):
            where = f"{path}: {section}[{i}]"
            if not isinstance(item, dict):
                raise InvalidInput(f"{where} must be a mapping")
            extra = set(item) - fields
            if extra:
                raise InvalidInput(f"{where}: unknown field(s) {sorted(extra)}")
            missing = {"name"} - set(item)
            if missing:
                raise InvalidInput(f"{where}: missing field 'name'")
            kwargs: dict[str, Any] = dict(item)
            if cls is FeatureView:
                kwargs["features"] = [_feature(f, where) for f in item.get("features", [])]
            try:
                out.append(cls(**kwargs))
            except TypeError as exc:
                raise InvalidInput(f"{where}: {exc}") from None
    return out


def _feature(item: Any, where: str) -> Feature | str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and set(item) <= {"name", "dtype"} and "name" in item:
        return Feature(item["name"], item.get("dtype"))
    raise InvalidInput(f"{where}: feature {item!r} must be a name or {{name, dtype}}")
