"""Drift tests computed from a reference :class:`~loopml.monitoring._summary.ColumnSummary`
and the current column (sorted finite values, or level counts).

======================  ===========  ==============================================  =========
test                    kinds        result                                           drifted
======================  ===========  ==============================================  =========
``ks``                  numeric      two-sample Kolmogorov-Smirnov D and p-value      p < t
``chi2``                categorical  chi-squared test of homogeneity and p-value      p < t
``wasserstein``         numeric      Wasserstein-1 distance / reference std           d >= t
``jensenshannon``       both         Jensen-Shannon distance (natural log), binned    d >= t
``psi``                 both         population stability index, binned               d >= t
======================  ===========  ==============================================  =========

When the reference kept every value (at most 10,000), ``ks`` and ``wasserstein`` call
scipy on the values and are exact. Otherwise they read the reference's 1,001 quantile edges
and their exact CDF: KS's D is the largest CDF gap at those edges (short of the true D by at
most one edge-to-edge step, 0.1% of the reference) with the asymptotic p-value scipy's
``ks_2samp`` uses; Wasserstein integrates the CDF gap, linear between edges, plus the
current's mass beyond the reference's range exactly. Numeric ``psi`` and ``jensenshannon``
use the reference's deciles as bins; categorical ones the levels. Empty bins count as a
share of 0.0001 in ``psi``, so that it stays finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import numpy as np

from loopml.monitoring._summary import ColumnSummary, Floats, Kind

TestName = Literal["ks", "chi2", "wasserstein", "jensenshannon", "psi"]
TESTS: Final[dict[str, tuple[Kind, ...]]] = {
    "ks": ("numeric",),
    "chi2": ("categorical",),
    "wasserstein": ("numeric",),
    "jensenshannon": ("numeric", "categorical"),
    "psi": ("numeric", "categorical"),
}
P_VALUE_TESTS: Final = frozenset({"ks", "chi2"})
_PSI_FLOOR: Final = 1e-4
_DECILES: Final = np.linspace(0.1, 0.9, 9)


def _ks(ref: ColumnSummary, cur: Floats) -> tuple[float, float]:
    from scipy import stats  # imported when a test runs: scipy is slow to load

    if ref.values is not None:
        res = stats.ks_2samp(ref.values, cur)
        return float(res.statistic), float(res.pvalue)
    assert ref.edges is not None and ref.cdf is not None
    found = np.searchsorted(cur, ref.edges, side="right") / cur.size
    d = float(np.max(np.abs(ref.cdf - found)))
    n, m = ref.count, cur.size
    p = float(stats.kstwo.sf(d, np.round(n * m / (n + m))))
    return d, min(max(p, 0.0), 1.0)


def _wasserstein(ref: ColumnSummary, cur: Floats) -> float:
    from scipy import stats  # imported when a test runs: scipy is slow to load

    if ref.values is not None:
        w = float(stats.wasserstein_distance(ref.values, cur))
    else:
        assert ref.edges is not None and ref.cdf is not None
        edges = ref.edges
        gap = np.abs(ref.cdf - np.searchsorted(cur, edges, side="right") / cur.size)
        w = float(np.sum(np.diff(edges) * (gap[:-1] + gap[1:]) / 2))
        # beyond the reference's range its CDF is 0 (below) or 1 (above): each current value
        # there adds its distance to the range, over m
        lo = int(np.searchsorted(cur, edges[0], side="left"))
        hi = int(np.searchsorted(cur, edges[-1], side="right"))
        below = edges[0] * lo - float(cur[:lo].sum())
        above = float(cur[hi:].sum()) - edges[-1] * (cur.size - hi)
        w += float(below + above) / cur.size
    std = ref.std or 0.0
    return w / std if std > 0 else w


def numeric_bins(ref: ColumnSummary) -> Floats:
    """Inner bin edges for numeric PSI / Jensen-Shannon: the reference's distinct deciles."""
    if ref.values is not None:
        return np.unique(np.quantile(ref.values, _DECILES))
    assert ref.edges is not None and ref.cdf is not None
    picks = np.searchsorted(ref.cdf, _DECILES, side="left").clip(0, ref.edges.size - 1)
    return np.unique(ref.edges[picks])


def _binned(ref: ColumnSummary, cur: Floats) -> tuple[Floats, Floats]:
    """Reference and current shares in the bins (-inf, b0], (b0, b1], ..., (bk, inf)."""
    inner = numeric_bins(ref)
    r = np.diff(np.concatenate([[0.0], ref.ref_cdf(inner), [1.0]]))
    c = np.diff(
        np.concatenate([[0.0], np.searchsorted(cur, inner, side="right") / cur.size, [1.0]])
    )
    return np.clip(r, 0.0, None), np.clip(c, 0.0, None)


def aligned_levels(ref: ColumnSummary, cur: Mapping[str, int]) -> tuple[list[str], Floats, Floats]:
    """Levels of both sides with their counts; levels beyond the reference's kept ones are
    pooled into ``"(other)"`` when the reference pooled some."""
    assert ref.levels is not None
    names = list(ref.levels)
    r = [float(v) for v in ref.levels.values()]
    c = [float(cur.get(k, 0)) for k in names]
    unseen = {k: v for k, v in cur.items() if k not in ref.levels}
    if ref.other:
        names.append("(other)")
        r.append(float(ref.other))
        c.append(float(sum(unseen.values())))
    else:
        for k, v in unseen.items():
            names.append(k)
            r.append(0.0)
            c.append(float(v))
    return names, np.asarray(r), np.asarray(c)


def _psi(r: Floats, c: Floats) -> float:
    rs = np.clip(r / r.sum(), _PSI_FLOOR, None)
    cs = np.clip(c / c.sum(), _PSI_FLOOR, None)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


def _chi2(r: Floats, c: Floats) -> tuple[float, float]:
    from scipy import stats  # imported when a test runs: scipy is slow to load

    keep = (r + c) > 0
    if keep.sum() < 2:
        return 0.0, 1.0
    res = stats.chi2_contingency(np.vstack([r[keep], c[keep]]), correction=False)
    return float(res.statistic), float(res.pvalue)


def run_test(
    test: str, ref: ColumnSummary, cur: Floats | Mapping[str, int]
) -> tuple[float, float | None]:
    """(statistic, p-value or None) of ``test`` on a reference column and the current one.

    ``cur`` is the sorted finite values of a numeric column, or level -> count.
    """
    from scipy.spatial.distance import jensenshannon as _js

    if ref.kind == "numeric":
        assert isinstance(cur, np.ndarray)
        if test == "ks":
            return _ks(ref, cur)
        if test == "wasserstein":
            return _wasserstein(ref, cur), None
        r, c = _binned(ref, cur)
    else:
        assert not isinstance(cur, np.ndarray)
        _, r, c = aligned_levels(ref, cur)
        if test == "chi2":
            return _chi2(r, c)
    if test == "psi":
        return _psi(r, c), None
    return float(_js(r / r.sum(), c / c.sum())), None


def is_drifted(test: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    """Whether a result crosses its threshold (p-value below it, or distance at/above it)."""
    if test in P_VALUE_TESTS:
        return p_value is not None and p_value < threshold
    return statistic >= threshold
