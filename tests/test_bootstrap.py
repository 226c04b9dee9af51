"""Bootstrap intervals over the sampled unit."""
import numpy as np
import pytest

from facelin import bootstrap


def test_bootstrap_statistic_interval_covers_the_median():
    values = np.random.default_rng(0).normal(1.0, 1.0, 400)
    median, low, high = bootstrap.bootstrap_statistic(values)
    assert low < median < high and low < 1.0 < high and high - low < 0.4
    with pytest.raises(ValueError, match="NaN"):
        bootstrap.bootstrap_statistic([1.0, np.nan])
    with pytest.raises(ValueError, match="at least two"):
        bootstrap.bootstrap_fraction([])


def test_bootstrap_keeps_groups_whole_and_intervals_cover():
    groups = np.repeat(np.arange(30), 4)
    sizes = bootstrap.bootstrap_groups(len, groups, n_boot=50)
    assert (sizes == 120).all()
    counts = bootstrap.bootstrap_groups(
        lambda rows: np.bincount(groups[rows] % 4 == 0).max(), groups, n_boot=50
    )
    assert (counts % 4 == 0).all()
    values = np.random.default_rng(2).normal(3.0, 1.0, 400)
    median, low, high = bootstrap.median_interval(values)
    assert low < median < high and low < 3.0 < high and high - low < 0.4


def test_interval_rejects_a_bad_level():
    with pytest.raises(ValueError, match="level"):
        bootstrap.interval(np.arange(10.0), level=1.5)
