"""A scikit-learn classifier that takes a fixed time per call (importable by server processes)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the sign of the first column after sleeping ``seconds``."""

    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        time.sleep(self.seconds)
        return (np.asarray(X, dtype=float)[:, 0] > 0).astype(int)
