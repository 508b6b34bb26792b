"""``loopml k8s``: the manifests load into the official kubernetes client's models without
losing a field, and the KServe InferenceService's container is a valid container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import InvalidInput
from loopml.registry import ModelVersion
from loopml.store import Workspace
from loopml.targets import K8sOptions, k8s_manifests
from loopml.targets._k8s import RPS_METRIC, object_name

runner = CliRunner()
MODELS = {
    "Deployment": client.V1Deployment,
    "Service": client.V1Service,
    "HorizontalPodAutoscaler": client.V2HorizontalPodAutoscaler,
}


def _round_trip(model: Any, document: dict[str, Any]) -> Any:
    """``document`` as the client's ``model``, checked to serialise back unchanged (a
    misspelt or misplaced field would be dropped)."""
    loaded = model.from_dict(document)
    assert client.ApiClient().sanitize_for_serialization(loaded) == document
    return loaded


def test_manifests_load_into_the_kubernetes_client_models(
    sqlite_ws: Workspace, churn: ModelVersion, tmp_path: Path
) -> None:
    out = tmp_path / "k8s" / "churn.yaml"
    args = ["-w", str(sqlite_ws.home), "k8s", "Churn_Model@production", "--image", "churn:2"]
    result = runner.invoke(app, [*args, "-o", str(out), "--namespace", "ml", "--target-rps", "50"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == [*MODELS, "InferenceService"]
    loaded = {d["kind"]: _round_trip(MODELS[d["kind"]], d) for d in docs[:3]}
    deployment, service, hpa = (
        loaded["Deployment"],
        loaded["Service"],
        loaded["HorizontalPodAutoscaler"],
    )
    assert deployment.metadata.name == "churn-model" and deployment.metadata.namespace == "ml"
    (container,) = deployment.spec.template.spec.containers
    assert container.image == "churn:2"
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "1000m", "memory": "512Mi"}
    assert container.security_context.run_as_non_root is True
    assert container.args[:4] == ["--workspace", "/srv/workspace", "serve", "Churn_Model/1"]
    assert deployment.spec.selector.match_labels == service.spec.selector
    assert service.spec.ports[0].target_port == "http"
    assert hpa.spec.scale_target_ref.name == "churn-model"
    pods = next(m for m in hpa.spec.metrics if m.type == "Pods")
    assert pods.pods.metric.name == RPS_METRIC and pods.pods.target.average_value == "50"
    isvc = docs[3]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    (predictor,) = isvc["spec"]["predictor"]["containers"]
    kserve = _round_trip(client.V1Container, predictor)
    assert kserve.name == "kserve-container" and kserve.ports[0].container_port == 8080
    assert isvc["metadata"]["annotations"]["loopml.dev/model-uri"] == churn.uri


def test_stdout_and_the_onnx_runtime(sqlite_ws: Workspace, churn: ModelVersion) -> None:
    args = ["-w", str(sqlite_ws.home), "k8s", churn.uri, "--image", "c:1", "--runtime", "onnx"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    deployment = next(yaml.safe_load_all(result.output))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-3:] == ["--runtime", "onnx", "--no-log"]
    assert "&id" not in result.output  # no YAML anchors: every document stands alone


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"image": "has space"}, "image must be"),
        ({"image": "c:1", "name": "Bad_Name"}, "'Bad_Name' is not a DNS label"),
        ({"image": "c:1", "replicas": 0}, "replicas must be a positive integer"),
        ({"image": "c:1", "replicas": 5, "max_replicas": 2}, "max_replicas (2) is below"),
        ({"image": "c:1", "cpu": "lots"}, "cpu 'lots' is not a Kubernetes quantity"),
        ({"image": "c:1", "port": 70000}, "port must be in 1-65535"),
        ({"image": "c:1", "runtime": "gpu"}, "runtime must be one of"),
    ],
)
def test_bad_options_are_precise(options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        K8sOptions(**options)


def test_names_become_dns_labels(sqlite_ws: Workspace, churn: ModelVersion) -> None:
    assert object_name("Churn_Model") == "churn-model" and object_name("__") == "model"
    docs = k8s_manifests(sqlite_ws, churn.uri, K8sOptions(image="c:1", name="churn"))
    assert {d["metadata"]["name"] for d in docs} == {"churn"}
