"""Chang & Tsao's axis model of face cells, and the tests that tell axis units apart.

An *axis unit* responds to a face ``x`` (a point of the shape-appearance space) through
one projection only: ``r = f(w . x)``, ramp-shaped along its axis ``w`` and flat along
every orthogonal direction. This module measures how far real units are from that:

- :func:`sta` and :func:`regression_axis`: the unit's axis, two ways;
- :func:`tuning`, :func:`orthogonal_axis`, :func:`flatness`: binned tuning along the axis
  and along the longest orthogonal axis, and statistics of both;
- :func:`compare_models`: cross-validated explained variance of the linear, axis,
  exemplar and a richer (kernel) model, per unit;
- :func:`simulate_axis_units`, :func:`simulate_exemplar_units`, :func:`matched_null`:
  populations whose answer is known, so a verdict on real units can be calibrated;
- :func:`tuning_map`, :func:`engineered_series`, :func:`calibrated_verdict`: 2-d tuning
  maps, Chang & Tsao's engineered faces, and real units set beside their matched nulls.

All functions take ``params`` (n faces x d dimensions) and ``responses`` (n faces x U
units) as numpy arrays or torch tensors and compute in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from . import linalg

__all__ = [
    "sta", "regression_axis", "axis_angle", "tuning", "Tuning", "orthogonal_axis",
    "flatness", "compare_models", "simulate_axis_units", "simulate_exemplar_units",
    "matched_null", "shape_preference", "varying_units", "tuning_map", "engineered_series",
    "calibrated_verdict",
]


def _as_matrix(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-d (faces x columns), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:10].tolist()
        raise ValueError(f"{name} holds NaN or Inf (rows {rows})")
    return t


def _check(params, responses):
    x = _as_matrix(params, "params")
    r = _as_matrix(responses, "responses")
    if x.shape[0] != r.shape[0]:
        raise ValueError(f"params has {x.shape[0]} faces but responses has {r.shape[0]}")
    if x.shape[0] < 3:
        raise ValueError("need at least 3 faces")
    return x, r


def _unit_rows(a: torch.Tensor) -> torch.Tensor:
    norm = a.norm(dim=1, keepdim=True)
    if (norm == 0).any():
        bad = torch.nonzero(norm.flatten() == 0).flatten()[:10].tolist()
        raise ValueError(f"axes of units {bad} are zero: those units do not vary with the faces")
    return a / norm


def sta(params, responses) -> torch.Tensor:
    """Spike-triggered average of every unit: ``sum_n r_n x_n / sum_n r_n`` (Chang & Tsao).

    The parameters are centred first. Chang & Tsao's responses were firing rates (never
    negative); a CNN unit's response can be negative (the 128-d descriptor is not a ReLU
    output), so each unit's responses are shifted to start at zero, ``r - min(r)``. With
    centred parameters the shift does not change the STA's direction, which is that of
    the response-parameter covariance; it only sets its length. Returns (U, d).
    """
    x, r = _check(params, responses)
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
    x, r = _check(params, responses)
    xc, rc = x - x.mean(0), r - r.mean(0)
    return linalg.lstsq(xc, rc).T


def axis_angle(a, b) -> torch.Tensor:
    """Angle in degrees between corresponding rows of ``a`` and ``b``."""
    a, b = _unit_rows(_as_matrix(a, "a")), _unit_rows(_as_matrix(b, "b"))
    return torch.rad2deg(torch.arccos((a * b).sum(1).clamp(-1, 1)))


def _project(x: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Projection of the centred parameters on each unit's (normalised) axis: (n, U)."""
    return (x - x.mean(0)) @ _unit_rows(axes).T


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
    squares = torch.zeros_like(count).index_add_(0, flat.flatten(), (r.T ** 2).flatten())
    count, total, squares = (v.view(units, n_bins) for v in (count, total, squares))
    mean = total / count
    var = (squares - count * mean ** 2) / (count - 1)
    sem = (var.clamp_min(0) / count).sqrt()
    centres = -half[:, None] + width[:, None] * (torch.arange(n_bins) + 0.5)
    return Tuning(centres=centres, mean=mean, sem=sem, count=count.long())


