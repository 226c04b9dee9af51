"""Chang & Tsao's identification test: a face picked out among distractors by the
parameters decoded from random subsets of units, and how many units it takes; the
per-layer summary of encoding and decoding."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import linalg
from ..progress import progress as progress_bar
from .._validation import float_matrix, matched_rows
from .ridge import (DEFAULT_ALPHAS, LinearDecoder, LinearEncoder, explained_variance,
                    pooled_explained_variance)

__all__ = [
    "identification_accuracy", "identification_curve", "units_for_accuracy",
    "units_for_accuracy_interval", "layer_summary", "subset_decoding",
    "between_face_share", "identification_from_distances",
]


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


def _subset_decoded(r, x, subsets, folds, alpha):
    """(draws, n, d) held-out decodings of x from each column subset of r, one batched
    solve per fold."""
    n = r.shape[0]
    decoded = torch.empty(subsets.shape[0], n, x.shape[1], dtype=torch.float64)
    for test in folds:
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        coef, intercept = linalg.subset_lstsq(
            r[train], x[train], subsets, alpha=alpha, return_intercept=True
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
    relative_alpha: float = 1e-6,
    n_trials: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Identification accuracy as a function of the number of units decoded from.

    For each size in ``unit_counts``, ``n_draws`` random subsets of the units are drawn;
    for each subset a linear decoder (with intercept, ridge penalty ``relative_alpha``
    times the mean eigenvalue of the responses' Gram matrix) is fitted on ``cv - 1``
    folds of the faces and decodes the held-out fold; the decoded parameters enter
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
    sizes = progress_bar(list(unit_counts), desc="identification vs number of units",
                         enabled=progress)
    for size in sizes:
        subsets = torch.rand(n_draws, m, generator=gen).argsort(dim=1)[:, :size]
        decoded = _subset_decoded(r, x, subsets, folds, relative_alpha * scale)
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
        "encoding_ev": float(encoder.explained_variance_.median()),
        "encoding_ev_mean": float(encoder.explained_variance_.mean()),
        "encoding_ev_pooled": pooled_explained_variance(r, encoder.cv_predictions_),
        "decoding_ev_shape": float(decoder.explained_variance_[:n_shape].mean()),
        "decoding_ev_appearance": float(decoder.explained_variance_[n_shape:].mean()),
        "decoding_ev_mean": float(decoder.explained_variance_.mean()),
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
    relative_alpha: float = 1e-6,
    n_candidates: Sequence[int] = (2, 50),
    seed: int = 0,
) -> pd.DataFrame:
    """Decoding from ``n_draws`` random subsets of ``size`` units (all units when the
    population has no more): for each subset a linear decoder (ridge penalty
    ``relative_alpha`` times the mean eigenvalue of the responses' Gram matrix) is
    fitted on ``cv - 1`` folds and decodes the held-out fold. One row per draw:
    ``units``, ``draw``, the mean and the variance-weighted (``pooled_ev``) EV over the
    parameter dimensions, and ``identification_<N>`` for each N in ``n_candidates``."""
    r = _varying(float_matrix(responses, "responses"))
    r, x = matched_rows(r, params, "responses", "params")
    n, m = r.shape
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    size = min(int(size), m)
    gen = torch.Generator().manual_seed(seed)
    subsets = torch.rand(n_draws, m, generator=gen).argsort(dim=1)[:, :size]
    scale = float((r - r.mean(0)).square().sum() / m)
    folds = linalg.kfold_indices(n, cv)
    decoded = _subset_decoded(r, x, subsets, folds, relative_alpha * scale)
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
