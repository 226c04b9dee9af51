"""How much of a unit's response a tuned nonlinear model of the parameters explains.

A linear encoder that explains half of a unit's variance may be the best any model of
the 50 parameters can do from 2,000 faces, or it may miss a smooth nonlinear tuning.
:func:`encoding_ceiling` sets a nonlinear reference beside the linear model, both scored
on the same held-out faces by nested cross-validation:

- the reference chooses, per unit, among the linear model and RBF kernel ridge models of
  several bandwidths, with the penalty, on the training folds only (exact leave-one-out
  inside them), so it is never worse than the linear model by more than selection noise;
- the kernel is approximated by Nystroem features (scikit-learn) of the standardised
  parameters, computed once per bandwidth and shared by every unit: each fold needs one
  eigendecomposition per bandwidth for all units at once
  (:func:`facelin.linalg.ridge_cv`).

The ratio of the linear to the reference EV, averaged over units, says how close the
linear code comes to what the parameters can explain at this sample size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from . import linalg
from ._validation import matched_rows
from .encoding import explained_variance, penalty_grid

__all__ = [
    "CeilingResult",
    "encoding_ceiling",
    "ceiling_ratio",
    "ratio_table",
    "KERNEL_ALPHAS",
    "BANDWIDTHS",
]

# Penalties relative to the mean eigenvalue of the features' Gram matrix.
KERNEL_ALPHAS = tuple(np.logspace(-3, 1, 5).tolist())
LINEAR_ALPHAS = tuple(np.logspace(-3, 5, 17).tolist())
# RBF gamma as multiples of 1 / (median squared distance between standardised faces).
BANDWIDTHS = (0.03, 0.1, 0.3, 1.0)


@dataclass
class CeilingResult:
    """Held-out scores of the linear model and the nonlinear reference, per unit.

    linear_ev, reference_ev : (k,) EV ``1 - SSE/SST`` of the nested cross-validated
        predictions. chosen : (folds, k) the model each fold's inner selection picked
        for each unit (0 linear, b > 0 the b-th bandwidth). models : the candidates'
        names.
    """

    linear_ev: np.ndarray
    reference_ev: np.ndarray
    chosen: np.ndarray
    models: list


def _nystroem(z: np.ndarray, gamma: float, n_centres: int, seed: int) -> torch.Tensor:
    from sklearn.kernel_approximation import Nystroem

    features = Nystroem(
        kernel="rbf", gamma=gamma, n_components=n_centres, random_state=seed
    ).fit_transform(z)
    return torch.from_numpy(features.astype(np.float64))


def encoding_ceiling(
    params,
    responses,
    folds: int = 5,
    n_centres: int = 1000,
    bandwidths: Sequence[float] = BANDWIDTHS,
    kernel_alphas: Sequence[float] = KERNEL_ALPHAS,
    linear_alphas: Sequence[float] = LINEAR_ALPHAS,
    seed: int = 0,
) -> CeilingResult:
    """Linear and nonlinear-reference encoding EV of every unit, nested cross-validated.

    params : (n, d) face parameters; responses : (n, k) units (each must vary).
    The rows are split in ``folds`` contiguous outer folds. On the training folds each
    candidate (the linear ridge on the parameters; RBF kernel ridge on ``n_centres``
    Nystroem features of the standardised parameters for each gamma in ``bandwidths``,
    in units of 1 / median squared distance) gets its leave-one-out error at its best
    penalty, per unit; the reference takes, per unit, the candidate with the smallest,
    refitted on the training folds, to predict the held-out fold. The Nystroem centres
    depend on the parameters only, never on the responses.
    """
    x, y = matched_rows(params, responses, "params", "responses")
    if bool((y.std(0) == 0).any()):
        raise ValueError("every unit must vary across the faces (drop silent units)")
    n = x.shape[0]
    if not isinstance(folds, int) or not 2 <= folds <= n // 2:
        raise ValueError(
            f"folds must be an int between 2 and n/2 = {n // 2}, got {folds}"
        )
    if n_centres >= n * (folds - 1) // folds:
        raise ValueError(
            f"n_centres ({n_centres}) must be below the training rows per fold"
        )
    z = x.numpy()
    z = (z - z.mean(0)) / z.std(0).clip(1e-12)
    sample = z[np.random.default_rng(seed).permutation(n)[:500]]
    sq = ((sample[:, None] - sample[None]) ** 2).sum(-1)
    scale = 1.0 / np.median(sq[np.triu_indices(len(sample), 1)])
    candidates = [(torch.from_numpy(z), linear_alphas)]
    candidates += [
        (_nystroem(z, b * scale, n_centres, seed), kernel_alphas) for b in bandwidths
    ]
    models = ["linear"] + [f"rbf, gamma {b:g}/median" for b in bandwidths]
    k = y.shape[1]
    predictions = torch.empty(len(candidates), n, k, dtype=torch.float64)
    chosen = np.empty((folds, k), dtype=np.int64)
    for fold, test in enumerate(linalg.kfold_indices(n, folds)):
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        inner_error = torch.empty(len(candidates), k, dtype=torch.float64)
        for c, (features, alphas) in enumerate(candidates):
            result = linalg.ridge_cv(
                features[train],
                y[train],
                penalty_grid(features[train], alphas, True),
                cv="loo",
            )
            inner_error[c] = result.cv_mse.min(0).values
            predictions[c, test] = result.predict(features[test])
        chosen[fold] = inner_error.argmin(0).numpy()
    reference = torch.empty_like(y)
    for fold, test in enumerate(linalg.kfold_indices(n, folds)):
        pick = torch.from_numpy(chosen[fold])
        reference[test] = predictions[pick, test[:, None], torch.arange(k)]
    return CeilingResult(
        linear_ev=explained_variance(y, predictions[0]).numpy(),
        reference_ev=explained_variance(y, reference).numpy(),
        chosen=chosen,
        models=models,
    )


def ceiling_ratio(linear_ev, reference_ev, n_boot: int = 1000, seed: int = 0):
    """Mean linear EV over mean reference EV across units, with a 95% bootstrap interval
    over units: ``(ratio, low, high)``. The reference's mean must be positive."""
    from .bootstrap import bootstrap_groups, interval

    linear = np.asarray(linear_ev, dtype=np.float64)
    reference = np.asarray(reference_ev, dtype=np.float64)
    if linear.shape != reference.shape or linear.ndim != 1 or len(linear) < 2:
        raise ValueError("linear_ev and reference_ev must be 1-d, one value per unit")
    if not (np.isfinite(linear).all() and np.isfinite(reference).all()):
        raise ValueError("EVs must be finite")
    if reference.mean() <= 0:
        raise ValueError(
            "the reference explains nothing on average: no ceiling to compare"
        )
    draws = bootstrap_groups(
        lambda rows: linear[rows].mean() / reference[rows].mean(),
        np.arange(len(linear)),
        n_boot,
        seed,
    )
    low, high = interval(draws)
    return float(linear.mean() / reference.mean()), low, high


def ratio_table(units: pd.DataFrame, by: Sequence[str] = ("network", "layer", "model")
                ) -> pd.DataFrame:
    """:func:`ceiling_ratio` per group of ``units`` (one row per unit with the columns
    ``by``, ``linear`` and ``reference`` EV), groups in their first order. One row per
    group: the ``by`` columns, ``units``, the mean ``linear`` and ``reference`` EV, the
    ``ratio`` and its 95% interval ``low``, ``high``."""
    missing = {*by, "linear", "reference"} - set(units.columns)
    if missing:
        raise ValueError(f"units lacks the columns {sorted(missing)}")
    rows = []
    for key, part in units.groupby(list(by), sort=False):
        ratio, low, high = ceiling_ratio(part.linear, part.reference)
        rows.append({**dict(zip(by, key)), "units": len(part),
                     "linear": part.linear.mean(), "reference": part.reference.mean(),
                     "ratio": ratio, "low": low, "high": high})
    return pd.DataFrame(rows)
