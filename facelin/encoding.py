"""Linear encoding and decoding of unit responses in the face-parameter space.

Chang & Tsao (2017) showed that face cells are *encoded* linearly by a face's shape and
appearance parameters (each cell's response is ``w . x + b``) and that the parameters
are
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
from ._validation import float_matrix, matched_rows

__all__ = [
    "LinearEncoder",
    "LinearDecoder",
    "explained_variance",
    "nested_cv_predictions",
    "pooled_explained_variance",
    "identification_accuracy",
    "identification_curve",
    "units_for_accuracy",
    "layer_summary",
    "subset_decoding",
    "between_face_share",
    "identification_from_distances",
    "bootstrap_groups",
    "interval",
    "median_interval",
    "units_for_accuracy_interval",
    "random_tanh_map",
    "PixelPCA",
    "claim1_verdict",
    "VERDICT_RULE",
    "VERDICTS",
    "verdict_rule",
    "DEFAULT_ALPHAS",
    "penalty_grid",
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
            x[train], y[train], penalty_grid(x[train], alphas, relative_alphas), cv="loo"
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
            self.ev_ = explained_variance(y, predictions)
        else:
            result = linalg.ridge_cv(
                x, y, penalty_grid(x, self.alphas, self.relative_alphas), cv=self.cv
            )
            self.cv_predictions_ = result.cv_predictions
            self.ev_ = result.explained_variance
        self.result_ = result
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.alpha_ = result.alpha
        return self

    def predict(self, x) -> torch.Tensor:
        if not hasattr(self, "coef_"):
            raise RuntimeError("call fit before predict")
        x = float_matrix(x, "input")
        if x.shape[1] != self.coef_.shape[0]:
            raise ValueError(
                f"expected {self.coef_.shape[0]} input columns, got {x.shape[1]}"
            )
        return x @ self.coef_ + self.intercept_


class LinearEncoder(_RidgeMap):
    """Each unit's response as a linear function of the parameters, ``r = W x + b``.

    ``fit(params, responses)`` chooses a ridge penalty per unit from ``alphas``
    (relative to the mean eigenvalue of the parameters' Gram matrix) by ``cv``-fold
    cross-validation. ``ev_`` holds each unit's cross-validated explained variance
    ``1 - SSE/SST`` of its held-out predictions, ``cv_predictions_`` those predictions.
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
    deficient: it then returns the minimum-norm solution instead of failing. ``ev_`` is
    the cross-validated explained variance of each parameter dimension; ``nested``
    as for :class:`LinearEncoder`.
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


def _candidate_sets(n: int, n_candidates: int, n_trials: int, gen: torch.Generator):
    """(n_trials, n_candidates) face indices without repeats per row; column 0 is the
    target."""
    return torch.rand(n_trials, n, generator=gen).argsort(dim=1)[:, :n_candidates]


def identification_accuracy(
    decoded,
    true,
    n_candidates: int | Sequence[int] = 2,
    n_trials: int = 2000,
    seed: int = 0,
):
    """Chang & Tsao's identification test: a held-out face's decoded parameters are
    compared with the true parameters of that face and ``n_candidates - 1`` distractors
    drawn at random; the trial is correct if the true face is the nearest (Euclidean).
    Returns the fraction correct (chance is ``1 / n_candidates``), one value per entry
    when ``n_candidates`` is a sequence. ``decoded`` may hold several decodings at once,
    (draws, n, d): then the result has a leading draws axis.
    """
    decoded_t = (
        decoded.detach().cpu().double()
        if isinstance(decoded, torch.Tensor)
        else torch.as_tensor(np.asarray(decoded), dtype=torch.float64)
    )
    true_t = float_matrix(true, "true")
    batched = decoded_t.dim() == 3
    if not batched:
        decoded_t = decoded_t[None]
    if decoded_t.shape[1:] != true_t.shape:
        raise ValueError(
            f"decoded has shape {tuple(decoded_t.shape[1:])} per draw but true "
            f"has {tuple(true_t.shape)}"
        )
    if not torch.isfinite(decoded_t).all():
        raise ValueError("decoded holds NaN or Inf")
    n = true_t.shape[0]
    counts = [n_candidates] if np.isscalar(n_candidates) else list(n_candidates)
    if any(not 2 <= c <= n for c in counts):
        raise ValueError(
            f"n_candidates must be between 2 and the number of faces ({n})"
        )
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(decoded_t.shape[0], len(counts), dtype=torch.float64)
    for j, count in enumerate(counts):
        sets = _candidate_sets(n, count, n_trials, gen)  # (trials, count)
        target = sets[:, 0]
        probe = decoded_t[:, target]  # (draws, trials, d)
        candidates = true_t[sets]  # (trials, count, d)
        # |c|^2 - 2 p.c ranks the candidates as |p - c|^2 does, without the
        # (draws, trials, count, d) difference array
        dist = candidates.square().sum(-1) - 2 * torch.einsum(
            "btd,tcd->btc", probe, candidates
        )
        out[:, j] = (dist.argmin(-1) == 0).double().mean(1)
    result = out if batched else out[0]
    return float(result) if result.numel() == 1 and not batched else result.numpy()


def _subset_decoded(r, x, subsets, folds, ridge):
    """(draws, n, d) held-out decodings of x from each column subset of r, one batched
    solve per fold."""
    n = r.shape[0]
    decoded = torch.empty(subsets.shape[0], n, x.shape[1], dtype=torch.float64)
    for test in folds:
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        coef, intercept = linalg.subset_lstsq(
            r[train], x[train], subsets, ridge=ridge, return_intercept=True
        )
        r_test = r[test][:, subsets].permute(1, 0, 2)  # (draws, n_test, size)
        decoded[:, test] = r_test @ coef + intercept[:, None, :]
    return decoded


def identification_curve(
    responses,
    params,
    unit_counts: Sequence[int],
    n_draws: int = 100,
    n_candidates: Sequence[int] = (2, 50),
    cv: int = 10,
    ridge: float = 1e-6,
    n_trials: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Identification accuracy as a function of the number of units decoded from.

    For each size in ``unit_counts``, ``n_draws`` random subsets of the units are drawn;
    for each subset a linear decoder (with intercept, ridge ``ridge`` relative to the
    mean eigenvalue of the responses' Gram matrix) is fitted on ``cv - 1`` folds of the
    faces and decodes the held-out fold; the decoded parameters enter
    :func:`identification_accuracy`. All subsets of a fold are solved at once by
    :func:`facelin.linalg.subset_lstsq` from one Gram matrix. Returns a long table with
    columns ``units``, ``draw``, ``n_candidates``, ``accuracy``.
    """
    r, x = matched_rows(responses, params, "responses", "params")
    n, m = r.shape
    if any(not 1 <= s <= m for s in unit_counts):
        raise ValueError(
            f"unit_counts must lie between 1 and the number of units ({m})"
        )
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
        decoded = _subset_decoded(r, x, subsets, folds, ridge * scale)
        accuracy = identification_accuracy(
            decoded, x, n_candidates, n_trials, seed=seed + size
        )
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
    """Columns that vary across faces (a ReLU unit silent for every face carries no
    code)."""
    return responses[:, responses.std(0) > 0]


def layer_summary(
    params,
    responses,
    n_shape: int = 25,
    cv: int = 10,
    decoder_alphas: Sequence[float] | None = DEFAULT_ALPHAS,
    n_candidates: Sequence[int] = (2, 50),
    seed: int = 0,
    nested: bool = False,
) -> dict:
    """Claim 1 for one set of units: encoding and decoding scores, cross-validated.

    Returns a dict with the median, mean and variance-weighted encoding EV over units
    (``encoding_ev``, ``encoding_ev_mean``, ``encoding_ev_pooled``), the decoding EV
    averaged over the shape and appearance dimensions (``decoding_ev_shape``,
    ``decoding_ev_appearance``) and over all (``decoding_ev_mean``), the
    variance-weighted decoding EV of each block and of all dimensions (``pooled_ev_*``),
    identification accuracy of the decoded parameters among ``n_candidates``
    (``identification_<N>``) and the number of varying units. Units that never vary are
    dropped first. ``nested`` chooses every penalty inside the training folds only (then
    ``cv`` outer folds, leave-one-out inside).
    """
    x = float_matrix(params, "params")
    r = _varying(float_matrix(responses, "responses"))
    if r.shape[1] == 0:
        raise ValueError("no unit varies across the faces")
    encoder = LinearEncoder(cv=cv, nested=nested).fit(x, r)
    if nested and decoder_alphas is None:
        raise ValueError(
            "nested cross-validation chooses a penalty: give decoder_alphas"
        )
    decoder = LinearDecoder(alphas=decoder_alphas, cv=cv, nested=nested).fit(r, x)
    decoded = decoder.cv_predictions_
    accuracy = identification_accuracy(decoded, x, list(n_candidates), seed=seed)
    out = {
        "units": r.shape[1],
        "encoding_ev": float(encoder.ev_.median()),
        "encoding_ev_mean": float(encoder.ev_.mean()),
        "encoding_ev_pooled": pooled_explained_variance(r, encoder.cv_predictions_),
        "decoding_ev_shape": float(decoder.ev_[:n_shape].mean()),
        "decoding_ev_appearance": float(decoder.ev_[n_shape:].mean()),
        "decoding_ev_mean": float(decoder.ev_.mean()),
        "pooled_ev_shape": pooled_explained_variance(
            x[:, :n_shape], decoded[:, :n_shape]
        ),
        "pooled_ev_appearance": pooled_explained_variance(
            x[:, n_shape:], decoded[:, n_shape:]
        ),
        "pooled_ev": pooled_explained_variance(x, decoded),
    }
    out.update(
        {f"identification_{c}": float(a) for c, a in zip(n_candidates, accuracy)}
    )
    return out


# --------------------------------------------------------------------------------------
# Tests that tell a face code from a smooth function of the image
# --------------------------------------------------------------------------------------


def subset_decoding(
    responses,
    params,
    size: int,
    n_draws: int = 20,
    cv: int = 5,
    ridge: float = 1e-6,
    n_candidates: Sequence[int] = (2, 50),
    seed: int = 0,
) -> pd.DataFrame:
    """Decoding from ``n_draws`` random subsets of ``size`` units (all units when the
    population has no more): for each subset a linear decoder (ridge ``ridge`` relative
    to the mean eigenvalue of the responses' Gram matrix) is fitted on ``cv - 1`` folds
    and decodes the held-out fold. One row per draw: ``units``, ``draw``, the mean and
    the variance-weighted (``pooled_ev``) EV over the parameter dimensions, and
    ``identification_<N>`` for each N in ``n_candidates``."""
    r = _varying(float_matrix(responses, "responses"))
    r, x = matched_rows(r, params, "responses", "params")
    n, m = r.shape
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    size = min(int(size), m)
    gen = torch.Generator().manual_seed(seed)
    subsets = torch.rand(n_draws, m, generator=gen).argsort(dim=1)[:, :size]
    scale = float((r - r.mean(0)).square().sum() / m)
    decoded = _subset_decoded(r, x, subsets, linalg.kfold_indices(n, cv), ridge * scale)
    accuracy = identification_accuracy(decoded, x, list(n_candidates), seed=seed)
    rows = []
    for draw in range(n_draws):
        row = {
            "units": size,
            "draw": draw,
            "mean_ev": float(explained_variance(x, decoded[draw]).mean()),
            "pooled_ev": pooled_explained_variance(x, decoded[draw]),
        }
        row.update(
            {
                f"identification_{c}": float(a)
                for c, a in zip(n_candidates, accuracy[draw])
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def between_face_share(responses, faces) -> torch.Tensor:
    """Each unit's share of response variance that lies between faces rather than within
    a face, from several renders of every face (one-way random-effects ANOVA, the
    intraclass correlation ICC(1)).

    responses : (n_images, k); faces : (n_images,) the face of each render, every face
    rendered equally often (at least twice). With ``m`` renders per face the
    between-face variance component is ``(MS_between - MS_within) / m`` and the share is
    ``var_between / (var_between + MS_within)``: 1 when renders of a face agree, about 0
    when a unit's response owes nothing to the face (it can dip below 0 by chance).
    Returns (k,).
    """
    r = float_matrix(responses, "responses")
    faces = np.asarray(faces)
    if faces.shape != (r.shape[0],):
        raise ValueError(
            f"faces must hold one label per row of responses ({r.shape[0]}), "
            f"got shape {faces.shape}"
        )
    labels, index, counts = np.unique(faces, return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1 or counts[0] < 2 or len(labels) < 2:
        raise ValueError(
            "every face must be rendered equally often, at least twice, "
            "and there must be at least two faces"
        )
    per_face, n_faces = int(counts[0]), len(labels)
    index = torch.as_tensor(index)
    means = torch.zeros(n_faces, r.shape[1], dtype=torch.float64).index_add_(
        0, index, r
    )
    means /= per_face
    ms_within = (r - means[index]).square().sum(0) / (n_faces * (per_face - 1))
    ms_between = per_face * (means - r.mean(0)).square().sum(0) / (n_faces - 1)
    var_between = (ms_between - ms_within) / per_face
    total = var_between + ms_within
    if bool((total <= 0).any()):
        raise ValueError("a unit does not vary across the renders")
    return var_between / total


def identification_from_distances(
    distances,
    n_candidates: int | Sequence[int] = 2,
    targets=None,
    n_trials: int = 2000,
    seed: int = 0,
):
    """Identification from a distance table: ``distances[i, j]`` from probe i (a
    decoded or reconstructed face, a render) to reference j (a true face); probe i
    belongs to reference ``targets[i]`` (default ``i``). Each trial draws a probe and
    ``N - 1`` other references at random and is correct when the probe is strictly
    nearer to its own reference than to every distractor (ties count as errors).
    Returns the fraction correct, one per N when ``n_candidates`` is a sequence."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or not np.isfinite(d).all():
        raise ValueError("distances must be a finite 2-d array (probes x references)")
    n_probes, n_refs = d.shape
    targets = np.arange(n_probes) if targets is None else np.asarray(targets)
    if targets.shape != (n_probes,) or targets.min() < 0 or targets.max() >= n_refs:
        raise ValueError("targets must give one reference index per probe")
    counts = [n_candidates] if np.isscalar(n_candidates) else list(n_candidates)
    if any(not 2 <= c <= n_refs for c in counts):
        raise ValueError(
            f"n_candidates must be between 2 and the references ({n_refs})"
        )
    rng = np.random.default_rng(seed)
    out = []
    for count in counts:
        probes = rng.integers(n_probes, size=n_trials)
        own = targets[probes]
        # distractors: a random order of the references with the probe's own one last
        keys = rng.random((n_trials, n_refs))
        keys[np.arange(n_trials), own] = 2.0
        distractors = np.argsort(keys, axis=1)[:, : count - 1]
        nearest = d[probes[:, None], distractors].min(1)
        out.append(float(np.mean(d[probes, own] < nearest)))
    return out[0] if np.isscalar(n_candidates) else np.array(out)


def bootstrap_groups(
    statistic, groups, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """``statistic(rows)`` on ``n_boot`` resamples of whole groups with replacement
    (every row of a drawn group comes along): rows are indices into the data the
    statistic closes over. ``groups`` (n,) labels the rows (``np.arange(n)`` resamples
    single rows, e.g. units). Returns the (n_boot, ...) stacked statistics."""
    groups = np.asarray(groups)
    labels, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        chosen = rng.integers(len(labels), size=len(labels))
        draws.append(statistic(np.concatenate([members[g] for g in chosen])))
    return np.asarray(draws)


def interval(draws, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap draws (first axis)."""
    tail = 50 * (1 - level)
    low, high = np.percentile(np.asarray(draws), [tail, 100 - tail], axis=0)
    return float(low), float(high)


def median_interval(
    values, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """The median of ``values`` (one per unit, or per draw) with a 95% bootstrap
    interval over them: ``(median, low, high)``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2 or not np.isfinite(values).all():
        raise ValueError("values must hold at least two finite numbers")
    draws = bootstrap_groups(
        lambda rows: np.median(values[rows]), np.arange(len(values)), n_boot, seed
    )
    return (float(np.median(values)), *interval(draws))


def units_for_accuracy_interval(
    curve: pd.DataFrame,
    target: float = 0.8,
    n_candidates: int = 2,
    n_boot: int = 1000,
    seed: int = 0,
):
    """:func:`units_for_accuracy` with a 95% interval from resampling the subset draws
    of each size: ``(units, low, high)``; an end is NaN where resamples do not reach the
    target (more than 2.5% of them)."""
    part = curve[curve.n_candidates == n_candidates]
    table = part.pivot(index="draw", columns="units", values="accuracy")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        resampled = table.iloc[rng.integers(len(table), size=len(table))]
        long = resampled.melt(var_name="units", value_name="accuracy")
        long["n_candidates"] = n_candidates
        values.append(units_for_accuracy(long, target, n_candidates))
    values = np.asarray(values)
    low, high = (
        np.nanpercentile(values, [2.5, 97.5])
        if np.isfinite(values).any()
        else (np.nan, np.nan)
    )
    if np.isnan(values).mean() > 0.025:
        high = float("nan")
    return units_for_accuracy(curve, target, n_candidates), float(low), float(high)


def random_tanh_map(
    params, out_dims: int = 50, hidden: int = 100, gain: float = 2.0, seed: int = 0
) -> np.ndarray:
    """A fixed random nonlinear reparametrisation: ``tanh(W2 tanh(W1 z + b1) + b2)`` of
    the standardised parameters z, with Gaussian weights of variance ``gain**2 /
    fan_in`` and biases N(0, 0.5**2) drawn with ``seed``. A gain of 2 keeps the tanh
    units well inside their curved range. Returns (n, out_dims)."""
    x = np.asarray(params, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("params must be a finite 2-d array (faces x dimensions)")
    rng = np.random.default_rng(seed)
    z = (x - x.mean(0)) / x.std(0)
    w1 = rng.standard_normal((x.shape[1], hidden)) * gain / np.sqrt(x.shape[1])
    w2 = rng.standard_normal((hidden, out_dims)) * gain / np.sqrt(hidden)
    h = np.tanh(z @ w1 + 0.5 * rng.standard_normal(hidden))
    return np.tanh(h @ w2 + 0.5 * rng.standard_normal(out_dims))


class PixelPCA:
    """The pixel control as a fitted map: grey pixels of (n, 3, S, S) chips projected on
    the top ``n_components`` principal components of the fitting chips, so renders never
    seen in the fit can be projected too."""

    def __init__(self, n_components: int):
        self.n_components = n_components

    @staticmethod
    def _grey(chips) -> torch.Tensor:
        chips = torch.as_tensor(chips)
        if chips.dim() != 4 or chips.shape[1] != 3:
            raise ValueError(f"chips must be (n, 3, S, S), got {tuple(chips.shape)}")
        return chips.float().mean(1).flatten(1)

    def fit(self, chips) -> "PixelPCA":
        grey = self._grey(chips)
        if not 1 <= self.n_components < min(grey.shape):
            raise ValueError(
                f"n_components must lie between 1 and {min(grey.shape) - 1}"
            )
        self.mean_ = grey.mean(0)
        centred = grey - self.mean_
        # Exact PCA through the (faces x faces) Gram matrix: for 2,000 chips of 22,500
        # pixels several times faster than scikit-learn's randomized PCA to 512
        # components.
        evals, evecs = torch.linalg.eigh((centred @ centred.T).double())
        top = evals.argsort(descending=True)[: self.n_components]
        scale = evals[top].clamp_min(1e-12).sqrt()
        self.components_ = (centred.T.double() @ evecs[:, top]) / scale  # (pixels, k)
        return self

    def transform(self, chips) -> torch.Tensor:
        """(n, n_components) float64 scores."""
        if not hasattr(self, "components_"):
            raise RuntimeError("call fit before transform")
        return (self._grey(chips) - self.mean_).double() @ self.components_


VERDICT_RULE = (
    "Per network, from its descriptor layer. (A) linear is near the ceiling: the lower "
    "95% bound of the linear / nonlinear encoding EV ratio is at least {ceiling_min}. "
    "(B) the parameters are decoded: the lower 95% bound of the variance-weighted "
    "decoding EV is at least {decoding_min}. (C) the code is a face code: a decoder "
    "fitted on clean renders decodes nuisance renders better from the trained network "
    "than from its untrained control and than from pixel PCs (matched feature count), "
    "the lower 95% bounds of both differences in variance-weighted EV above {margin}. "
    "'holds' when A, B and C; 'partly holds' when B and one of A or C; 'does not hold' "
    "otherwise."
)
VERDICTS = ("holds", "partly holds", "does not hold")


def verdict_rule(
    ceiling_min: float = 0.8, decoding_min: float = 0.5, margin: float = 0.0
) -> str:
    """:data:`VERDICT_RULE` with its thresholds filled in."""
    return VERDICT_RULE.format(
        ceiling_min=ceiling_min, decoding_min=decoding_min, margin=margin
    )


def claim1_verdict(
    ceiling_ratio_low: float,
    decoding_ev_low: float,
    nuisance_margin_low: dict,
    ceiling_min: float = 0.8,
    decoding_min: float = 0.5,
    margin: float = 0.0,
) -> str:
    """Claim 1's verdict for one network by :func:`verdict_rule` (with the same
    thresholds). ``nuisance_margin_low`` holds the lower bounds of (trained - control)
    nuisance-decoding EV for the controls ``"untrained"`` and ``"pixels"``."""
    values = {
        "ceiling_ratio_low": ceiling_ratio_low,
        "decoding_ev_low": decoding_ev_low,
        **{f"nuisance_margin_low[{k}]": v for k, v in nuisance_margin_low.items()},
    }
    for name, value in values.items():
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    missing = {"untrained", "pixels"} - set(nuisance_margin_low)
    if missing:
        raise ValueError(f"nuisance_margin_low lacks the controls {sorted(missing)}")
    near_ceiling = ceiling_ratio_low >= ceiling_min
    decoded = decoding_ev_low >= decoding_min
    face_code = all(nuisance_margin_low[k] > margin for k in ("untrained", "pixels"))
    if decoded and near_ceiling and face_code:
        return "holds"
    if decoded and (near_ceiling or face_code):
        return "partly holds"
    return "does not hold"
