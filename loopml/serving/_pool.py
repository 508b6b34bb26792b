"""The models a server holds: loaded versions, their batchers, and hot swap on alias moves.

A :class:`Slot` is one model reference (``churn@production``, ``churn/3``) and the version
it currently serves. A background watcher re-resolves every alias; when one moves, the new
version is loaded off the event loop and swapped in with one assignment, and the old
version finishes the requests it already queued before its thread stops. A request never
sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from loopml.errors import InvalidInput
from loopml.registry import RUNTIMES, LoadedModel, ModelVersion, load_model
from loopml.serving._batcher import Arrivals, BatchConfig, Batcher, BatchResult, Outcome
from loopml.serving._codec import InputSchema, ModelInput, Parsed, as_frame, combine
from loopml.serving._feature_join import FeatureJoin
from loopml.serving._metrics import ServingMetrics
from loopml.store import Workspace

log = logging.getLogger("loopml.serving")


class PredictionLog(Protocol):
    """What the server needs of a prediction logger (see ``PredictionLogger``)."""

    @property
    def dropped(self) -> int: ...

    def log_feedback(self, deployment: str, request_ids: list[str], labels: Any) -> None: ...

    def log_error(self, deployment: str, request_id: str, status: int, message: str) -> None: ...

    def close(self) -> None: ...

    def log(
        self,
        deployment: str,
        model: str,
        version: int,
        role: str,
        request_ids: list[str],
        inputs: Any,
        predictions: Any,
        probabilities: Any | None,
        classes: Any | None,
        latency_ms: float,
    ) -> None: ...


class BatcherClosed(RuntimeError):
    """The version was swapped out while a request was being prepared; retry on the new one."""


def _is_estimator(value: Any) -> bool:
    """A scikit-learn estimator? (If scikit-learn is not loaded, no model made with it is.)"""
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(value, base.BaseEstimator)


def _holds_named_estimator(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a fitted estimator that checks feature names itself."""
    if _is_estimator(value):
        return hasattr(value, "feature_names_in_") or any(
            _holds_named_estimator(v, depth + 1) for v in vars(value).values()
        )
    if depth < 3 and isinstance(value, list | tuple | dict):
        items = value.values() if isinstance(value, dict) else value
        return any(_holds_named_estimator(v, depth + 1) for v in items)
    return False


def numpy_estimator(loaded: LoadedModel, schema_names: list[str], fast: bool) -> Any | None:
    """The native model in a form that takes a plain array, when that is exactly equivalent.

    A scikit-learn estimator fitted on a DataFrame of numeric columns reads an array of the
    same columns in the same order identically; only its feature-name check differs. A
    shallow copy without ``feature_names_in_`` skips that check (and its warning). Models
    that hold other estimators (pipelines, ensembles), select columns by name, or take
    non-numeric columns keep their DataFrame input. (Helpers such as a label encoder are
    fine: they never see the input columns.) An ONNX export fed one tensor takes the array
    as it is.
    """
    native = loaded.native
    if loaded.signature.input_type == "ndarray":
        return native
    if loaded.runtime == "onnx":  # one float32 tensor of the signature's columns, in order
        return native if fast and loaded.metadata["onnx"]["inputs"] == "tensor" else None
    if not fast or not _is_estimator(native):
        return None
    names = getattr(native, "feature_names_in_", None)
    if names is None or list(names) != schema_names:
        return None
    if any(_holds_named_estimator(v) for v in vars(native).values()):
        return None
    stripped = copy.copy(native)
    try:
        del stripped.feature_names_in_
    except AttributeError:  # a property (e.g. of a meta-estimator): keep DataFrame input
        return None
    return stripped


