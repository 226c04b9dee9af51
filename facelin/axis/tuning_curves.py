"""A unit's axis and its tuning along it: the STA and the regression axis, binned
tuning along the axis and the longest orthogonal axis, the flatness statistics, the
shape preference index, and which units and layers a study takes.

All functions take ``params`` (n faces x d dimensions) and ``responses`` (n faces x U
units) as numpy arrays or torch tensors and compute in float64."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import linalg
from .._validation import real_matrix

__all__ = [
    "sta", "regression_axis", "axis_angle", "tuning", "Tuning", "orthogonal_axis",
    "flatness", "shape_preference", "study_layers", "sample_units", "varying_units",
]


def paired(params, responses):
    """``params`` (n, d) and ``responses`` (n, U) as float64 tensors with the same faces
    (at least 3)."""
    x = real_matrix(params, "params")
    r = real_matrix(responses, "responses")
    if x.shape[0] != r.shape[0]:
        raise ValueError(f"params has {x.shape[0]} faces but responses has "
                         f"{r.shape[0]}")
    if x.shape[0] < 3:
        raise ValueError("need at least 3 faces")
    return x, r


def unit_rows(a: torch.Tensor) -> torch.Tensor:
    """The rows of ``a`` (U, d) scaled to unit length; a zero row is an error."""
    norm = a.norm(dim=1, keepdim=True)
    if (norm == 0).any():
        bad = torch.nonzero(norm.flatten() == 0).flatten()[:10].tolist()
        raise ValueError(f"axes of units {bad} are zero: those units do not vary with "
                         "the faces")
    return a / norm


def sta(params, responses) -> torch.Tensor:
    """Spike-triggered average of every unit: ``sum_n r_n x_n / sum_n r_n`` (Chang &
    Tsao).

    The parameters are centred first. Chang & Tsao's responses were firing rates (never
    negative); a CNN unit's response can be negative (the 128-d descriptor is not a ReLU
    output), so each unit's responses are shifted to start at zero, ``r - min(r)``. With
    centred parameters the shift does not change the STA's direction, which is that of
    the response-parameter covariance; it only sets its length. Returns (U, d).
    """
    x, r = paired(params, responses)
    xc = x - x.mean(0)
    weights = r - r.min(0).values
    total = weights.sum(0)
    if (total == 0).any():
        bad = torch.nonzero(total == 0).flatten()[:10].tolist()
        raise ValueError(f"units {bad} give the same response to every face: no STA")
    return (weights.T @ xc) / total[:, None]


def regression_axis(params, responses) -> torch.Tensor:
    """Each unit's linear-encoding weights (ordinary least squares with an intercept),
    (U, d). Equal in direction to the STA only when the parameters are isotropic."""
    x, r = paired(params, responses)
    xc, rc = x - x.mean(0), r - r.mean(0)
    return linalg.lstsq(xc, rc).T


def axis_angle(a, b) -> torch.Tensor:
    """Angle in degrees between corresponding rows of ``a`` and ``b``."""
    a, b = unit_rows(real_matrix(a, "a")), unit_rows(real_matrix(b, "b"))
    return torch.rad2deg(torch.arccos((a * b).sum(1).clamp(-1, 1)))


def project(x: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Projection of the centred parameters on each unit's (normalised) axis: (n, U)."""
    return (x - x.mean(0)) @ unit_rows(axes).T


@dataclass
class Tuning:
    """Binned tuning curves, one row per unit: bin centres (in units of the projection),
    mean response, its standard error and the number of faces in each bin."""

    centres: torch.Tensor
    mean: torch.Tensor
    sem: torch.Tensor
    count: torch.Tensor


def _binned(projection: torch.Tensor, r: torch.Tensor, n_bins: int) -> Tuning:
    n, units = projection.shape
    half = 1.01 * projection.abs().max(0).values  # Chang & Tsao: +-1.01 x the maximum
    width = 2 * half / n_bins
    index = ((projection + half) / width).floor().long().clamp(0, n_bins - 1)
    flat = index.T + torch.arange(units)[:, None] * n_bins  # (U, n)
    count = torch.zeros(units * n_bins, dtype=torch.float64).index_add_(
        0, flat.flatten(), torch.ones(n * units, dtype=torch.float64))
    total = torch.zeros_like(count).index_add_(0, flat.flatten(), r.T.flatten())
    squares = torch.zeros_like(count).index_add_(0, flat.flatten(),
                                                 (r.T ** 2).flatten())
    count, total, squares = (v.view(units, n_bins) for v in (count, total, squares))
    mean = total / count
    var = (squares - count * mean ** 2) / (count - 1)
    sem = (var.clamp_min(0) / count).sqrt()
    centres = -half[:, None] + width[:, None] * (torch.arange(n_bins) + 0.5)
    return Tuning(centres=centres, mean=mean, sem=sem, count=count.long())


