"""Bootstrap intervals over the unit that was sampled (identities, units, faces).

- :func:`bootstrap_statistic`: a statistic of 1-d values (one per unit or face) with
  its percentile interval from resampling the values;
- :func:`bootstrap_fraction`: the same for the fraction of True flags;
- :func:`median_interval`: the median with its 95% interval;
- :func:`bootstrap_groups`: any statistic of rows, resampling whole groups of rows
  (e.g. every image of an identity, every render of a face), and :func:`interval`, the
  percentile interval of its draws.

Claim 2's identity resampling of whole recognition routes lives in
`facelin.recognition.bootstrap`, which scores every route on the same resamples.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_statistic", "bootstrap_fraction", "median_interval",
           "bootstrap_groups", "interval"]


def bootstrap_statistic(values, statistic=np.median, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0):
    """``statistic`` of 1-d ``values`` and its percentile bootstrap interval (resampling
    the values, e.g. units): (value, low, high). ``statistic`` must take ``axis=1``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError("values must be a 1-d array of at least two numbers")
    if not np.isfinite(v).all():
        raise ValueError("values hold NaN or Inf")
    draws = np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))
    low, high = interval(statistic(v[draws], axis=1), level)
    return float(statistic(v)), low, high


def bootstrap_fraction(flags, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """The fraction of True ``flags`` and its percentile bootstrap interval (resampling
    the flags, i.e. the units): (fraction, low, high)."""
    return bootstrap_statistic(np.asarray(flags, dtype=bool), np.mean, n_boot, level,
                               seed)


def median_interval(values, n_boot: int = 1000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """The median of ``values`` (one per unit, or per draw) with a 95% bootstrap
    interval over them: ``(median, low, high)``."""
    return bootstrap_statistic(np.ravel(values), np.median, n_boot, 0.95, seed)


def bootstrap_groups(statistic, groups, n_boot: int = 1000, seed: int = 0
                     ) -> np.ndarray:
    """``statistic(rows)`` on ``n_boot`` resamples of whole groups with replacement
    (every row of a drawn group comes along): rows are indices into the data the
    statistic closes over. ``groups`` (n,) labels the rows (``np.arange(n)`` resamples
    single rows, e.g. units). Returns the (n_boot, ...) stacked statistics."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size < 2:
        raise ValueError("groups must label at least two rows")
    labels, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        chosen = rng.integers(len(labels), size=len(labels))
        draws.append(statistic(np.concatenate([members[g] for g in chosen])))
    return np.asarray(draws)


def interval(draws, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of 1-d bootstrap draws."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    tail = (1 - level) / 2
    low, high = np.quantile(np.asarray(draws, dtype=np.float64), [tail, 1 - tail])
    return float(low), float(high)
