"""Frames shaped like the drift benchmark's W_drift, at any size (numpy seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFTED_NUM = [f"num{i}" for i in range(4)]
SHIFTED_CAT = ["cat0"]


def drift_frames(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current: 12 numeric + 4 categorical columns; num0-3 shifted by 0.5 std,
    cat0's level frequencies reversed."""
    rng = np.random.default_rng(seed)
    loc, scale = rng.normal(0, 10, 12), rng.uniform(0.5, 5, 12)
    levels = [np.array([f"c{j}_v{k}" for k in range(m)]) for j, m in enumerate((5, 8, 12, 20))]

    def frame(shifted: bool) -> pd.DataFrame:
        x = loc + scale * rng.standard_normal((n, 12))
        if shifted:
            x[:, :4] += 0.5 * scale[:4]
        cols: dict[str, object] = {f"num{i}": x[:, i] for i in range(12)}
        for j, lv in enumerate(levels):
            p = 1.0 / np.arange(1, len(lv) + 1)
            if shifted and j == 0:
                p = p[::-1]
            cols[f"cat{j}"] = lv[rng.choice(len(lv), n, p=p / p.sum())]
        return pd.DataFrame(cols)

    return frame(False), frame(True)
