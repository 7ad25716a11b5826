"""Drift statistics: checked against scipy's own tests on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from chimp.serving.config import MonitoringConfig
from chimp.serving.drift import binned_ks, chi_squared, confidence_test, jensen_shannon, label_test
from chimp.shared.schemas.monitoring import PredictionReference, confidence_bins

LABELS = ["angry", "happy", "neutral", "sad"]


def spread_reference(per_label: int = 50) -> PredictionReference:
    predicted = np.repeat(np.arange(len(LABELS)), per_label)
    confidences = np.linspace(0.3, 0.99, len(predicted))
    return PredictionReference.from_predictions(LABELS, predicted, confidences, split="test")


def test_chi_squared_is_scipys_test_of_homogeneity() -> None:
    reference, current = [50, 40, 0, 10], [5, 80, 0, 15]
    statistic, p_value = chi_squared(reference, current)
    expected = stats.chi2_contingency(np.array([[50, 40, 10], [5, 80, 15]]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    assert chi_squared([10, 0], [30, 0]) == (0.0, 1.0)  # one label only: nothing to compare


def test_jensen_shannon_is_scipys_distance_base_2() -> None:
    p, q = [50, 40, 0, 10], [5, 80, 3, 15]
    got = jensen_shannon(p, q)
    assert got == pytest.approx(distance.jensenshannon(p, q, base=2))
    assert jensen_shannon(p, [x * 7 for x in p]) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)


def test_binned_ks_matches_scipy_on_samples_at_the_bin_centres() -> None:
    rng = np.random.default_rng(3)
    a = (rng.integers(0, 10, 400) + 0.5) / 10
    b = (rng.integers(3, 10, 250) + 0.5) / 10
    statistic, p_value = binned_ks(confidence_bins(a).tolist(), confidence_bins(b).tolist())
    expected = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=0.05)


def test_skewed_labels_drift_and_the_references_own_shares_do_not() -> None:
    config = MonitoringConfig()
    reference = spread_reference()
    skewed = label_test(reference, {"happy": 100}, config)
    same = label_test(reference, {label: 25 for label in LABELS}, config)
    assert (skewed.test, skewed.drift) == ("chi-squared", True)
    assert skewed.p_value is not None
    assert skewed.p_value < 0.05
    assert not same.drift
    assert same.p_value == pytest.approx(1.0)


def test_above_the_chi_squared_limit_labels_use_the_jensen_shannon_distance() -> None:
    config = MonitoringConfig(chi2_max_count=1000)
    reference = spread_reference()
    # 1,200 predictions, slightly off the reference's even shares: a chi-squared test would call
    # that significant; the distance stays under 0.1.
    close = label_test(reference, {"angry": 330, "happy": 300, "neutral": 300, "sad": 270}, config)
    far = label_test(reference, {"happy": 1100, "sad": 100}, config)
    assert (close.test, close.drift, close.p_value) == ("jensen-shannon", False, None)
    assert close.statistic < 0.1
    assert (far.test, far.drift) == ("jensen-shannon", True)


def test_confidence_drifts_when_scores_collapse() -> None:
    config = MonitoringConfig()
    reference = spread_reference()
    low = confidence_test(reference, confidence_bins(np.full(200, 0.35)).tolist(), config)
    alike = confidence_test(reference, reference.confidence_bins, config)
    assert low.drift
    assert low.p_value < 0.05
    assert (alike.drift, alike.statistic) == (False, 0.0)


def test_a_reference_must_add_up() -> None:
    with pytest.raises(ValueError, match="add up"):
        PredictionReference(
            split="test", count=3, label_counts={"a": 2}, confidence_bins=[2] + [0] * 9
        )