def tuning(params, responses, axis, n_bins: int = 20) -> Tuning:
    """Tuning of each unit along its ``axis`` (U, d): the faces are projected on the
    axis, the projections cut into ``n_bins`` equal bins over +-1.01 x their largest
    magnitude (Chang & Tsao), and the responses averaged per bin. Empty bins hold
    NaN."""
    x, r = paired(params, responses)
    axis = real_matrix(axis, "axis")
    if axis.shape != (r.shape[1], x.shape[1]):
        raise ValueError(f"axis must be (units, dims) = {(r.shape[1], x.shape[1])}, "
                         f"got {tuple(axis.shape)}")
    if n_bins < 2:
        raise ValueError("n_bins must be at least 2")
    return _binned(project(x, axis), r, n_bins)


def orthogonal_axis(params, axis) -> torch.Tensor:
    """For each unit, the longest axis of the face distribution orthogonal to its
    ``axis`` (the first principal component of the parameters with the axis projected
    out), (U, d). Chang & Tsao found IT cells flat along it."""
    x = real_matrix(params, "params")
    a = unit_rows(real_matrix(axis, "axis"))
    if a.shape[1] != x.shape[1]:
        raise ValueError(f"axis has {a.shape[1]} dims, params {x.shape[1]}")
    cov = torch.cov(x.T)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    projector = eye - a[:, :, None] * a[:, None, :]  # (U, d, d)
    _, vectors = torch.linalg.eigh(projector @ cov @ projector)
    return vectors[:, :, -1]


def _line_fit(projection: torch.Tensor, r: torch.Tensor):
    """Slope (response change per SD of the projection) and R^2 of r on it."""
    p = projection - projection.mean(0)
    rc = r - r.mean(0)
    sr = rc.std(0)
    corr = (p * rc).sum(0) / ((p.norm(dim=0) * rc.norm(dim=0)).clamp_min(1e-300))
    return corr * sr, corr ** 2


def _anova(t: Tuning, min_count: int):
    """One-way ANOVA of the responses across bins (bins with at least ``min_count``
    faces), every unit at once: (F, p) arrays, NaN where fewer than 2 bins qualify."""
    keep = t.count >= min_count
    c = torch.where(keep, t.count.double(), 0.0)
    m = torch.where(keep, t.mean, 0.0)
    var = torch.where(keep, t.sem ** 2 * t.count.double(), 0.0)
    k = keep.sum(1).double()
    total = c.sum(1)
    grand = (m * c).sum(1) / total.clamp_min(1)
    between = ((m - grand[:, None]) ** 2 * c).sum(1) / (k - 1)
    within = ((c - 1).clamp_min(0) * var).sum(1) / (total - k)
    f = torch.where(within > 0, between / within, torch.inf)
    valid = k >= 2
    f = torch.where(valid, f, torch.nan).numpy()
    dfn, dfd = (k - 1).clamp_min(1).numpy(), (total - k).clamp_min(1).numpy()
    p = np.where(valid.numpy(), stats.f.sf(f, dfn, dfd), np.nan)
    return f, p


def _depth(t: Tuning, min_count: int) -> torch.Tensor:
    masked = torch.where(t.count >= min_count, t.mean, torch.nan)
    highest = masked.nan_to_num(-torch.inf).max(1).values
    return highest - masked.nan_to_num(torch.inf).min(1).values


