"""Drift of a version's predictions against its validation reference.

* Predicted labels: with at most ``chi2_max_count`` predictions, a chi-squared test of
  homogeneity on the 2 x K table (reference counts, recent counts), drift when p < ``p_value``;
  above that, the Jensen-Shannon distance (base 2, so in [0, 1]) of the two label shares, drift
  when it exceeds ``js_distance`` (a large sample makes any p-value tiny; a distance does not).
* Confidence (top score): a two-sample Kolmogorov-Smirnov test. Serving keeps 10-bin histograms,
  not raw scores, so the statistic is the largest gap between the two *binned* CDFs (compared at
  the bin edges) and the p-value is the KS distribution's at the effective size n*m/(n+m). A gap
  inside one bin cannot be seen, so this can only under-state the unbinned statistic: it flags
  less, never more.

Too few recent predictions (``min_count``) give ``not enough data``; a version registered
without a reference gives ``no reference``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from chimp.serving.config import MonitoringConfig
from chimp.shared.schemas.monitoring import ConfidenceTest, LabelTest, PredictionReference


def chi_squared(reference: Sequence[int], current: Sequence[int]) -> tuple[float, float]:
    """Chi-squared statistic and p-value of homogeneity of two count vectors over the same bins.

    Bins empty in both are dropped; with one bin left both samples agree (statistic 0, p 1).
    """
    table = np.array([reference, current], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


def jensen_shannon(reference: Sequence[int], current: Sequence[int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors' shares."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / m[mask])).sum())

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def binned_ks(reference: Sequence[int], current: Sequence[int]) -> tuple[float, float]:
    """Two-sample KS statistic and p-value from two histograms over the same bins."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    n, m = a.sum(), b.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    statistic = float(np.abs(np.cumsum(a) / n - np.cumsum(b) / m).max())
    effective = max(1, round(n * m / (n + m)))
    return statistic, float(min(1.0, stats.kstwo.sf(statistic, effective)))


def label_test(
    reference: PredictionReference, current: Mapping[str, int], config: MonitoringConfig
) -> LabelTest:
    labels = sorted(set(reference.label_counts) | set(current))
    ref = [reference.label_counts.get(label, 0) for label in labels]
    cur = [current.get(label, 0) for label in labels]
    if sum(cur) <= config.chi2_max_count:
        statistic, p_value = chi_squared(ref, cur)
        return LabelTest(
            test="chi-squared",
            statistic=statistic,
            p_value=p_value,
            threshold=config.p_value,
            drift=p_value < config.p_value,
        )
    distance = jensen_shannon(ref, cur)
    return LabelTest(
        test="jensen-shannon",
        statistic=distance,
        threshold=config.js_distance,
        drift=distance > config.js_distance,
    )


def confidence_test(
    reference: PredictionReference, current: Sequence[int], config: MonitoringConfig
) -> ConfidenceTest:
    statistic, p_value = binned_ks(reference.confidence_bins, current)
    return ConfidenceTest(
        statistic=statistic,
        p_value=p_value,
        threshold=config.p_value,
        drift=p_value < config.p_value,
    )
