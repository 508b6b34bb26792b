"""The model registry: registered models, their numbered versions, aliases and tags; model
packages (the model's files plus ``loopml-model.json``, stored content-addressed in the
blob store); flavors that save and load each family of models; and signatures that say
which columns a model takes, so that every prediction request is checked before it runs.
A version is named by a URI such as ``models:/churn/3`` or ``models:/churn@production``.
"""

from loopml.registry._flavors import Flavor, SklearnFlavor, flavor_for, get_flavor, register_flavor
from loopml.registry._loaded import RUNTIMES, LoadedModel, load_model
from loopml.registry._registry import (
    ModelVersion,
    RegisteredModel,
    delete_alias,
    get_model_version,
    list_models,
    list_versions,
    register_model,
    set_alias,
    set_description,
    set_model_tag,
)
from loopml.registry._signature import ColumnSpec, Signature
from loopml.registry._uri import parse_model_uri

__all__ = [
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
]