def flatness(params, responses, n_bins: int = 20, min_count: int = 10,
             alpha: float = 0.01) -> pd.DataFrame:
    """Per unit: tuning along its STA and along the longest orthogonal axis, summarised.

    Columns: ``depth_sta`` and ``depth_orth`` (modulation depth: the range of the binned
    means over bins holding at least ``min_count`` faces), ``depth_ratio`` (orthogonal /
    STA; 0 for an ideal axis unit), ``slope_*`` (response change per SD of the
    projection) and ``r2_*`` of a straight line through the raw responses, ``p_sta`` and
    ``p_orth`` (one-way ANOVA across bins) and ``flat`` (``p_orth >= alpha``: no
    detectable tuning along the orthogonal axis). With thousands of faces even a small
    orthogonal modulation is detectable, and binned curves are noisy: judge ``flat``
    beside :func:`matched_null`, not alone.
    """
    x, r = paired(params, responses)
    axis = sta(x, r)
    orth = orthogonal_axis(x, axis)
    p_sta, p_orth = project(x, axis), project(x, orth)
    t_sta, t_orth = _binned(p_sta, r, n_bins), _binned(p_orth, r, n_bins)
    depth_sta, depth_orth = _depth(t_sta, min_count), _depth(t_orth, min_count)
    slope_sta, r2_sta = _line_fit(p_sta, r)
    slope_orth, r2_orth = _line_fit(p_orth, r)
    _, anova_sta = _anova(t_sta, min_count)
    _, anova_orth = _anova(t_orth, min_count)
    return pd.DataFrame({
        "depth_sta": depth_sta.numpy(), "depth_orth": depth_orth.numpy(),
        "depth_ratio": (depth_orth / depth_sta).numpy(),
        "slope_sta": slope_sta.numpy(), "slope_orth": slope_orth.numpy(),
        "r2_sta": r2_sta.numpy(), "r2_orth": r2_orth.numpy(),
        "p_sta": anova_sta, "p_orth": anova_orth, "flat": anova_orth >= alpha,
    })



def shape_preference(sta_axes, n_shape: int = 25) -> torch.Tensor:
    """Shape preference index of each unit, ``(|STA_shape| - |STA_app|) / (|STA_shape| +
    |STA_app|)``, with the first ``n_shape`` dimensions the shape block: +1 pure shape,
    -1 pure appearance."""
    a = real_matrix(sta_axes, "sta")
    if not 0 < n_shape < a.shape[1]:
        raise ValueError(f"n_shape must be between 1 and {a.shape[1] - 1}, "
                         f"got {n_shape}")
    s, p = a[:, :n_shape].norm(dim=1), a[:, n_shape:].norm(dim=1)
    total = s + p
    if (total == 0).any():
        raise ValueError("an all-zero STA has no shape preference")
    return (s - p) / total



def study_layers(layers, deep, n_early: int = 4) -> list:
    """The layers a chapter studies: ``n_early`` layers spread evenly over those before
    the ``deep`` ones (first and last included), then the deep layers, in order."""
    deep = list(deep)
    early = [name for name in layers if name not in deep]
    if n_early < 1 or not early:
        return deep
    picks = np.unique(np.linspace(0, len(early) - 1, min(n_early, len(early))).round())
    return [early[int(i)] for i in picks] + deep


def sample_units(responses, n_units: int, seed: int = 0) -> torch.Tensor:
    """Sorted columns of up to ``n_units`` units drawn at random (``seed``) among the
    :func:`varying_units` of ``responses`` (all of them when there are fewer)."""
    keep = torch.nonzero(varying_units(responses)).flatten()
    gen = torch.Generator().manual_seed(seed)
    return keep[torch.randperm(len(keep), generator=gen)[:n_units]].sort().values


def varying_units(responses, min_active: float = 0.05) -> torch.Tensor:
    """Boolean mask of the units worth testing: those whose response departs from its
    most common value on at least ``min_active`` of the faces (a rectified unit silent
    on nearly every face, or one stuck at a value but for a few faces, has no tuning
    curve to speak of, and a constant one has no axis), and whose SD is at least
    ``1e-6`` of the largest SD among ``responses`` (a unit that varies only by float32
    round-off or denormal numbers is silent in effect)."""
    r = real_matrix(responses, "responses")
    if not 0 <= min_active < 1:
        raise ValueError(f"min_active must be in [0, 1), got {min_active}")
    sd = r.std(0)
    departs = (r - r.mode(0).values).abs() > 1e-6 * sd.clamp_min(1e-300)
    return (sd > 0) & (sd >= 1e-6 * sd.max()) & (departs.double().mean(0) >= min_active)