@dataclass(frozen=True)
class ServeConfig:
    """Settings of a model server app.

    Parameters
    ----------
    batching : micro-batching settings.
    max_body_mb : bodies larger than this get HTTP 413.
    timeout_s : a request waiting longer than this for its prediction gets HTTP 504.
    watch_interval_s : how often aliases are re-resolved for hot swap (0: never).
    inference_threads : native threads (OpenMP/BLAS) per model call; 1 suits small batches.
    token : when set, every request but the health probes needs ``Bearer <token>``.
    runtime : ``"native"`` (each model's own library) or ``"onnx"`` (the ONNX export stored
        by ``register_model(..., onnx=True)``, run by onnxruntime).
    """

    batching: BatchConfig = field(default_factory=BatchConfig)
    max_body_mb: float = 32.0
    timeout_s: float = 30.0
    watch_interval_s: float = 2.0
    inference_threads: int = 1
    token: str | None = None
    runtime: str = "native"

    def __post_init__(self) -> None:
        b = self.batching
        if b.max_batch_size < 1:
            raise InvalidInput(f"max_batch_size must be at least 1, not {b.max_batch_size}")
        if b.max_wait_ms < 0:
            raise InvalidInput(f"max_wait_ms must not be negative, not {b.max_wait_ms}")
        for name in ("max_body_mb", "timeout_s"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be positive, not {getattr(self, name)}")
        if self.watch_interval_s < 0:
            raise InvalidInput(f"watch_interval_s must not be negative: {self.watch_interval_s}")
        if self.inference_threads < 1:
            raise InvalidInput(f"inference_threads must be at least 1: {self.inference_threads}")
        if self.token is not None and not self.token:
            raise InvalidInput("token must not be empty")
        if self.runtime not in RUNTIMES:
            raise InvalidInput(
                f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}"
            )


class ServedModel:
    """One loaded model version with its input schema and batcher (create on the loop)."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        endpoint: str,
        role: str,
        config: ServeConfig,
        arrivals: Arrivals,
        metrics: ServingMetrics,
        logger: PredictionLog | None,
        features: FeatureJoin | None = None,
    ) -> None:
        mv = loaded.model_version
        self.loaded = loaded
        self.name = mv.name
        self.version = mv.version
        self.endpoint = endpoint
        self.role = role
        names = [c.name for c in loaded.signature.inputs]
        probe = InputSchema(loaded.signature, numpy_input=False)
        estimator = numpy_estimator(loaded, names, probe.fast_dtype is not None)
        self.schema = InputSchema(loaded.signature, numpy_input=estimator is not None)
        self._model = loaded.native if estimator is None else estimator
        self._proba = getattr(self._model, "predict_proba", None)
        classes = getattr(loaded.native, "classes_", None)
        self.classes: list[Any] | None = None if classes is None else np.asarray(classes).tolist()
        self._logger = logger
        self.features = features
        self.closed = False
        threads = config.inference_threads
        self.batcher = Batcher(
            self._execute,
            config.batching,
            arrivals,
            name=f"loopml-{mv.name}-{mv.version}",
            on_batch=metrics.batch_observer(mv.name, mv.version),
            initializer=lambda: _limit_threads(threads),
        )

    @property
    def has_proba(self) -> bool:
        """Whether the model gives class probabilities."""
        return callable(self._proba)

    def prepare(self, parsed: Parsed) -> tuple[ModelInput, int]:
        """A parsed request as what :meth:`submit` takes: checked model input, or with a
        feature service the request's key and request columns (looked up per batch)."""
        if self.features is not None:
            return self.features.prepare(parsed)
        return self.schema.prepare(parsed)

    def _execute(
        self, parts: list[ModelInput], proba: bool, request_ids: list[str], rows: list[int]
    ) -> BatchResult:
        logged = None
        if self.features is not None:  # one online lookup for the whole micro-batch
            logged = self.features.join(parts)
            X = self.schema.prepare(logged[self.schema.names])[0]
        else:
            X = combine(parts, self.schema)
        start = time.perf_counter()
        predictions = np.asarray(_values(self._model.predict(X)))
        probabilities = None
        if proba and self._proba is not None:
            probabilities = np.asarray(_values(self._proba(X)))
        if self._logger is not None:
            ids = [rid for rid, n in zip(request_ids, rows, strict=True) for _ in range(n)]
            try:
                self._logger.log(
                    self.endpoint,
                    self.name,
                    self.version,
                    self.role,
                    ids,
                    as_frame(X, self.schema.names) if logged is None else logged,
                    predictions,
                    probabilities,
                    self.classes,
                    (time.perf_counter() - start) * 1000,
                )
            except Exception:  # the log must never fail a prediction
                log.exception("prediction log failed for %s/%s", self.name, self.version)
        return BatchResult(predictions, probabilities, self.classes)

    def submit(
        self, data: ModelInput, rows: int, proba: bool, request_id: str, *, expected: bool = True
    ) -> asyncio.Future[Outcome]:
        """Queue a prepared request (see :meth:`Batcher.submit`).

        Raises
        ------
        BatcherClosed
            This version has been swapped out; prepare the request again on the new one.
        """
        if self.closed:
            raise BatcherClosed(f"{self.name}/{self.version} is no longer served")
        return self.batcher.submit(data, rows, proba, request_id, expected=expected)

    async def aclose(self) -> None:
        """Stop taking requests, finish the queued ones, stop the thread."""
        self.closed = True
        await self.batcher.aclose()


