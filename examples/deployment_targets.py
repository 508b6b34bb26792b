"""Export a model to ONNX at registration, serve it with onnxruntime, and write the image
build context and Kubernetes manifests that deploy it.

Run it anywhere: it works in a throw-away folder.
    python examples/deployment_targets.py
"""

import tempfile
from pathlib import Path

import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier

import loopml
from loopml.targets import K8sOptions, build_context, k8s_manifests, to_yaml

home = Path(tempfile.mkdtemp(prefix="loopml-targets-"))
ws = loopml.init(home / "ws")
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)

# onnx=True: the ONNX export is stored beside the native files, checked on the example
mv = loopml.register_model(model, "cancer", input_example=X.head(100), onnx=True, workspace=ws)
onnx = loopml.load_model(mv.uri, runtime="onnx", workspace=ws)
print(f"{mv.uri}: ONNX export within {onnx.metadata['onnx']['max_abs_diff']:.1e} of the model")
same = (onnx.predict(X) == model.predict(X)).mean()
print(f"onnxruntime agrees with scikit-learn on {same:.1%} of {len(X)} rows")

# loopml build: Dockerfile + pinned requirements + loopml wheel + a one-model workspace
ctx = build_context(ws, mv.uri, home / "image", runtime="onnx")
print(f"build context {ctx.path.name}/: {sorted(p.name for p in ctx.path.iterdir())}")
print(f"base image python:{ctx.python}-slim, {len(ctx.requirements)} pinned requirements")

# loopml k8s: Deployment, Service, HorizontalPodAutoscaler, KServe InferenceService
docs = k8s_manifests(ws, mv.uri, K8sOptions(image="cancer:1", runtime="onnx"))
(home / "cancer.yaml").write_text(to_yaml(docs))
print("manifests:", [d["kind"] for d in yaml.safe_load_all((home / "cancer.yaml").read_text())])
ws.close()
