"""Loading a registered model version back as a predictor that checks its input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput
from loopml.registry._flavors import get_flavor
from loopml.registry._package import materialise, read_metadata
from loopml.registry._registry import ModelVersion, get_model_version
from loopml.registry._signature import Signature
from loopml.store import Workspace

RUNTIMES = ("native", "onnx")


class LoadedModel:
    """A registered model version ready to predict; input is checked against its signature.

    Attributes
    ----------
    model_version : the version that was loaded.
    signature : its signature.
    native : the model as its library made it (e.g. the scikit-learn estimator).
    metadata : the package's ``loopml-model.json``.
    path : the local folder of the package.
    runtime : ``"native"`` (the model's own library) or ``"onnx"`` (its ONNX export run by
        onnxruntime; ``native`` is then an :class:`~loopml.registry._onnx.OnnxModel`).
    """

    def __init__(
        self,
        model_version: ModelVersion,
        native: Any,
        metadata: dict[str, Any],
        path: Path,
        runtime: str = "native",
    ) -> None:
        self.model_version = model_version
        self.signature: Signature = model_version.signature
        self.native = native
        self.metadata = metadata
        self.path = path
        self.runtime = runtime

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.model_version.uri!r}, {type(self.native).__name__}, "
            f"runtime={self.runtime!r})"
        )

    def _prepare(self, X: Any) -> Any:
        try:
            frame = self.signature.validate(X)
        except InvalidInput as exc:
            raise InvalidInput(f"{self.model_version.uri}: {exc}") from None
        return frame.to_numpy() if self.signature.input_type == "ndarray" else frame

    def predict(self, X: Any) -> Any:
        """Predict on ``X`` after checking it against the signature.

        Parameters
        ----------
        X : DataFrame, 2-D array, dict of columns or of one record, or list of records.

        Returns
        -------
        What the native model's ``predict`` returns (usually a numpy array); for a model that
        only transforms (a dimensionality reduction such as PCA), its ``transform`` output.

        Raises
        ------
        InvalidInput
            ``X`` lacks a column or has one that does not convert; the message names it.
        """
        predict = getattr(self.native, "predict", None)
        if not callable(predict):
            predict = getattr(self.native, "transform", None)
        if not callable(predict):
            raise InvalidInput(
                f"{self.model_version.uri} ({type(self.native).__name__}) neither predicts "
                "nor transforms"
            )
        return predict(self._prepare(X))

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities for ``X``, checked against the signature like :meth:`predict`.

        Raises
        ------
        InvalidInput
            The model has no ``predict_proba`` (e.g. a regressor), or ``X`` does not fit.
        """
        proba = getattr(self.native, "predict_proba", None)
        if not callable(proba):
            raise InvalidInput(
                f"{self.model_version.uri} ({type(self.native).__name__}) has no predict_proba"
            )
        return proba(self._prepare(X))


def load_model(
    ws: Workspace,
    uri: str | ModelVersion,
    *,
    runtime: str = "native",
    threads: int | None = None,
    device: str | None = None,
) -> LoadedModel:
    """Load a registered model version.

    Parameters
    ----------
    ws : the workspace.
    uri : ``models:/churn/3``, ``models:/churn@production``, ``models:/churn`` (latest), the
        same without ``models:/``, or a :class:`ModelVersion`.
    runtime : ``"native"`` (the model's library) or ``"onnx"``: the ONNX export that
        ``register_model(..., onnx=True)`` stored, run by onnxruntime.
    threads : with ``runtime="onnx"``, onnxruntime's threads per call (None: every core).
    device : for a torch model (alone or ending a Pipeline), where it predicts: ``"cpu"``
        (the default), ``"cuda"``, ``"cuda:N"`` or ``"auto"``. Without CUDA, ``"cuda"``
        falls back to the CPU with one RuntimeWarning. Other models take only ``"cpu"``
        or ``"auto"``.

    Returns
    -------
    LoadedModel

    Raises
    ------
    InvalidInput
        An unknown runtime or device, ``runtime="onnx"`` for a version registered without
        ONNX, or a GPU device for a model that is not a torch model.
    NotFound
        The model, version, alias or the package's flavor is unknown.
    MissingDependency
        ``runtime="onnx"`` without the ``onnx`` extra.
    CorruptBlob
        A stored file of the package no longer matches its digest.

    Examples
    --------
    >>> model = load_model(ws, "models:/churn@production")  # doctest: +SKIP
    >>> model.predict({"age": 41, "plan": "pro"})  # doctest: +SKIP
    array([1])
    """
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidInput(f"threads must be a positive integer or None, not {threads!r}")
    mv = uri if isinstance(uri, ModelVersion) else get_model_version(ws, uri)
    if mv.flavor == "mlflow":
        raise InvalidInput(
            f"{mv.uri} was registered through MLflow's API: its files are an MLflow model, "
            "which loopml does not load; fetch them with "
            f"mlflow.artifacts.download_artifacts({mv.uri!r}), or register the model "
            "with loopml.register_model"
        )
    if runtime == "onnx":
        path = materialise(ws, mv.package_digest)
        metadata = read_metadata(path)
        info = metadata.get("onnx")
        if not isinstance(info, dict):
            raise InvalidInput(
                f"{mv.uri} has no ONNX export; register the model with onnx=True to serve "
                "it with runtime='onnx'"
            )
        from loopml.registry._onnx import load_onnx  # imports onnxruntime

        if device not in (None, "cpu", "auto"):
            raise InvalidInput(
                f"{mv.uri}: device={device!r} applies to torch models run natively; the ONNX "
                "export is run by onnxruntime on the CPU (leave device unset)"
            )
        return LoadedModel(
            mv, load_onnx(path / info["file"], info, threads), metadata, path, runtime
        )
    flavor = get_flavor(mv.flavor)
    path = materialise(ws, mv.package_digest)
    metadata = read_metadata(path)
    native = flavor.load(path)
    if device is not None:
        _place(native, device, mv.uri)
    return LoadedModel(mv, native, metadata, path)


def _place(native: Any, device: str, uri: str) -> None:
    """Move the torch model in ``native`` (or ending its Pipeline) to ``device``."""
    steps = getattr(native, "steps", None)
    final = steps[-1][1] if steps else native
    to_device = getattr(final, "to_device", None)
    if callable(to_device):
        to_device(device)
    elif device not in ("cpu", "auto"):
        raise InvalidInput(
            f"{uri}: device={device!r} applies to torch models; this is a "
            f"{type(final).__name__}, which predicts on the CPU (use device='cpu' or leave "
            "it unset)"
        )