def tuning(params, responses, axis, n_bins: int = 20) -> Tuning:
    """Tuning of each unit along its ``axis`` (U, d): the faces are projected on the axis,
    the projections cut into ``n_bins`` equal bins over +-1.01 x their largest magnitude
    (Chang & Tsao), and the responses averaged per bin. Empty bins hold NaN."""
    x, r = _check(params, responses)
    axis = _as_matrix(axis, "axis")
    if axis.shape != (r.shape[1], x.shape[1]):
        raise ValueError(f"axis must be (units, dims) = {(r.shape[1], x.shape[1])}, got "
                         f"{tuple(axis.shape)}")
    if n_bins < 2:
        raise ValueError("n_bins must be at least 2")
    return _binned(_project(x, axis), r, n_bins)


def orthogonal_axis(params, axis) -> torch.Tensor:
    """For each unit, the longest axis of the face distribution orthogonal to its ``axis``
    (the first principal component of the parameters with the axis projected out), (U, d).
    Chang & Tsao found IT cells flat along it."""
    x = _as_matrix(params, "params")
    a = _unit_rows(_as_matrix(axis, "axis"))
    if a.shape[1] != x.shape[1]:
        raise ValueError(f"axis has {a.shape[1]} dims, params {x.shape[1]}")
    cov = torch.cov(x.T)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    projector = eye - a[:, :, None] * a[:, None, :]  # (U, d, d)
    _, vectors = torch.linalg.eigh(projector @ cov @ projector)
    return vectors[:, :, -1]


def _line_fit(projection: torch.Tensor, r: torch.Tensor):
    """Slope (response change per SD of the projection) and R^2 of r on the projection."""
    p = projection - projection.mean(0)
    rc = r - r.mean(0)
    sp, sr = p.std(0), rc.std(0)
    corr = (p * rc).sum(0) / ((p.norm(dim=0) * rc.norm(dim=0)).clamp_min(1e-300))
    return corr * sr, corr ** 2


def _anova(t: Tuning, min_count: int):
    """One-way ANOVA of the responses across bins (bins with at least ``min_count`` faces)."""
    f_values, p_values = [], []
    for mean, sem, count in zip(t.mean, t.sem, t.count):
        keep = count >= min_count
        k = int(keep.sum())
        if k < 2:
            f_values.append(np.nan)
            p_values.append(np.nan)
            continue
        m, c = mean[keep], count[keep].double()
        var = (sem[keep] ** 2) * c
        grand = (m * c).sum() / c.sum()
        between = ((m - grand) ** 2 * c).sum() / (k - 1)
        within = ((c - 1) * var).sum() / (c.sum() - k)
        f = float(between / within) if within > 0 else np.inf
        f_values.append(f)
        p_values.append(float(stats.f.sf(f, k - 1, float(c.sum()) - k)))
    return np.array(f_values), np.array(p_values)


def _depth(t: Tuning, min_count: int) -> torch.Tensor:
    masked = torch.where(t.count >= min_count, t.mean, torch.nan)
    return masked.nan_to_num(-torch.inf).max(1).values - masked.nan_to_num(torch.inf).min(1).values