def _values(output: Any) -> Any:
    to_numpy = getattr(output, "to_numpy", None)
    return to_numpy() if callable(to_numpy) else output


def _limit_threads(n: int) -> None:
    threadpool_limits(limits=n)


Resolver = Callable[[], ModelVersion]


class Slot:
    """A model reference and the version it serves now; ``current`` is swapped atomically."""

    def __init__(self, ref: str, resolve: Resolver, *, movable: bool) -> None:
        self.ref = ref
        self.resolve = resolve
        self.movable = movable
        self.current: ServedModel | None = None


class Endpoint:
    """A name requests address: a model, or a deployment with a primary and a candidate.

    Parameters
    ----------
    name : the endpoint (model or deployment) name.
    primary : the slot that answers.
    candidate : a second slot (shadow, canary or A/B), or None.
    policy : ``single``, ``shadow``, ``canary`` or ``ab``.
    route : for canary/ab: request key (or None) → ``"primary"`` or ``"candidate"``.
    sticky_key : the record field that keys A/B routing, if any.
    features : the feature service looked up for each request, if any.
    reload : for a deployment: returns a new endpoint when its record changed, else None.
    """

    def __init__(
        self,
        name: str,
        primary: Slot,
        candidate: Slot | None = None,
        *,
        policy: str = "single",
        route: Callable[[str | None], str] | None = None,
        sticky_key: str | None = None,
        features: str | None = None,
        reload: Callable[[], Endpoint | None] | None = None,
    ) -> None:
        self.name = name
        self.primary = primary
        self.candidate = candidate
        self.policy = policy
        self.route = route
        self.sticky_key = sticky_key
        self.features = features
        self.reload = reload
        self.arrivals = Arrivals()

    def slots(self) -> list[tuple[str, Slot]]:
        """(role, slot) pairs: primary, and the candidate's role if there is one."""
        out = [("primary", self.primary)]
        if self.candidate is not None:
            out.append(("shadow" if self.policy == "shadow" else "candidate", self.candidate))
        return out

    def choose(self, key: str | None) -> tuple[Slot, str]:
        """The slot that answers a request with routing ``key``, and its role."""
        if self.candidate is None or self.policy == "shadow" or self.route is None:
            return self.primary, "primary"
        if self.route(key) == "candidate":
            return self.candidate, "candidate"
        return self.primary, "primary"

    @property
    def ready(self) -> bool:
        """Every slot has a loaded version."""
        return all(slot.current is not None for _, slot in self.slots())


