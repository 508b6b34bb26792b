"""The standard recipe as YAML (``loopml.yaml``): ingest → validate → train or tune →
evaluate → register → deploy, each a step calling loopml's own APIs.

.. code-block:: yaml

    name: churn
    ingest: {source: data/customers.csv, dataset: churn}
    validate: {suite: auto}               # or a suite file; on_fail: raise
    train: {target: churned, model: linear, drop: [customer_id]}
    # tune: {target: churned, model: linear, search_space: {...}, n_trials: 10}
    evaluate: {metric: roc_auc, min: 0.7}
    register: {model: churn, alias: production}
    deploy: {name: churn}

Paths are relative to the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loopml import data, registry
from loopml.errors import InvalidInput
from loopml.pipelines._pipeline import Pipeline
from loopml.pipelines._step import step
from loopml.store import default_workspace
from loopml.store.blobs import sha256_file


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSection(_Section):
    source: str
    dataset: str = Field(min_length=1)


class ValidateSection(_Section):
    suite: str = "auto"  # "auto": a suite suggested from the data's profile


class TrainSection(_Section):
    target: str
    model: str = "hist_gb"
    params: dict[str, Any] = {}
    split: str | dict[str, Any] = "holdout"
    drop: list[str] = []


class TuneSection(TrainSection):
    search_space: dict[str, Any] | str
    n_trials: int = Field(default=10, ge=1)
    metric: str | None = None


class EvaluateSection(_Section):
    metric: str
    min: float | None = None
    max: float | None = None


class RegisterSection(_Section):
    model: str = Field(min_length=1)
    alias: str | None = None


class DeploySection(_Section):
    name: str = Field(min_length=1)


class Recipe(_Section):
    """A ``loopml.yaml`` file, validated."""

    name: str = "recipe"
    ingest: IngestSection
    validate_: ValidateSection | None = Field(default=None, alias="validate")
    train: TrainSection | None = None
    tune: TuneSection | None = None
    evaluate: EvaluateSection | None = None
    register_: RegisterSection | None = Field(default=None, alias="register")
    deploy: DeploySection | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_trainer(self) -> Recipe:
        if (self.train is None) == (self.tune is None):
            raise ValueError("give exactly one of 'train' and 'tune'")
        if self.deploy is not None and self.register_ is None:
            raise ValueError("'deploy' needs a 'register' section")
        return self


# -- the steps (module level, so worker processes import them) -------------------------


@step(name="ingest")
def ingest_step(source: str, dataset: str, content: str | None) -> data.DatasetVersion:
    """Ingest a file as the next version of a dataset (the same content: the same version).
    ``content`` is the file's sha256, so a changed file misses the cache."""
    return data.ingest(source, name=dataset)


@step(name="validate")
def validate_step(dataset: data.DatasetVersion, suite: str) -> data.DatasetVersion:
    """Check the dataset against a suite; a failed check fails the step."""
    chosen: Any = (
        data.suggest_suite(dataset.profile, name=dataset.name) if suite == "auto" else suite
    )
    data.validate(dataset, chosen, on_fail="raise")
    return dataset


def _trained(result: Any) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "metrics": dict(result.metrics),
        "model": result.model,
        "input_example": result.input_example,
    }


@step(name="train")
def train_step(dataset: data.DatasetVersion, options: dict[str, Any]) -> dict[str, Any]:
    """Train a model on the dataset (a tracked run); return it with its metrics."""
    from loopml.training import train  # scikit-learn loads here, not on `import loopml`

    return _trained(train(dataset, **options))


@step(name="tune")
def tune_step(dataset: data.DatasetVersion, options: dict[str, Any]) -> dict[str, Any]:
    """Search hyperparameters; return the best (refit) model with its metrics."""
    from loopml.training import tune  # scikit-learn loads here, not on `import loopml`

    return _trained(tune(dataset, **options).best)


@step(name="evaluate")
def evaluate_step(
    trained: dict[str, Any], metric: str, low: float | None, high: float | None
) -> dict[str, Any]:
    """Gate on a metric of the trained model: below ``low`` or above ``high`` fails."""
    if metric not in trained["metrics"]:
        raise InvalidInput(
            f"evaluate: the model has no metric {metric!r} (it has "
            f"{', '.join(sorted(trained['metrics']))})"
        )
    value = float(trained["metrics"][metric])
    if low is not None and value < low:
        raise InvalidInput(f"evaluate: {metric} = {value:.4g} is below the minimum {low:g}")
    if high is not None and value > high:
        raise InvalidInput(f"evaluate: {metric} = {value:.4g} is above the maximum {high:g}")
    return {"metric": metric, "value": value}


@step(name="register")
def register_step(
    trained: dict[str, Any], evaluation: dict[str, Any] | None, model: str, alias: str | None
) -> registry.ModelVersion:
    """Register the trained model (linked to its run), optionally moving an alias to it."""
    ws = default_workspace()
    mv = registry.register_model(
        ws,
        trained["model"],
        model,
        run_id=trained["run_id"],
        input_example=trained["input_example"],
    )
    return mv if alias is None else registry.set_alias(ws, model, alias, mv.version)


@step(name="deploy")
def deploy_step(version: registry.ModelVersion, name: str) -> dict[str, Any]:
    """Point deployment ``name`` at the registered version."""
    from loopml import serving  # the model server's stack loads here, not on import

    dep = serving.deploy(default_workspace(), name, model=version.name, primary=version.version)
    return {"deployment": dep.name, "model": version.uri}


# -- building the pipeline ---------------------------------------------------------------


def read_recipe(path: str | Path) -> Recipe:
    """The recipe in a YAML file, or InvalidInput naming the field that is wrong."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"no recipe file {file}")
    try:
        body = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"{file}: expected a mapping of sections (ingest, train, ...)")
    try:
        return Recipe.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "recipe"
        raise InvalidInput(f"{file}: {where}: {err['msg']}") from None


def load_recipe(path: str | Path) -> Pipeline[[]]:
    """The pipeline a ``loopml.yaml`` recipe describes."""
    file = Path(path).expanduser().resolve()
    recipe = read_recipe(file)
    folder = file.parent

    def build() -> Any:
        src = recipe.ingest.source
        source = src if "://" in src else str(folder / src)
        content = sha256_file(source) if Path(source).is_file() else None
        dataset: Any = ingest_step(source, recipe.ingest.dataset, content)
        if recipe.validate_ is not None:
            suite = recipe.validate_.suite
            suite = suite if suite == "auto" else str(folder / suite)
            dataset = validate_step(dataset, suite)
        if recipe.tune is not None:
            options = recipe.tune.model_dump(exclude_none=True)
            space = options["search_space"]
            if isinstance(space, str) and not space.lstrip().startswith("{"):
                options["search_space"] = str(folder / space)
            trained = tune_step(dataset, options)
        else:
            assert recipe.train is not None
            trained = train_step(dataset, recipe.train.model_dump())
        evaluation = None
        if recipe.evaluate is not None:
            ev = recipe.evaluate
            evaluation = evaluate_step(trained, ev.metric, ev.min, ev.max)
        if recipe.register_ is None:
            return trained if evaluation is None else evaluation
        version = register_step(trained, evaluation, recipe.register_.model, recipe.register_.alias)
        if recipe.deploy is None:
            return version
        return deploy_step(version, recipe.deploy.name)

    build.__name__ = build.__qualname__ = recipe.name
    return Pipeline(build, recipe.name, "process", True, source=str(file))