def flatness(params, responses, n_bins: int = 20, min_count: int = 10, alpha: float = 0.01
             ) -> pd.DataFrame:
    """Per unit: tuning along its STA and along the longest orthogonal axis, summarised.

    Columns: ``depth_sta`` and ``depth_orth`` (modulation depth: the range of the binned
    means over bins holding at least ``min_count`` faces), ``depth_ratio``
    (orthogonal / STA; 0 for an ideal axis unit), ``slope_*`` (response change per SD of
    the projection) and ``r2_*`` of a straight line through the raw responses,
    ``p_sta`` and ``p_orth`` (one-way ANOVA across bins) and ``flat`` (``p_orth >= alpha``:
    no detectable tuning along the orthogonal axis). With thousands of faces even a small
    orthogonal modulation is detectable, and binned curves are noisy: judge ``flat`` beside
    :func:`matched_null`, not alone.
    """
    x, r = _check(params, responses)
    axis = sta(x, r)
    orth = orthogonal_axis(x, axis)
    p_sta, p_orth = _project(x, axis), _project(x, orth)
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


# --------------------------------------------------------------------------------------
# Model comparison


def _hinge_basis(z: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear spline basis [1, z, max(0, z - t_k)] of z (U, n) with per-unit
    knots (U, K): returns (U, n, K + 2)."""
    ones = torch.ones_like(z)
    hinges = (z[:, :, None] - knots[:, None, :]).clamp_min(0)
    return torch.cat([ones[:, :, None], z[:, :, None], hinges], dim=2)


def _fit_curve(z_train, r_train, z_test, n_knots: int, ridge: float = 1e-8):
    """A 1-d piecewise-linear response function per unit, fitted by batched least squares
    (one small problem per unit) with knots at quantiles of the training inputs."""
    q = torch.linspace(0, 1, n_knots + 2, dtype=torch.float64)[1:-1]
    knots = torch.quantile(z_train, q, dim=1).T  # (U, K)
    scale = z_train.std(1, keepdim=True).clamp_min(1e-12)  # conditioning
    basis_train = _hinge_basis(z_train / scale, knots / scale)
    coef = linalg.lstsq(basis_train, r_train.T[:, :, None], ridge=ridge)
    return (_hinge_basis(z_test / scale, knots / scale) @ coef)[:, :, 0].T


def _whitener(x_train: torch.Tensor):
    mean = x_train.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x_train.T))
    w = evecs / evals.clamp_min(evals.max() * 1e-12).sqrt()
    return lambda x: (x - mean) @ w


def _exemplars(xw_train: torch.Tensor, r_train: torch.Tensor, bound: float):
    """Each unit's exemplar, from the isotropic quadratic fit r ~ a + b |x - x0|^2 (linear
    in [|x|^2, x], so one least-squares solve serves every unit): x0 = -c_x / (2 c_norm).
    The exemplar is pulled in so that its whitened norm does not exceed the ``bound``
    quantile of the training faces' whitened norms: an exemplar far outside the faces
    (a unit with no curvature gives one at infinity) would turn the exemplar model into
    an axis model."""
    design = torch.cat([(xw_train ** 2).sum(1, keepdim=True), xw_train], dim=1)
    coef = linalg.lstsq(design - design.mean(0), r_train - r_train.mean(0))  # (d + 1, U)
    c_norm, c_x = coef[0], coef[1:].T
    x0 = -c_x / (2 * c_norm[:, None])
    radius = torch.quantile(xw_train.norm(dim=1), bound)
    norm = x0.norm(dim=1, keepdim=True)
    return torch.where(norm > radius, x0 * radius / norm, x0)


def _kernel_ridge_loo(phi_train, phi_test, r_train, alphas):
    """Ridge regression on kernel features with the ridge chosen per unit by exact
    leave-one-out on the training faces: one eigendecomposition of the features' Gram
    matrix serves every ridge and every unit."""
    mean_phi = phi_train.mean(0)
    phi, phi_test = phi_train - mean_phi, phi_test - mean_phi
    evals, evecs = torch.linalg.eigh(phi.T @ phi)
    evals = evals.clamp_min(0)
    rotated = phi @ evecs  # (n, m): the features in the Gram matrix's eigenbasis
    mean = r_train.mean(0)
    rc = r_train - mean
    proj = rotated.T @ rc
    best_err = torch.full((r_train.shape[1],), torch.inf, dtype=torch.float64)
    best_coef = torch.zeros(phi.shape[1], r_train.shape[1], dtype=torch.float64)
    for a in alphas:
        gain = 1 / (evals + a)
        fitted = rotated @ (gain[:, None] * proj)
        hat_diag = (rotated ** 2) @ gain
        err = (((rc - fitted) / (1 - hat_diag)[:, None]) ** 2).mean(0)
        better = err < best_err
        if better.any():
            best_coef[:, better] = gain[:, None] * proj[:, better]
            best_err = torch.where(better, err, best_err)
    return (phi_test @ evecs) @ best_coef + mean


def _nystroem(x_train, x_test, gamma, n_centres, gen):
    """Nystroem features of the RBF kernel on ``n_centres`` training faces drawn at random:
    their inner products approximate the kernel, ``phi(a) . phi(b) ~ k(a, b)``, so ridge
    regression on them is kernel ridge regression of rank ``n_centres``."""
    pick = torch.randperm(x_train.shape[0], generator=gen)[:n_centres]
    centres = x_train[pick]
    k_cc = _rbf(centres, centres, gamma)
    chol = torch.linalg.cholesky(k_cc + 1e-8 * torch.eye(len(centres), dtype=k_cc.dtype))

    def features(x):
        return torch.linalg.solve_triangular(chol, _rbf(centres, x, gamma), upper=False).T

    return features(x_train), features(x_test)


def _rbf(a, b, gamma):
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return torch.exp(-gamma * sq.clamp_min(0))


def _explained_variance(r, prediction):
    sse = ((r - prediction) ** 2).sum(0)
    sst = ((r - r.mean(0)) ** 2).sum(0)
    return 1 - sse / sst


def compare_models(params, responses, cv: int = 10, n_knots: int = 5,
                   exemplar_bound: float = 0.95, kernel_alphas=(1e-3, 1e-2, 1e-1, 1, 10, 100),
                   n_centres: int = 1000, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Cross-validated explained variance (1 - SSE/SST over held-out faces) of four
    models of each unit, one row per unit:

    - ``linear``: ``r = w . x + b``;
    - ``axis``: ``r = f(w . x)``, ``w`` the unit's regression axis on the training faces
      and ``f`` a piecewise-linear spline with ``n_knots`` knots;
    - ``exemplar``: ``r = g(|x - x0|)``, distance in the whitened parameter space, ``x0``
      the centre of the unit's isotropic quadratic fit on the training faces, kept within
      the ``exemplar_bound`` quantile of the faces' whitened norms, ``g`` a spline;
    - ``reference``: RBF kernel ridge on the whitened parameters (bandwidth: median
      distance; ridge by exact leave-one-out per unit), a model free of either assumption,
      of rank ``n_centres`` (Nystroem features on that many training faces: the exact
      kernel costs an n_train x n_train eigendecomposition per fold, several times more).
    """
    x, r = _check(params, responses)
    n = x.shape[0]
    if not 2 <= cv <= n:
        raise ValueError(f"cv must be between 2 and the number of faces ({n}), got {cv}")
    if (r.std(0) == 0).any():
        bad = torch.nonzero(r.std(0) == 0).flatten()[:10].tolist()
        raise ValueError(f"units {bad} give the same response to every face")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    folds = order.chunk(cv)
    predictions = {m: torch.empty_like(r) for m in ("linear", "axis", "exemplar", "reference")}
    iterator = folds
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(folds, desc="model comparison (folds)")
    for test in iterator:
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        x_tr, x_te, r_tr = x[train], x[test], r[train]
        mean_x, mean_r = x_tr.mean(0), r_tr.mean(0)
        w = linalg.lstsq(x_tr - mean_x, r_tr - mean_r)  # (d, U)
        predictions["linear"][test] = (x_te - mean_x) @ w + mean_r
        axes = _unit_rows(w.T)
        z_tr, z_te = (axes @ (x_tr - mean_x).T), (axes @ (x_te - mean_x).T)
        predictions["axis"][test] = _fit_curve(z_tr, r_tr, z_te, n_knots)
        whiten = _whitener(x_tr)
        xw_tr, xw_te = whiten(x_tr), whiten(x_te)
        x0 = _exemplars(xw_tr, r_tr, exemplar_bound)
        d_tr = torch.cdist(x0, xw_tr)  # (U, n_train)
        d_te = torch.cdist(x0, xw_te)
        predictions["exemplar"][test] = _fit_curve(d_tr, r_tr, d_te, n_knots)
        gamma = 1.0 / torch.median(torch.pdist(xw_tr[:500]) ** 2)
        phi_tr, phi_te = _nystroem(xw_tr, xw_te, gamma, min(n_centres, len(xw_tr)), gen)
        predictions["reference"][test] = _kernel_ridge_loo(phi_tr, phi_te, r_tr, kernel_alphas)
    return pd.DataFrame({m: _explained_variance(r, p).numpy() for m, p in predictions.items()})


