"""Deployment targets: an image build context for a registered model version
(:func:`build_context`, ``loopml build``) and the Kubernetes and KServe manifests that run
it (:func:`k8s_manifests`, ``loopml k8s``)."""

from loopml.targets._build import BuildContext, build_context
from loopml.targets._k8s import K8sOptions, k8s_manifests, to_yaml

__all__ = ["BuildContext", "K8sOptions", "build_context", "k8s_manifests", "to_yaml"]
