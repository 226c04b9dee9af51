"""Linear encoding (parameters -> responses) and decoding (responses -> parameters)
by cross-validated ridge, scored by explained variance on held-out faces."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import linalg
from .._validation import float_matrix, matched_rows

__all__ = [
    "LinearEncoder", "LinearDecoder", "explained_variance", "nested_cv_predictions",
    "pooled_explained_variance", "DEFAULT_ALPHAS", "penalty_grid",
]


DEFAULT_ALPHAS = tuple(np.logspace(-3, 5, 17).tolist())


def penalty_grid(x: torch.Tensor, alphas, relative: bool) -> torch.Tensor:
    """The penalty grid, relative to the mean eigenvalue of x's centred Gram matrix when
    ``relative`` (so one grid serves inputs of any scale: face parameters, ReLU units,
    descriptors)."""
    alphas = torch.as_tensor(alphas, dtype=torch.float64)
    if not relative:
        return alphas
    xc = x - x.mean(0)
    return alphas * (xc.square().sum() / x.shape[1]).clamp_min(1e-300)


def explained_variance(true, predicted) -> torch.Tensor:
    """Per column ``1 - SSE/SST`` (SST about the column's mean), as
    ``sklearn.metrics.r2_score(true, predicted, multioutput="raw_values")``: (k,)."""
    true, predicted = matched_rows(true, predicted, "true", "predicted")
    if true.shape != predicted.shape:
        raise ValueError(
            f"true has shape {tuple(true.shape)} but predicted has "
            f"{tuple(predicted.shape)}"
        )
    sst = (true - true.mean(0)).square().sum(0)
    if bool((sst == 0).any()):
        raise ValueError(
            "a column of true is constant: its explained variance is undefined"
        )
    return 1 - (true - predicted).square().sum(0) / sst


def nested_cv_predictions(
    x,
    y,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    relative_alphas: bool = True,
):
    """Ridge predictions of y (n, k) from x (n, p) for held-out rows, with each target's
    penalty chosen inside the training rows only (nested cross-validation).

    The rows are split in ``folds`` contiguous outer folds; on the other folds,
    :func:`facelin.linalg.ridge_cv` picks each target's penalty by exact leave-one-out
    and fits; the held-out fold is predicted. Returns ``(predictions (n, k), alphas
    (folds, k))``: no score is computed on rows that took part in choosing a penalty.
    """
    x, y = matched_rows(x, y, "x", "y")
    n = x.shape[0]
    if not isinstance(folds, int) or not 2 <= folds <= n // 2:
        raise ValueError(
            f"folds must be an int between 2 and n/2 = {n // 2}, got {folds}"
        )
    predictions = torch.empty_like(y)
    chosen = torch.empty(folds, y.shape[1], dtype=torch.float64)
    for fold, test in enumerate(linalg.kfold_indices(n, folds)):
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        result = linalg.ridge_cv(
            x[train], y[train], penalty_grid(x[train], alphas, relative_alphas),
            cv="loo",
        )
        predictions[test] = result.predict(x[test])
        chosen[fold] = result.alpha
    return predictions, chosen


class _RidgeMap:
    """Ridge regression with the penalty chosen per output by cross-validation."""

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        cv: int | str = 10,
        relative_alphas: bool = True,
        nested: bool = False,
    ):
        if nested and not isinstance(cv, int):
            raise ValueError(
                "nested cross-validation needs a number of outer folds as cv"
            )
        self.alphas = alphas
        self.cv = cv
        self.relative_alphas = relative_alphas
        self.nested = nested

    def _fit(self, x, y):
        if self.nested:
            # Scored on outer folds whose penalty was chosen without them; the model
            # kept for new inputs is refitted on every row (penalty by leave-one-out).
            predictions, self.outer_alphas_ = nested_cv_predictions(
                x, y, self.alphas, self.cv, self.relative_alphas
            )
            result = linalg.ridge_cv(
                x, y, penalty_grid(x, self.alphas, self.relative_alphas), cv="loo"
            )
            self.cv_predictions_ = predictions
            self.explained_variance_ = explained_variance(y, predictions)
        else:
            result = linalg.ridge_cv(
                x, y, penalty_grid(x, self.alphas, self.relative_alphas), cv=self.cv
            )
            self.cv_predictions_ = result.cv_predictions
            self.explained_variance_ = result.explained_variance
        self.result_ = result
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.alpha_ = result.alpha
        return self

    def predict(self, x) -> torch.Tensor:
        if not hasattr(self, "coef_"):
            raise RuntimeError("call fit before predict")
        x = float_matrix(x, "input")
        if x.shape[1] != self.coef_.shape[1]:
            raise ValueError(
                f"expected {self.coef_.shape[1]} input columns, got {x.shape[1]}"
            )
        return x @ self.coef_.T + self.intercept_


class LinearEncoder(_RidgeMap):
    """Each unit's response as a linear function of the parameters, ``r = W x + b``.

    ``fit(params, responses)`` chooses a ridge penalty per unit from ``alphas``
    (relative to the mean eigenvalue of the parameters' Gram matrix) by ``cv``-fold
    cross-validation. ``explained_variance_`` (units,) holds each unit's cross-validated
    explained variance ``1 - SSE/SST`` of its held-out predictions, ``cv_predictions_``
    (faces, units) those predictions, ``coef_`` (units, params) and ``intercept_``
    (units,) the refitted map (scikit-learn's orientation).
    With ``nested=True`` the penalty that scores a fold is chosen without that fold
    (:func:`nested_cv_predictions`, ``cv`` outer folds): the scores then carry no
    selection bias.
    """

    def fit(self, params, responses):
        x, y = matched_rows(params, responses, "params", "responses")
        return self._fit(x, y)


class LinearDecoder(_RidgeMap):
    """The face parameters as a linear function of a population's responses,
    ``x = B r + c``.

    ``cv="loo"`` is Chang & Tsao's leave-one-face-out protocol. With ``alphas=None`` the
    decoder is their ordinary least squares, up to a vanishing ridge (1e-9 of the mean
    eigenvalue) that makes it well defined when a layer's responses are (nearly) rank
    deficient: it then returns the minimum-norm solution instead of failing.
    ``explained_variance_`` (params,) is the cross-validated explained variance of each
    parameter dimension, ``coef_`` (params, units); ``nested`` as for
    :class:`LinearEncoder`.
    """

    def __init__(
        self,
        alphas: Sequence[float] | None = DEFAULT_ALPHAS,
        cv: int | str = "loo",
        nested: bool = False,
    ):
        super().__init__(
            alphas=(1e-9,) if alphas is None else alphas, cv=cv, nested=nested
        )

    def fit(self, responses, params):
        x, y = matched_rows(responses, params, "responses", "params")
        return self._fit(x, y)


def pooled_explained_variance(true, predicted) -> float:
    """Variance-weighted explained variance over dimensions: 1 - total SSE / total SST
    (the later, low-variance components weigh little, unlike a plain mean of EVs)."""
    true, predicted = matched_rows(true, predicted, "true", "predicted")
    sse = (true - predicted).square().sum()
    sst = (true - true.mean(0)).square().sum()
    return float(1 - sse / sst)