# --------------------------------------------------------------------------------------
# Populations with a known answer


def _standardise(signal: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    signal = (signal - signal.mean(0)) / signal.std(0)
    return signal + noise * torch.randn(signal.shape, generator=gen, dtype=torch.float64)


def simulate_axis_units(params, n_units: int, noise: float = 0.5, seed: int = 0):
    """Pure axis units: random axes in the whitened parameter space, each with a random
    monotone response function (linear, soft-rectified, sigmoid or exponential ramp),
    scaled to unit signal variance, plus Gaussian noise of SD ``noise``.
    Returns (responses (n, n_units), axes (n_units, d) in parameter coordinates)."""
    x = _as_matrix(params, "params")
    gen = torch.Generator().manual_seed(seed)
    whiten = _whitener(x)
    d = x.shape[1]
    directions = _unit_rows(torch.randn(n_units, d, generator=gen, dtype=torch.float64))
    z = whiten(x) @ directions.T  # (n, U), unit variance each
    kind = torch.randint(0, 4, (n_units,), generator=gen)
    shift = torch.randn(n_units, generator=gen, dtype=torch.float64) * 0.5
    shapes = [z, torch.nn.functional.softplus(2 * (z - shift)), torch.sigmoid(2 * (z - shift)),
              torch.exp(0.7 * z)]
    signal = torch.stack(shapes)[kind, :, torch.arange(n_units)].T
    # The same axes in parameter coordinates: w . x with w = W directions.
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    axes = (evecs / evals.sqrt()) @ directions.T
    return _standardise(signal, noise, gen), _unit_rows(axes.T)


def simulate_exemplar_units(params, n_units: int, noise: float = 0.5, width: float = 0.5,
                            seed: int = 0):
    """Pure exemplar units: each prefers one face ``x0`` (a randomly chosen face of the
    set, so within the range of real faces) and responds as a Gaussian of the whitened
    distance to it, ``exp(-d^2 / (2 (width * median d)^2))``, scaled to unit signal
    variance, plus Gaussian noise of SD ``noise``. Returns (responses, exemplar indices)."""
    x = _as_matrix(params, "params")
    gen = torch.Generator().manual_seed(seed)
    xw = _whitener(x)(x)
    chosen = torch.randint(0, x.shape[0], (n_units,), generator=gen)
    dist = torch.cdist(xw, xw[chosen])  # (n, U)
    sigma = width * dist.median(0).values
    signal = torch.exp(-dist ** 2 / (2 * sigma ** 2))
    return _standardise(signal, noise, gen), chosen


def matched_null(params, responses, n_knots: int = 5, seed: int = 0) -> torch.Tensor:
    """For each unit, a pure axis unit matched to it: the unit's own regression axis and
    fitted response function ``f`` (as in the axis model), plus Gaussian noise with the
    SD of the unit's residuals about that fit. Put through the same tests as the real
    units, these say what a perfect axis unit with the same axis, anisotropy and noise
    would score. Returns (n, U)."""
    x, r = _check(params, responses)
    gen = torch.Generator().manual_seed(seed)
    mean_x, mean_r = x.mean(0), r.mean(0)
    axes = _unit_rows(linalg.lstsq(x - mean_x, r - mean_r).T)
    z = axes @ (x - mean_x).T
    fitted = _fit_curve(z, r, z, n_knots)
    residual_sd = (r - fitted).std(0)
    return fitted + residual_sd * torch.randn(r.shape, generator=gen, dtype=torch.float64)


def shape_preference(sta_axes, n_shape: int = 25) -> torch.Tensor:
    """Shape preference index of each unit, ``(|STA_shape| - |STA_app|) / (|STA_shape| +
    |STA_app|)``, with the first ``n_shape`` dimensions the shape block: +1 pure shape,
    -1 pure appearance."""
    a = _as_matrix(sta_axes, "sta")
    if not 0 < n_shape < a.shape[1]:
        raise ValueError(f"n_shape must be between 1 and {a.shape[1] - 1}, got {n_shape}")
    s, p = a[:, :n_shape].norm(dim=1), a[:, n_shape:].norm(dim=1)
    total = s + p
    if (total == 0).any():
        raise ValueError("an all-zero STA has no shape preference")
    return (s - p) / total


# --------------------------------------------------------------------------------------
# Maps, engineered faces and calibrated verdicts


def varying_units(responses, min_active: float = 0.05) -> torch.Tensor:
    """Boolean mask of the units worth testing: those whose response departs from their
    minimum on at least ``min_active`` of the faces (a rectified unit silent on nearly
    every face has no tuning curve to speak of, and a constant one has no axis)."""
    r = _as_matrix(responses, "responses")
    if not 0 <= min_active < 1:
        raise ValueError(f"min_active must be in [0, 1), got {min_active}")
    active = (r > r.min(0).values + 1e-6 * r.std(0).clamp_min(1e-300)).double().mean(0)
    return (r.std(0) > 0) & (active >= min_active)


def tuning_map(params, responses, axis_a, axis_b, n_bins: int = 10):
    """Mean response of each unit over a 2-d grid: the faces projected on ``axis_a`` and
    ``axis_b`` (each (U, d)), each projection cut into ``n_bins`` equal bins over +-1.01 x
    its largest magnitude. Returns (mean (U, n_bins, n_bins) with NaN in empty cells,
    indexed [unit, bin along a, bin along b]; half-widths (U, 2) of the two ranges)."""
    x, r = _check(params, responses)
    a, b = _as_matrix(axis_a, "axis_a"), _as_matrix(axis_b, "axis_b")
    for name, ax in (("axis_a", a), ("axis_b", b)):
        if ax.shape != (r.shape[1], x.shape[1]):
            raise ValueError(f"{name} must be (units, dims) = {(r.shape[1], x.shape[1])}, "
                             f"got {tuple(ax.shape)}")
    units = r.shape[1]
    index, halves = [], []
    for ax in (a, b):
        p = _project(x, ax)
        half = 1.01 * p.abs().max(0).values
        index.append(((p + half) / (2 * half / n_bins)).floor().long().clamp(0, n_bins - 1))
        halves.append(half)
    cell = (index[0] * n_bins + index[1]).T + torch.arange(units)[:, None] * n_bins ** 2
    count = torch.zeros(units * n_bins ** 2, dtype=torch.float64).index_add_(
        0, cell.flatten(), torch.ones(cell.numel(), dtype=torch.float64))
    total = torch.zeros_like(count).index_add_(0, cell.flatten(), r.T.flatten())
    mean = (total / count).view(units, n_bins, n_bins)
    return mean, torch.stack(halves, 1)


def engineered_series(params, axis, steps, n_orthogonal: int = 3, seed: int = 0
                      ) -> torch.Tensor:
    """Chang & Tsao's engineered faces, as parameter vectors: from the mean face, a series
    of faces along the unit's ``axis`` (d,) and along ``n_orthogonal`` directions
    orthogonal to it (the longest orthogonal axis of the faces first, then random
    orthogonal directions). ``steps`` are in standard deviations of the faces along each
    direction, so every series spans the same share of the face distribution. Returns
    (1 + n_orthogonal, len(steps), d): row 0 along the axis, the others orthogonal. An
    axis unit responds to row 0 only."""
    x = _as_matrix(params, "params")
    a = _unit_rows(_as_matrix(axis, "axis"))
    if a.shape != (1, x.shape[1]):
        raise ValueError(f"axis must be one vector of {x.shape[1]} dims, got {tuple(a.shape)}")
    if n_orthogonal < 1:
        raise ValueError("n_orthogonal must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    directions = [a[0], orthogonal_axis(x, a)[0]]
    while len(directions) < 1 + n_orthogonal:
        v = torch.randn(x.shape[1], generator=gen, dtype=torch.float64)
        for u in directions:  # Gram-Schmidt against the axis and the directions so far
            v = v - (v @ u) * u
        directions.append(v / v.norm())
    d = torch.stack(directions)  # (1 + n_orthogonal, d)
    sd = ((x - x.mean(0)) @ d.T).std(0)
    t = torch.as_tensor(np.asarray(steps, dtype=np.float64))
    return x.mean(0) + t[None, :, None] * (sd[:, None, None] * d[:, None, :])


def calibrated_verdict(flat_real: pd.DataFrame, flat_null: pd.DataFrame,
                       models_real: pd.DataFrame, models_null: pd.DataFrame,
                       quantile: float = 0.95) -> dict:
    """Set real units beside their matched nulls (:func:`matched_null`) for one layer.

    Returns a dict: ``tuned_orth_real`` / ``tuned_orth_null`` (fraction of units with
    detectable orthogonal tuning, ``not flat``), ``ratio_real`` / ``ratio_null`` (median
    depth ratio), ``beyond_null_ratio`` (fraction of real units whose depth ratio exceeds
    the null's ``quantile``), ``deficit_real`` / ``deficit_null`` (median of reference EV
    minus axis EV: what the axis model misses that a free model captures),
    ``beyond_null_deficit`` (fraction of real units whose deficit exceeds the null's
    ``quantile``), and the median EV of each model for real and null units. For a
    population of true axis units both ``beyond_null_*`` fractions are near
    ``1 - quantile``."""
    if len(flat_real) != len(models_real) or len(flat_null) != len(models_null):
        raise ValueError("flatness and model tables must have one row per unit each")
    if len(flat_real) == 0 or len(flat_null) == 0:
        raise ValueError("need at least one real and one null unit")
    deficit_real = models_real.reference - models_real.axis
    deficit_null = models_null.reference - models_null.axis
    out = {
        "units": len(flat_real),
        "tuned_orth_real": float((~flat_real.flat).mean()),
        "tuned_orth_null": float((~flat_null.flat).mean()),
        "ratio_real": float(flat_real.depth_ratio.median()),
        "ratio_null": float(flat_null.depth_ratio.median()),
        "beyond_null_ratio": float((flat_real.depth_ratio
                                    > flat_null.depth_ratio.quantile(quantile)).mean()),
        "deficit_real": float(deficit_real.median()),
        "deficit_null": float(deficit_null.median()),
        "beyond_null_deficit": float((deficit_real > deficit_null.quantile(quantile)).mean()),
    }
    for model in ("linear", "axis", "exemplar", "reference"):
        out[f"ev_{model}"] = float(models_real[model].median())
        out[f"ev_{model}_null"] = float(models_null[model].median())
    return out
