"""``loopml k8s``: Kubernetes manifests for the image ``loopml build`` makes.

Four documents: a ``Deployment`` (readiness probe on ``/readyz``, liveness on ``/healthz``,
CPU and memory requests and limits, a non-root security context, Prometheus scrape
annotations), a ``Service``, a ``HorizontalPodAutoscaler`` (``autoscaling/v2``) scaling on
the request rate per pod (the ``loopml_requests_per_second`` pods metric, which a metrics
adapter such as prometheus-adapter derives from ``loopml_requests_total``) and on CPU, and a
KServe ``InferenceService`` running the same container as a custom predictor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from loopml.errors import InvalidInput
from loopml.registry import RUNTIMES, ModelVersion, get_model_version
from loopml.store import Workspace
from loopml.targets._build import PORT, USER_ID, serve_command

RPS_METRIC = "loopml_requests_per_second"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


@dataclass(frozen=True)
class K8sOptions:
    """Settings of the manifests.

    Parameters
    ----------
    name : the object name (a DNS label); default: the model name made one.
    image : the container image, e.g. ``my-org/churn:3``.
    namespace : the namespace, or None to leave it to ``kubectl -n``.
    replicas : the Deployment's initial replicas (the HPA's minimum).
    max_replicas : the HPA's maximum.
    cpu, memory : requests per pod; limits are twice the CPU and the same memory.
    target_rps : requests per second per pod the HPA aims at.
    target_cpu : average CPU utilisation (percent) the HPA aims at.
    port : the container port.
    runtime : ``native`` or ``onnx`` (passed to ``loopml serve``).
    """

    image: str
    name: str | None = None
    namespace: str | None = None
    replicas: int = 2
    max_replicas: int = 10
    cpu: str = "500m"
    memory: str = "512Mi"
    target_rps: int = 200
    target_cpu: int = 70
    port: int = PORT
    runtime: str = "native"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.image, str)
            or not self.image
            or any(c.isspace() for c in self.image)
        ):
            raise InvalidInput(
                f"image must be an image reference such as churn:3, not {self.image!r}"
            )
        for field in ("name", "namespace"):
            value = getattr(self, field)
            if value is not None and (len(value) > 63 or not _DNS_LABEL.match(value)):
                raise InvalidInput(
                    f"{field} {value!r} is not a DNS label (lowercase letters, digits and '-', "
                    "at most 63 characters)"
                )
        for field in ("replicas", "max_replicas", "target_rps", "target_cpu"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"{field} must be a positive integer, not {value!r}")
        if self.max_replicas < self.replicas:
            raise InvalidInput(
                f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})"
            )
        for field in ("cpu", "memory"):
            if not _QUANTITY.match(str(getattr(self, field))):
                raise InvalidInput(
                    f"{field} {getattr(self, field)!r} is not a Kubernetes quantity such as "
                    "500m or 512Mi"
                )
        if not 1 <= self.port <= 65535:
            raise InvalidInput(f"port must be in 1-65535, not {self.port}")
        if self.runtime not in RUNTIMES:
            raise InvalidInput(
                f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}"
            )


def object_name(model: str) -> str:
    """``model`` as a DNS label: lowercase, runs of other characters as ``-``."""
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:63].strip("-")
    return name or "model"


def _double(cpu: str) -> str:
    if cpu.endswith("m"):
        return f"{int(float(cpu[:-1]) * 2)}m"
    return f"{float(cpu) * 2:g}"


def _container(mv: ModelVersion, opts: K8sOptions) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/readyz", "port": opts.port}, "periodSeconds": 5}
    live = {"httpGet": {"path": "/healthz", "port": opts.port}, "periodSeconds": 10}
    return {
        "name": "kserve-container",
        "image": opts.image,
        "args": serve_command(f"{mv.name}/1", opts.runtime, opts.port, False)[1:],
        "command": ["loopml"],
        "ports": [{"name": "http", "containerPort": opts.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "initialDelaySeconds": 2, "failureThreshold": 3},
        "livenessProbe": {**live, "initialDelaySeconds": 10, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": opts.cpu, "memory": opts.memory},
            "limits": {"cpu": _double(opts.cpu), "memory": opts.memory},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def manifests(mv: ModelVersion, opts: K8sOptions) -> list[dict[str, Any]]:
    """The Deployment, Service, HorizontalPodAutoscaler and KServe InferenceService of the
    image of ``mv`` (built by ``loopml build``), as dicts."""
    name = opts.name or object_name(mv.name)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "loopml",
    }
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    annotations = {
        "loopml.dev/model-uri": mv.uri,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(opts.port),
        "prometheus.io/path": "/metrics",
    }
    container = _container(mv, opts)
    selector = {"app.kubernetes.io/name": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "annotations": {"loopml.dev/model-uri": mv.uri}},
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "containers": [{**container, "name": "model-server"}],
                    "securityContext": {"runAsNonRoot": True, "fsGroup": USER_ID},
                    "terminationGracePeriodSeconds": 40,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": opts.replicas,
            "maxReplicas": opts.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": RPS_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(opts.target_rps)},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": opts.target_cpu},
                    },
                },
            ],
        },
    }
    inference = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {**meta, "annotations": {"loopml.dev/model-uri": mv.uri}},
        "spec": {
            "predictor": {
                "minReplicas": opts.replicas,
                "maxReplicas": opts.max_replicas,
                "containers": [container],
            }
        },
    }
    return [deployment, service, hpa, inference]


def k8s_manifests(ws: Workspace, uri: str, options: K8sOptions) -> list[dict[str, Any]]:
    """The manifests of model version ``uri`` served from ``options.image``.

    Raises
    ------
    NotFound
        The model version does not exist.
    """
    return manifests(get_model_version(ws, uri), options)


class _Dumper(yaml.SafeDumper):
    """Writes shared dicts out in full, without YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """The documents as one multi-document YAML text."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


__all__ = ["RPS_METRIC", "K8sOptions", "k8s_manifests", "manifests", "object_name", "to_yaml"]
