"""Linear encoding and decoding of unit responses in the face-parameter space.

Chang & Tsao (2017) showed that face cells are *encoded* linearly by a face's shape and
appearance parameters (each cell's response is ``w . x + b``) and that the parameters are
*decoded* linearly from a population (``x = B r + c``), well enough to reconstruct the
face and to pick it out among distractors. This module fits both directions, scores them
on held-out faces, and runs the identification test over random unit subsets.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from . import linalg

DEFAULT_ALPHAS = tuple(np.logspace(-3, 5, 17).tolist())


def _as_matrix(x, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a float array, got {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-d (faces x columns), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:10].tolist()
        raise ValueError(f"{name} holds NaN or Inf (rows {rows})")
    return t


def _check_pair(x, y, x_name, y_name):
    x, y = _as_matrix(x, x_name), _as_matrix(y, y_name)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x_name} has {x.shape[0]} faces but {y_name} has {y.shape[0]}")
    return x, y


class _RidgeMap:
    """Ridge regression with the penalty chosen per output by cross-validation."""

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, cv: int | str = 10,
                 relative_alphas: bool = True):
        self.alphas = alphas
        self.cv = cv
        self.relative_alphas = relative_alphas

    def _fit(self, x, y):
        alphas = torch.as_tensor(self.alphas, dtype=torch.float64)
        if self.relative_alphas:
            # Penalties relative to the mean eigenvalue of the centred Gram matrix, so one
            # grid serves inputs of any scale (face parameters, ReLU units, descriptors).
            xc = x - x.mean(0)
            alphas = alphas * (xc.square().sum() / x.shape[1]).clamp_min(1e-300)
        result = linalg.ridge_cv(x, y, alphas, cv=self.cv)
        self.result_ = result
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.alpha_ = result.alpha
        self.cv_predictions_ = result.cv_predictions
        self.ev_ = result.explained_variance
        return self

    def predict(self, x) -> torch.Tensor:
        if not hasattr(self, "coef_"):
            raise RuntimeError("call fit before predict")
        x = _as_matrix(x, "input")
        if x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"expected {self.coef_.shape[0]} input columns, got {x.shape[1]}")
        return x @ self.coef_ + self.intercept_


class LinearEncoder(_RidgeMap):
    """Each unit's response as a linear function of the face parameters, ``r = W x + b``.

    ``fit(params, responses)`` chooses a ridge penalty per unit from ``alphas`` (relative
    to the mean eigenvalue of the parameters' Gram matrix) by ``cv``-fold
    cross-validation. ``ev_`` holds each unit's cross-validated explained variance
    ``1 - SSE/SST`` of its held-out predictions, ``cv_predictions_`` those predictions.
    """

    def fit(self, params, responses):
        x, y = _check_pair(params, responses, "params", "responses")
        return self._fit(x, y)


class LinearDecoder(_RidgeMap):
    """The face parameters as a linear function of a population's responses,
    ``x = B r + c``.

    ``cv="loo"`` is Chang & Tsao's leave-one-face-out protocol. With ``alphas=None`` the
    decoder is their ordinary least squares, up to a vanishing ridge (1e-9 of the mean
    eigenvalue) that makes it well defined when a layer's responses are (nearly) rank
    deficient: it then returns the minimum-norm solution instead of failing. ``ev_`` is
    the cross-validated explained variance of each parameter dimension.
    """

    def __init__(self, alphas: Sequence[float] | None = DEFAULT_ALPHAS, cv: int | str = "loo"):
        super().__init__(alphas=(1e-9,) if alphas is None else alphas, cv=cv)

    def fit(self, responses, params):
        x, y = _check_pair(responses, params, "responses", "params")
        return self._fit(x, y)


def pooled_explained_variance(true, predicted) -> float:
    """Variance-weighted explained variance over dimensions: 1 - total SSE / total SST
    (the later, low-variance components weigh little, unlike a plain mean of EVs)."""
    true, predicted = _check_pair(true, predicted, "true", "predicted")
    sse = (true - predicted).square().sum()
    sst = (true - true.mean(0)).square().sum()
    return float(1 - sse / sst)


def _candidate_sets(n: int, n_candidates: int, n_trials: int, gen: torch.Generator):
    """(n_trials, n_candidates) face indices without repeats per row; column 0 is the
    target."""
    return torch.rand(n_trials, n, generator=gen).argsort(dim=1)[:, :n_candidates]


def identification_accuracy(decoded, true, n_candidates: int | Sequence[int] = 2,
                            n_trials: int = 2000, seed: int = 0):
    """Chang & Tsao's identification test: a held-out face's decoded parameters are
    compared with the true parameters of that face and ``n_candidates - 1`` distractors
    drawn at random; the trial is correct if the true face is the nearest (Euclidean).
    Returns the fraction correct (chance is ``1 / n_candidates``), one value per entry
    when ``n_candidates`` is a sequence. ``decoded`` may hold several decodings at once,
    (draws, n, d): then the result has a leading draws axis.
    """
    decoded_t = decoded.detach().cpu().double() if isinstance(decoded, torch.Tensor) else \
        torch.as_tensor(np.asarray(decoded), dtype=torch.float64)
    true_t = _as_matrix(true, "true")
    batched = decoded_t.dim() == 3
    if not batched:
        decoded_t = decoded_t[None]
    if decoded_t.shape[1:] != true_t.shape:
        raise ValueError(f"decoded has shape {tuple(decoded_t.shape[1:])} per draw but true "
                         f"has {tuple(true_t.shape)}")
    if not torch.isfinite(decoded_t).all():
        raise ValueError("decoded holds NaN or Inf")
    n = true_t.shape[0]
    counts = [n_candidates] if np.isscalar(n_candidates) else list(n_candidates)
    if any(not 2 <= c <= n for c in counts):
        raise ValueError(f"n_candidates must be between 2 and the number of faces ({n})")
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(decoded_t.shape[0], len(counts), dtype=torch.float64)
    for j, count in enumerate(counts):
        sets = _candidate_sets(n, count, n_trials, gen)  # (trials, count)
        target = sets[:, 0]
        probe = decoded_t[:, target]  # (draws, trials, d)
        candidates = true_t[sets]  # (trials, count, d)
        dist = (probe[:, :, None, :] - candidates[None]).square().sum(-1)
        out[:, j] = (dist.argmin(-1) == 0).double().mean(1)
    result = out if batched else out[0]
    return float(result) if result.numel() == 1 and not batched else result.numpy()


def identification_curve(responses, params, unit_counts: Sequence[int], n_draws: int = 100,
                         n_candidates: Sequence[int] = (2, 50), cv: int = 10,
                         ridge: float = 1e-6, n_trials: int = 1000, seed: int = 0,
                         progress: bool = True) -> pd.DataFrame:
    """Identification accuracy as a function of the number of units decoded from.

    For each size in ``unit_counts``, ``n_draws`` random subsets of the units are drawn;
    for each subset a linear decoder (with intercept, ridge ``ridge`` relative to the mean
    eigenvalue of the responses' Gram matrix) is fitted on ``cv - 1`` folds of the faces
    and decodes the held-out fold; the decoded parameters enter
    :func:`identification_accuracy`. All subsets of a fold are solved at once by
    :func:`facelin.linalg.subset_lstsq` from one Gram matrix. Returns a long table with
    columns ``units``, ``draw``, ``n_candidates``, ``accuracy``.
    """
    r, x = _check_pair(responses, params, "responses", "params")
    n, m = r.shape
    if any(not 1 <= s <= m for s in unit_counts):
        raise ValueError(f"unit_counts must lie between 1 and the number of units ({m})")
    gen = torch.Generator().manual_seed(seed)
    folds = linalg.kfold_indices(n, cv)
    scale = float((r - r.mean(0)).square().sum() / m)
    rows = []
    sizes = list(unit_counts)
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(sizes, desc="identification vs number of units")
    for size in sizes:
        subsets = torch.rand(n_draws, m, generator=gen).argsort(dim=1)[:, :size]
        decoded = torch.empty(n_draws, n, x.shape[1], dtype=torch.float64)
        for test in folds:
            train = torch.ones(n, dtype=torch.bool)
            train[test] = False
            coef, intercept = linalg.subset_lstsq(r[train], x[train], subsets,
                                                  ridge=ridge * scale, return_intercept=True)
            r_test = r[test][:, subsets].permute(1, 0, 2)  # (draws, n_test, size)
            decoded[:, test] = r_test @ coef + intercept[:, None, :]
        accuracy = identification_accuracy(decoded, x, n_candidates, n_trials,
                                           seed=seed + size)
        for draw in range(n_draws):
            for j, count in enumerate(n_candidates):
                rows.append((size, draw, count, accuracy[draw, j]))
    return pd.DataFrame(rows, columns=["units", "draw", "n_candidates", "accuracy"])


def units_for_accuracy(curve: pd.DataFrame, target: float = 0.8, n_candidates: int = 2):
    """The smallest number of units whose mean accuracy reaches ``target`` (linear
    interpolation between the sizes measured); NaN when no size reaches it."""
    mean = curve[curve.n_candidates == n_candidates].groupby("units").accuracy.mean()
    sizes, acc = mean.index.to_numpy(dtype=float), mean.to_numpy()
    above = np.nonzero(acc >= target)[0]
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(sizes[0])
    t = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    return float(sizes[i - 1] + t * (sizes[i] - sizes[i - 1]))


def _varying(responses: torch.Tensor) -> torch.Tensor:
    """Columns that vary across faces (a ReLU unit silent for every face carries no code)."""
    return responses[:, responses.std(0) > 0]


def layer_summary(params, responses, n_shape: int = 25, cv: int = 10,
                  decoder_alphas: Sequence[float] | None = DEFAULT_ALPHAS,
                  n_candidates: Sequence[int] = (2, 50), seed: int = 0) -> dict:
    """Claim 1 for one set of units: encoding and decoding scores, cross-validated.

    Returns a dict with the median encoding EV over units (``encoding_ev``), the decoding
    EV averaged over the shape and appearance dimensions (``decoding_ev_shape``,
    ``decoding_ev_appearance``), the variance-weighted decoding EV of each block and of
    all dimensions (``pooled_ev_*``), identification accuracy of the decoded parameters
    among ``n_candidates`` (``identification_<N>``) and the number of varying units.
    Units that never vary are dropped first.
    """
    x = _as_matrix(params, "params")
    r = _varying(_as_matrix(responses, "responses"))
    if r.shape[1] == 0:
        raise ValueError("no unit varies across the faces")
    encoder = LinearEncoder(cv=cv).fit(x, r)
    decoder = LinearDecoder(alphas=decoder_alphas, cv=cv).fit(r, x)
    decoded = decoder.cv_predictions_
    accuracy = identification_accuracy(decoded, x, list(n_candidates), seed=seed)
    out = {
        "units": r.shape[1],
        "encoding_ev": float(encoder.ev_.median()),
        "decoding_ev_shape": float(decoder.ev_[:n_shape].mean()),
        "decoding_ev_appearance": float(decoder.ev_[n_shape:].mean()),
        "pooled_ev_shape": pooled_explained_variance(x[:, :n_shape], decoded[:, :n_shape]),
        "pooled_ev_appearance": pooled_explained_variance(x[:, n_shape:], decoded[:, n_shape:]),
        "pooled_ev": pooled_explained_variance(x, decoded),
    }
    out.update({f"identification_{c}": float(a) for c, a in zip(n_candidates, accuracy)})
    return out