class ModelPool:
    """Loads every endpoint's models, watches their aliases and swaps in new versions.

    Parameters
    ----------
    ws : the workspace models load from.
    endpoints : the endpoints, keyed by name.
    config : server settings.
    metrics : the app's metrics.
    logger : the prediction log, or None.
    """

    def __init__(
        self,
        ws: Workspace,
        endpoints: dict[str, Endpoint],
        config: ServeConfig,
        metrics: ServingMetrics,
        logger: PredictionLog | None,
    ) -> None:
        self.ws = ws
        self.endpoints = endpoints
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.swaps = 0

    async def start(self) -> None:
        """Load every slot's version, then start watching aliases."""
        for endpoint in self.endpoints.values():
            for role, slot in endpoint.slots():
                mv = await asyncio.to_thread(slot.resolve)
                await self._install(endpoint, role, slot, mv)
        if self.config.watch_interval_s > 0 and any(
            e.reload is not None or any(slot.movable for _, slot in e.slots())
            for e in self.endpoints.values()
        ):
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _load(self, mv: ModelVersion) -> LoadedModel:
        if self.config.runtime == "native":
            return load_model(self.ws, mv)
        threads = self.config.inference_threads
        return load_model(self.ws, mv, runtime=self.config.runtime, threads=threads)

    async def _install(self, endpoint: Endpoint, role: str, slot: Slot, mv: ModelVersion) -> None:
        loaded = await asyncio.to_thread(self._load, mv)
        join = None
        if endpoint.features is not None:
            inputs = [c.name for c in loaded.signature.inputs]
            join = await asyncio.to_thread(FeatureJoin, self.ws, endpoint.features, inputs)
        served = ServedModel(
            loaded,
            endpoint=endpoint.name,
            role=role,
            config=self.config,
            arrivals=endpoint.arrivals,
            metrics=self.metrics,
            logger=self.logger,
            features=join,
        )
        old, slot.current = slot.current, served  # the atomic switch
        self.metrics.serving(endpoint.name, served.name, served.version, role, True)
        if old is not None:
            self.swaps += 1
            self.metrics.serving(endpoint.name, old.name, old.version, role, False)
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            log.info("%s: %s moved %d -> %d", endpoint.name, slot.ref, old.version, mv.version)

    async def refresh(self) -> None:
        """Re-read changed deployments and re-resolve every movable reference once; load and
        swap in what changed."""
        for name, endpoint in list(self.endpoints.items()):
            if endpoint.reload is not None:
                try:
                    fresh = await asyncio.to_thread(endpoint.reload)
                    if fresh is not None:
                        await self._replace(endpoint, fresh)
                        continue
                except Exception:  # keep the current policy; try again next round
                    log.exception("%s: cannot reload the deployment", name)
            for role, slot in endpoint.slots():
                if not slot.movable:
                    continue
                try:
                    mv = await asyncio.to_thread(slot.resolve)
                    if slot.current is None or mv.version != slot.current.version:
                        await self._install(endpoint, role, slot, mv)
                except Exception:  # keep serving the current version; try again next round
                    log.exception("%s: cannot refresh %s", endpoint.name, slot.ref)

    async def _replace(self, old: Endpoint, fresh: Endpoint) -> None:
        """Serve deployment ``fresh`` instead of ``old``: reuse the models whose reference and
        role stay, load the others, switch in one assignment, retire what is left over."""
        fresh.arrivals = old.arrivals
        kept = {(role, slot.ref, old.features): slot.current for role, slot in old.slots()}
        for role, slot in fresh.slots():
            current = kept.pop((role, slot.ref, fresh.features), None)
            if current is not None:
                slot.current = current
            else:
                await self._install(fresh, role, slot, await asyncio.to_thread(slot.resolve))
        self.endpoints[fresh.name] = fresh  # the atomic switch
        log.info("%s: now %s", fresh.name, fresh.policy)
        for leftover in kept.values():
            if leftover is not None:
                self.metrics.serving(
                    fresh.name, leftover.name, leftover.version, leftover.role, False
                )
                task = asyncio.get_running_loop().create_task(leftover.aclose())
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.watch_interval_s)
            await self.refresh()

    async def aclose(self) -> None:
        """Stop watching; finish queued requests; stop every model thread."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        closing = [
            slot.current.aclose()
            for e in self.endpoints.values()
            for _, slot in e.slots()
            if slot.current is not None
        ]
        await asyncio.gather(*closing, *self._retiring)
