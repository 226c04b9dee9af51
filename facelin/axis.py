"""Chang & Tsao's axis model of face cells, and the tests that tell axis units apart.

An *axis unit* responds to a face ``x`` (a point of the shape-appearance space) through
one projection only: ``r = f(w . x)``, ramp-shaped along its axis ``w`` and flat along
every orthogonal direction. This module measures how far real units are from that:

- :func:`sta` and :func:`regression_axis`: the unit's axis, two ways;
- :func:`tuning`, :func:`orthogonal_axis`, :func:`flatness`: binned tuning along the
  axis and along the longest orthogonal axis, and statistics of both;
- :func:`compare_models`: cross-validated explained variance of the linear, axis,
  exemplar and a free reference model (kernel ridge tuned per unit), per unit, for
  thousands of units at once;
- :func:`simulate_axis_units`, :func:`simulate_exemplar_units` (in two geometries),
  :func:`matched_null`, :func:`control_populations`: populations whose answer is known;
- :func:`tuning_map`, :func:`engineered_test`: 2-d tuning maps and Chang & Tsao's
  engineered faces;
- :func:`unit_table`, :func:`departing`, :func:`claim3_verdict`: every unit beside its
  matched null, and the chapter's decision rule.

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
    "flatness", "fold_indices", "fit_curves", "Curves", "kernel_features",
    "kernel_reference", "KernelFit", "compare_models", "simulate_axis_units",
    "simulate_exemplar_units", "ExemplarUnits", "GEOMETRIES", "fit_axis_model",
    "AxisFit", "matched_null", "shape_preference", "study_layers", "sample_units",
    "varying_units", "tuning_map", "engineered_series", "engineered_faces",
    "engineered_test", "engineered_ratio", "unit_table", "departing",
    "bootstrap_fraction", "bootstrap_statistic", "VERDICTS", "layer_verdict",
    "verdict_rule", "claim3_verdict", "control_populations", "control_accuracy",
]


def _as_matrix(x, name: str) -> torch.Tensor:
    raw = x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x)
    t = torch.as_tensor(raw)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-d (faces x columns), got shape "
                         f"{tuple(t.shape)}")
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:10].tolist()
        raise ValueError(f"{name} holds NaN or Inf (rows {rows})")
    return t


def _check(params, responses):
    x = _as_matrix(params, "params")
    r = _as_matrix(responses, "responses")
    if x.shape[0] != r.shape[0]:
        raise ValueError(f"params has {x.shape[0]} faces but responses has "
                         f"{r.shape[0]}")
    if x.shape[0] < 3:
        raise ValueError("need at least 3 faces")
    return x, r


def _unit_rows(a: torch.Tensor) -> torch.Tensor:
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
    x, r = _check(params, responses)
    axis = _as_matrix(axis, "axis")
    if axis.shape != (r.shape[1], x.shape[1]):
        raise ValueError(f"axis must be (units, dims) = {(r.shape[1], x.shape[1])}, "
                         f"got {tuple(axis.shape)}")
    if n_bins < 2:
        raise ValueError("n_bins must be at least 2")
    return _binned(_project(x, axis), r, n_bins)


def orthogonal_axis(params, axis) -> torch.Tensor:
    """For each unit, the longest axis of the face distribution orthogonal to its
    ``axis`` (the first principal component of the parameters with the axis projected
    out), (U, d). Chang & Tsao found IT cells flat along it."""
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
    """Slope (response change per SD of the projection) and R^2 of r on it."""
    p = projection - projection.mean(0)
    rc = r - r.mean(0)
    sp, sr = p.std(0), rc.std(0)
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

_CHUNK = 512  # units per batched solve: (units, faces, basis) arrays stay near 50 MB


def fold_indices(n: int, cv: int, seed: int = 0) -> list[torch.Tensor]:
    """Held-out faces of each of ``cv`` folds: a seeded permutation of the ``n`` faces
    cut into ``cv`` blocks whose sizes differ by at most one (every requested fold
    exists)."""
    if not isinstance(cv, int) or isinstance(cv, bool) or not 2 <= cv <= n:
        raise ValueError(f"cv must be an int between 2 and the number of faces ({n}), "
                         f"got {cv!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [order[block] for block in linalg.kfold_indices(n, cv)]


def _hinge_basis(z: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear spline basis [1, z, max(0, z - t_k)] of z (U, n) with per-unit
    knots (U, K): returns (U, n, K + 2)."""
    ones = torch.ones_like(z)
    hinges = (z[:, :, None] - knots[:, None, :]).clamp_min(0)
    return torch.cat([ones[:, :, None], z[:, :, None], hinges], dim=2)


@dataclass
class Curves:
    """One piecewise-linear response function per unit, ``f_u(z)`` (see
    :func:`fit_curves`): ``scale`` (U, 1), ``knots`` (U, K) and ``coef`` (U, K + 2,
    1)."""

    scale: torch.Tensor
    knots: torch.Tensor
    coef: torch.Tensor

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Responses (n, U) to inputs ``z`` (U, n), one row of inputs per unit."""
        out = [(_hinge_basis(z[s] / self.scale[s], self.knots[s] / self.scale[s])
                @ self.coef[s])[:, :, 0] for s in _chunks(z.shape[0])]
        return torch.cat(out).T


def _chunks(units: int):
    return [slice(i, min(i + _CHUNK, units)) for i in range(0, units, _CHUNK)]


def fit_curves(z: torch.Tensor, r: torch.Tensor, n_knots: int = 5, ridge: float = 1e-8
               ) -> Curves:
    """A 1-d piecewise-linear response function per unit, ``r[:, u] ~ f_u(z[u])`` with
    ``z`` (U, n) and ``r`` (n, U), fitted by least squares (one small problem per unit,
    ``_CHUNK`` units at a time) with knots at quantiles of each unit's inputs."""
    n = z.shape[1]
    position = torch.linspace(0, n - 1, n_knots + 2)[1:-1].round().long()
    knots = z.sort(1).values[:, position]  # (U, K); one sort, cheaper than quantile
    scale = z.std(1, keepdim=True).clamp_min(1e-12)  # conditioning
    eye = ridge * torch.eye(n_knots + 2, dtype=torch.float64)
    coef = []
    for s in _chunks(z.shape[0]):
        basis = _hinge_basis(z[s] / scale[s], knots[s] / scale[s])
        # Normal equations of a (K + 2)-column basis of scaled inputs: six times faster
        # here than linalg.lstsq's batched QR, and accurate to ~1e-12 on these fits.
        gram = basis.transpose(1, 2) @ basis + eye
        coef.append(torch.linalg.solve(gram, basis.transpose(1, 2) @ r.T[s, :, None]))
    return Curves(scale=scale, knots=knots, coef=torch.cat(coef))


def _whitener(x_train: torch.Tensor):
    mean = x_train.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x_train.T))
    w = evecs / evals.clamp_min(evals.max() * 1e-12).sqrt()
    return lambda x: (x - mean) @ w


def _exemplars(xw_train: torch.Tensor, r_train: torch.Tensor, bound: float):
    """Each unit's exemplar, from the isotropic quadratic fit r ~ a + b |x - x0|^2
    (linear in [|x|^2, x], so one least-squares solve serves every unit): x0 = -c_x / (2
    c_norm). The exemplar is pulled in so that its norm does not exceed the ``bound``
    quantile of the training faces' norms (inputs centred): an exemplar far outside the
    faces (a unit with no curvature gives one at infinity) would turn the exemplar model
    into an axis model. Returns the exemplars (U, d) and whether each was pulled to the
    bound."""
    design = torch.cat([(xw_train ** 2).sum(1, keepdim=True), xw_train], dim=1)
    # (d + 1, U) coefficients of every unit at once
    coef = linalg.lstsq(design - design.mean(0), r_train - r_train.mean(0))
    c_norm, c_x = coef[0], coef[1:].T
    x0 = -c_x / (2 * c_norm[:, None])
    radius = torch.quantile(xw_train.norm(dim=1), bound)
    norm = x0.norm(dim=1, keepdim=True)
    on_bound = norm[:, 0] > radius
    return torch.where(on_bound[:, None], x0 * radius / norm, x0), on_bound


def _exemplar_model(spaces, r_train, bound: float, n_knots: int):
    """The exemplar model in each geometry, ``spaces`` a sequence of (train, test)
    inputs (whitened, then as given); per unit, the geometry with the smaller training
    error. Returns the test predictions (m, U), whether the chosen exemplar sits on its
    bound and whether the second geometry was chosen, both (U,)."""
    best = None
    for g, (train, test) in enumerate(spaces):
        x0, on_bound = _exemplars(train, r_train, bound)
        curves = fit_curves(torch.cdist(x0, train), r_train, n_knots)
        sse = ((curves(torch.cdist(x0, train)) - r_train) ** 2).sum(0)
        prediction = curves(torch.cdist(x0, test))
        if best is None:
            best = [sse, prediction, on_bound, torch.zeros_like(on_bound)]
            continue
        better = sse < best[0]
        best[0] = torch.where(better, sse, best[0])
        best[1] = torch.where(better, prediction, best[1])
        best[2] = torch.where(better, on_bound, best[2])
        best[3] = torch.where(better, torch.full_like(on_bound, g == 1), best[3])
    return best[1], best[2], best[3]


def _rbf(a, b, gamma):
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return torch.exp(-gamma * sq.clamp_min(0))


def kernel_features(x_train, scale: float = 1.0, n_centres: int = 300, seed: int = 0):
    """Nystroem features of the RBF kernel ``exp(-|a - b|^2 / (2 sigma^2))``, ``sigma =
    scale x`` the median distance between training faces, on ``n_centres`` training
    faces drawn with ``seed``: a function mapping faces (m, d) to features
    (m, n_centres) whose inner products approximate the kernel, so ridge regression on
    them is kernel ridge regression of that rank."""
    x = _as_matrix(x_train, "x_train")
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=gen)[:min(n_centres, len(x))]]
    sample = x[torch.randperm(len(x), generator=gen)[:500]]
    gamma = 1.0 / (2 * scale ** 2 * torch.median(torch.pdist(sample) ** 2))
    k_cc = _rbf(centres, centres, gamma)
    jitter = 1e-8 * torch.eye(len(centres), dtype=k_cc.dtype)
    chol = torch.linalg.cholesky(k_cc + jitter)
    return lambda faces: torch.linalg.solve_triangular(
        chol, _rbf(centres, _as_matrix(faces, "faces"), gamma), upper=False).T


@dataclass
class KernelFit:
    """Outcome of :func:`kernel_reference` for U units: ``prediction`` (m, U) on the
    test faces, the ``scale`` and ``alpha`` chosen per unit (U,), and ``loo_mse``
    (n_scales, n_alphas, U), the leave-one-out mean squared error on the training faces
    behind the choice."""

    prediction: torch.Tensor
    scale: torch.Tensor
    alpha: torch.Tensor
    loo_mse: torch.Tensor


def kernel_reference(x_train, r_train, x_test, scales=(0.5, 1.0, 2.0),
                     alphas=(1e-2, 1e-1, 1.0, 10.0, 100.0), n_centres: int = 300,
                     seed: int = 0) -> KernelFit:
    """RBF kernel ridge regression of every unit with its bandwidth and penalty chosen
    per unit by exact leave-one-out on the training faces
    (:func:`facelin.linalg.ridge_cv`, intercept unpenalised, so each face's leverage
    includes the intercept's 1/n): the free reference model. The features
    (:func:`kernel_features`, one set per bandwidth ``scale``) are shared by every unit,
    so each bandwidth costs one ridge path for all units at once. ``x_train`` (n, d) and
    ``x_test`` (m, d) are the inputs (whiten them first for an isotropic kernel),
    ``r_train`` (n, U) the responses."""
    x_train, r_train = _check(x_train, r_train)
    x_test = _as_matrix(x_test, "x_test")
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"x_test has {x_test.shape[1]} dims, x_train "
                         f"{x_train.shape[1]}")
    best_mse = torch.full((r_train.shape[1],), torch.inf, dtype=torch.float64)
    prediction = torch.zeros(len(x_test), r_train.shape[1], dtype=torch.float64)
    chosen_scale, chosen_alpha = torch.zeros_like(best_mse), torch.zeros_like(best_mse)
    loo = []
    for scale in scales:
        features = kernel_features(x_train, scale, n_centres, seed)
        fit = linalg.ridge_cv(features(x_train), r_train, alphas, cv="loo")
        mse = fit.cv_mse.min(0).values
        better = mse < best_mse
        prediction[:, better] = fit.predict(features(x_test))[:, better]
        chosen_scale[better], chosen_alpha[better] = scale, fit.alpha[better]
        best_mse = torch.where(better, mse, best_mse)
        loo.append(fit.cv_mse)
    return KernelFit(prediction=prediction, scale=chosen_scale, alpha=chosen_alpha,
                     loo_mse=torch.stack(loo))


def _explained_variance(r, prediction):
    sse = ((r - prediction) ** 2).sum(0)
    sst = ((r - r.mean(0)) ** 2).sum(0)
    return 1 - sse / sst


def compare_models(params, responses, cv: int = 5, n_knots: int = 5,
                   exemplar_bound: float = 0.95, kernel_scales=(0.5, 1.0, 2.0),
                   kernel_alphas=(1e-2, 1e-1, 1.0, 10.0, 100.0), n_centres: int = 300,
                   seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Cross-validated explained variance (1 - SSE/SST over held-out faces) of four
    models of each unit, one row per unit:

    - ``linear``: ``r = w . x + b``;
    - ``axis``: ``r = f(w . x)``, ``w`` the unit's regression axis on the training faces
      and ``f`` a piecewise-linear spline with ``n_knots`` knots;
    - ``exemplar``: ``r = g(|x - x0|)``, ``x0`` the centre of the unit's isotropic
      quadratic fit on the training faces, kept within the ``exemplar_bound`` quantile
      of the faces' norms, ``g`` a spline; distance either in the whitened space or in
      the parameter space as given (:data:`GEOMETRIES`), whichever fits the unit's
      training faces better (the same number of parameters either way);
    - ``reference``: RBF kernel ridge on the whitened parameters, bandwidth and penalty
      chosen per unit by leave-one-out inside each training fold
      (:func:`kernel_reference`), a model free of either assumption.

    Also per unit: ``exemplar_on_bound`` (share of folds whose fitted exemplar was
    pulled to the bound), ``exemplar_normalized`` (share of folds where the
    parameter-space geometry was chosen), ``reference_scale`` and ``reference_alpha``
    (the median choice over folds). Every model is fitted to all units at once (shared
    designs and kernel features, batched small solves), so thousands of units cost
    seconds per fold.
    """
    x, r = _check(params, responses)
    folds = fold_indices(x.shape[0], cv, seed)
    if (r.std(0) == 0).any():
        bad = torch.nonzero(r.std(0) == 0).flatten()[:10].tolist()
        raise ValueError(f"units {bad} give the same response to every face")
    models = ("linear", "axis", "exemplar", "reference")
    predictions = {m: torch.empty_like(r) for m in models}
    on_bound, geometry, scales, alphas = [], [], [], []
    iterator = folds
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(folds, desc="model comparison (folds)")
    for k, test in enumerate(iterator):
        train = torch.ones(x.shape[0], dtype=torch.bool)
        train[test] = False
        x_tr, x_te, r_tr = x[train], x[test], r[train]
        constant = torch.nonzero(r_tr.std(0) == 0).flatten()
        if len(constant):
            raise ValueError(f"units {constant[:10].tolist()} are constant on the "
                             f"training faces of fold {k}: drop them (varying_units)")
        mean_x, mean_r = x_tr.mean(0), r_tr.mean(0)
        w = linalg.lstsq(x_tr - mean_x, r_tr - mean_r)  # (d, U)
        predictions["linear"][test] = (x_te - mean_x) @ w + mean_r
        axes = _unit_rows(w.T)
        curves = fit_curves(axes @ (x_tr - mean_x).T, r_tr, n_knots)
        predictions["axis"][test] = curves(axes @ (x_te - mean_x).T)
        whiten = _whitener(x_tr)
        xw_tr, xw_te = whiten(x_tr), whiten(x_te)
        spaces = ((xw_tr, xw_te), (x_tr - mean_x, x_te - mean_x))
        exemplar, bound, normalized = _exemplar_model(spaces, r_tr, exemplar_bound,
                                                      n_knots)
        predictions["exemplar"][test] = exemplar
        geometry.append(normalized.double())
        kernel = kernel_reference(xw_tr, r_tr, xw_te, kernel_scales, kernel_alphas,
                                  n_centres, seed + k)
        predictions["reference"][test] = kernel.prediction
        on_bound.append(bound.double())
        scales.append(kernel.scale)
        alphas.append(kernel.alpha)
    table = pd.DataFrame({m: _explained_variance(r, p).numpy()
                          for m, p in predictions.items()})
    table["exemplar_on_bound"] = torch.stack(on_bound).mean(0).numpy()
    table["exemplar_normalized"] = torch.stack(geometry).mean(0).numpy()
    table["reference_scale"] = torch.stack(scales).median(0).values.numpy()
    table["reference_alpha"] = torch.stack(alphas).log().median(0).values.exp().numpy()
    return table


# --------------------------------------------------------------------------------------
# Populations with a known answer


def _standardise(signal: torch.Tensor, noise: float, gen: torch.Generator
                 ) -> torch.Tensor:
    signal = (signal - signal.mean(0)) / signal.std(0)
    return signal + noise * torch.randn(signal.shape, generator=gen,
                                        dtype=torch.float64)


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
    shapes = [z, torch.nn.functional.softplus(2 * (z - shift)),
              torch.sigmoid(2 * (z - shift)), torch.exp(0.7 * z)]
    signal = torch.stack(shapes)[kind, :, torch.arange(n_units)].T
    # The same axes in parameter coordinates: w . x with w = W directions.
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    axes = (evecs / evals.sqrt()) @ directions.T
    return _standardise(signal, noise, gen), _unit_rows(axes.T)


GEOMETRIES = ("whitened", "normalized")


@dataclass
class ExemplarUnits:
    """Pure exemplar units (see :func:`simulate_exemplar_units`): preferred faces
    ``centres`` (U, d) in parameter coordinates, the linear map ``metric`` (d, d) into
    the space where distance is measured, tuning widths ``sigma`` (U,), and the signal's
    mean and SD over the faces they were simulated on (to scale new responses alike),
    and the SD of their ``noise``."""

    centres: torch.Tensor
    metric: torch.Tensor
    sigma: torch.Tensor
    mean: torch.Tensor
    sd: torch.Tensor
    noise: float

    def signal(self, params) -> torch.Tensor:
        """Noise-free responses (m, U) to faces ``params`` (m, d), in the units of the
        simulated responses (signal SD 1 over the simulated faces)."""
        x = _as_matrix(params, "params")
        dist = torch.cdist(x @ self.metric, self.centres @ self.metric)
        return (torch.exp(-dist ** 2 / (2 * self.sigma ** 2)) - self.mean) / self.sd

    def sample(self, params, seed: int = 0) -> torch.Tensor:
        """Noisy responses (m, U) to faces (m, d), as simulated."""
        signal = self.signal(params)
        gen = torch.Generator().manual_seed(seed)
        return signal + self.noise * torch.randn(signal.shape, generator=gen,
                                                 dtype=torch.float64)


def simulate_exemplar_units(params, n_units: int, noise: float = 0.5,
                            width: float = 0.5, geometry: str = "whitened",
                            seed: int = 0):
    """Pure exemplar units: each prefers one face ``x0`` (a randomly chosen face of the
    set, so within the range of real faces) and responds as a Gaussian of the distance
    to it, ``exp(-d^2 / (2 (width * median d)^2))``, scaled to unit signal variance,
    plus Gaussian noise of SD ``noise``. ``geometry`` says where distance is measured:
    ``"whitened"`` (every direction of the face distribution counts alike: isotropic
    tuning in whitened space) or ``"normalized"`` (the parameters as given, so the
    tuning is narrow along low-variance directions and broad along the long ones).
    Returns (responses (n, n_units), :class:`ExemplarUnits`)."""
    x = _as_matrix(params, "params")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    gen = torch.Generator().manual_seed(seed)
    if geometry == "whitened":
        evals, evecs = torch.linalg.eigh(torch.cov(x.T))
        metric = evecs / evals.clamp_min(evals.max() * 1e-12).sqrt()
    else:
        metric = torch.eye(x.shape[1], dtype=torch.float64)
    chosen = torch.randint(0, x.shape[0], (n_units,), generator=gen)
    dist = torch.cdist(x @ metric, x[chosen] @ metric)  # (n, U)
    sigma = width * dist.median(0).values
    raw = torch.exp(-dist ** 2 / (2 * sigma ** 2))
    units = ExemplarUnits(centres=x[chosen], metric=metric, sigma=sigma,
                          mean=raw.mean(0), sd=raw.std(0), noise=noise)
    return units.sample(x, seed + 1), units


@dataclass
class AxisFit:
    """Each unit's axis model fitted to all faces: ``mean`` (d,) of the faces, ``axes``
    (U, d) (unit regression axes), the response functions ``curves`` and the SD of each
    unit's residuals ``residual_sd`` (U,)."""

    mean: torch.Tensor
    axes: torch.Tensor
    curves: Curves
    residual_sd: torch.Tensor

    def predict(self, params) -> torch.Tensor:
        """The fitted response ``f_u(w_u . (x - mean))`` of every unit to faces
        (m, d)."""
        x = _as_matrix(params, "params")
        return self.curves(self.axes @ (x - self.mean).T)

    def sample(self, params, seed: int = 0) -> torch.Tensor:
        """Responses (m, U) of the matched null units to faces (m, d): the fitted
        response plus Gaussian noise of each unit's residual SD."""
        fitted = self.predict(params)
        gen = torch.Generator().manual_seed(seed)
        return fitted + self.residual_sd * torch.randn(fitted.shape, generator=gen,
                                                       dtype=torch.float64)


def fit_axis_model(params, responses, n_knots: int = 5) -> AxisFit:
    """The axis model of every unit fitted to all faces (see :class:`AxisFit`)."""
    x, r = _check(params, responses)
    mean = x.mean(0)
    axes = _unit_rows(linalg.lstsq(x - mean, r - r.mean(0)).T)
    curves = fit_curves(axes @ (x - mean).T, r, n_knots)
    fitted = curves(axes @ (x - mean).T)
    return AxisFit(mean=mean, axes=axes, curves=curves, residual_sd=(r - fitted).std(0))


def matched_null(params, responses, n_knots: int = 5, seed: int = 0) -> torch.Tensor:
    """For each unit, a pure axis unit matched to it: the unit's own regression axis and
    fitted response function ``f`` (as in the axis model), plus Gaussian noise with the
    SD of the unit's residuals about that fit. Put through the same tests as the real
    units, these say what a perfect axis unit with the same axis, anisotropy and noise
    would score. Returns (n, U)."""
    x, r = _check(params, responses)
    return fit_axis_model(x, r, n_knots).sample(x, seed)


def shape_preference(sta_axes, n_shape: int = 25) -> torch.Tensor:
    """Shape preference index of each unit, ``(|STA_shape| - |STA_app|) / (|STA_shape| +
    |STA_app|)``, with the first ``n_shape`` dimensions the shape block: +1 pure shape,
    -1 pure appearance."""
    a = _as_matrix(sta_axes, "sta")
    if not 0 < n_shape < a.shape[1]:
        raise ValueError(f"n_shape must be between 1 and {a.shape[1] - 1}, "
                         f"got {n_shape}")
    s, p = a[:, :n_shape].norm(dim=1), a[:, n_shape:].norm(dim=1)
    total = s + p
    if (total == 0).any():
        raise ValueError("an all-zero STA has no shape preference")
    return (s - p) / total


# --------------------------------------------------------------------------------------
# Maps, engineered faces and calibrated verdicts


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
    r = _as_matrix(responses, "responses")
    if not 0 <= min_active < 1:
        raise ValueError(f"min_active must be in [0, 1), got {min_active}")
    sd = r.std(0)
    departs = (r - r.mode(0).values).abs() > 1e-6 * sd.clamp_min(1e-300)
    return (sd > 0) & (sd >= 1e-6 * sd.max()) & (departs.double().mean(0) >= min_active)


def tuning_map(params, responses, axis_a, axis_b, n_bins: int = 10):
    """Mean response of each unit over a 2-d grid: the faces projected on ``axis_a`` and
    ``axis_b`` (each (U, d)), each projection cut into ``n_bins`` equal bins over +-1.01
    x its largest magnitude. Returns (mean (U, n_bins, n_bins) with NaN in empty cells,
    indexed [unit, bin along a, bin along b]; half-widths (U, 2) of the two ranges)."""
    x, r = _check(params, responses)
    a, b = _as_matrix(axis_a, "axis_a"), _as_matrix(axis_b, "axis_b")
    for name, ax in (("axis_a", a), ("axis_b", b)):
        if ax.shape != (r.shape[1], x.shape[1]):
            raise ValueError(f"{name} must be (units, dims) = "
                             f"{(r.shape[1], x.shape[1])}, got {tuple(ax.shape)}")
    units = r.shape[1]
    index, halves = [], []
    for ax in (a, b):
        p = _project(x, ax)
        half = 1.01 * p.abs().max(0).values
        cells = ((p + half) / (2 * half / n_bins)).floor().long()
        index.append(cells.clamp(0, n_bins - 1))
        halves.append(half)
    cell = (index[0] * n_bins + index[1]).T + torch.arange(units)[:, None] * n_bins ** 2
    count = torch.zeros(units * n_bins ** 2, dtype=torch.float64).index_add_(
        0, cell.flatten(), torch.ones(cell.numel(), dtype=torch.float64))
    total = torch.zeros_like(count).index_add_(0, cell.flatten(), r.T.flatten())
    mean = (total / count).view(units, n_bins, n_bins)
    return mean, torch.stack(halves, 1)


def engineered_series(params, axis, steps, n_orthogonal: int = 3, seed: int = 0
                      ) -> torch.Tensor:
    """Chang & Tsao's engineered faces, as parameter vectors: from the mean face, a
    series of faces along the unit's ``axis`` (d,) and along ``n_orthogonal`` directions
    orthogonal to it (the longest orthogonal axis of the faces first, then random
    orthogonal directions). ``steps`` are in standard deviations of the faces along each
    direction, so every series spans the same share of the face distribution. Returns (1
    + n_orthogonal, len(steps), d): row 0 along the axis, the others orthogonal. An axis
    unit responds to row 0 only."""
    x = _as_matrix(params, "params")
    a = _unit_rows(_as_matrix(axis, "axis"))
    if a.shape != (1, x.shape[1]):
        raise ValueError(f"axis must be one vector of {x.shape[1]} dims, "
                         f"got {tuple(a.shape)}")
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


def engineered_faces(params, axes, steps, n_orthogonal: int = 2, seed: int = 0
                     ) -> torch.Tensor:
    """:func:`engineered_series` for each of several units' ``axes`` (U, d): returns
    (U, 1 + n_orthogonal, len(steps), d), unit u's orthogonal directions drawn with
    ``seed + u``."""
    a = _as_matrix(axes, "axes")
    return torch.stack([engineered_series(params, a[u:u + 1], steps, n_orthogonal,
                                          seed + u) for u in range(a.shape[0])])


def engineered_test(params, responses, respond, steps=(-2.0, -1.0, 0.0, 1.0, 2.0),
                    n_orthogonal: int = 2, seed: int = 0) -> pd.DataFrame:
    """Chang & Tsao's engineered-face test of U units.

    Each unit's regression axis is fitted on the faces ``params`` (n, d) and its
    ``responses`` (n, U); :func:`engineered_faces` builds its series along the axis and
    along ``n_orthogonal`` orthogonal directions; ``respond`` maps faces (m, d) to the
    responses (m, U) of the same units (for a CNN: render, run the network; for a
    simulated unit: its response function); faces shared by several series (the mean
    face) are passed once. One row per unit and direction: ``change``,
    the response range over the series in units of the unit's response SD over
    ``params``. An axis unit's orthogonal change is its noise alone."""
    x, r = _check(params, responses)
    axes = fit_axis_model(x, r).axes
    series = engineered_faces(x, axes, steps, n_orthogonal, seed)
    units, directions, n_steps, d = series.shape
    # Every series passes through the mean face: it is rendered once.
    faces, index = torch.unique(series.reshape(-1, d), dim=0, return_inverse=True)
    out = _as_matrix(respond(faces), "responses to the engineered faces")
    if out.shape != (len(faces), units):
        raise ValueError(f"respond must return ({len(faces)}, {units}), "
                         f"got {tuple(out.shape)}")
    every = out[index].reshape(units, directions, n_steps, units)
    own = every[torch.arange(units), :, :, torch.arange(units)]  # each unit, own faces
    change = (own.amax(2) - own.amin(2)) / r.std(0)[:, None]  # (U, directions)
    names = ["axis"] + [f"orthogonal {k}" for k in range(1, directions)]
    return pd.DataFrame({"unit": np.repeat(np.arange(units), directions),
                         "direction": names * units,
                         "change": change.flatten().numpy()})


def engineered_ratio(table: pd.DataFrame) -> pd.Series:
    """Per unit of an :func:`engineered_test` table: the median response change along
    its orthogonal directions divided by its change along the axis (0 for an ideal axis
    unit, about 1 or more for a unit that notices orthogonal moves as much). Units whose
    response does not change along their axis either (a rectified unit silent on every
    engineered face) have no ratio and are left out."""
    wide = table.pivot(index="unit", columns="direction", values="change")
    wide = wide[wide["axis"] > 0]
    return wide.drop(columns="axis").median(axis=1) / wide["axis"]


# --------------------------------------------------------------------------------------
# The verdict


def unit_table(params, layers: dict, cv: int = 5, n_centres: int = 300, seed: int = 0,
               progress: bool = False) -> pd.DataFrame:
    """Every unit of every layer beside its matched null (:func:`matched_null`), through
    :func:`flatness` and :func:`compare_models` (one call for all units and nulls).

    ``layers`` maps a name to responses (n, U). One row per unit: ``layer``, ``unit``
    (column in its layer), the four models' EVs, ``gain`` (reference EV minus axis EV),
    ``exemplar_on_bound``, ``reference_scale``, ``reference_alpha``, ``depth_ratio`` and
    ``flat``, and the null's ``gain_null``, ``depth_ratio_null``, ``flat_null``,
    ``axis_null``, ``reference_null``."""
    x = _as_matrix(params, "params")
    real = {name: _check(x, r)[1] for name, r in layers.items()}
    if not real:
        raise ValueError("no layers given")
    nulls = {name: matched_null(x, r, seed=seed) for name, r in real.items()}
    both = torch.cat(list(real.values()) + list(nulls.values()), 1)
    models = compare_models(x, both, cv=cv, n_centres=n_centres, seed=seed,
                            progress=progress)
    flat = pd.concat([flatness(x, both[:, s]) for s in _chunks(both.shape[1])],
                     ignore_index=True)
    total = both.shape[1] // 2
    table = models.iloc[:total].reset_index(drop=True)
    table.insert(0, "layer", [n for n, r in real.items() for _ in range(r.shape[1])])
    table.insert(1, "unit",
                 np.concatenate([np.arange(r.shape[1]) for r in real.values()]))
    table["gain"] = table.reference - table.axis
    table["depth_ratio"] = flat.depth_ratio.iloc[:total].to_numpy()
    table["flat"] = flat.flat.iloc[:total].to_numpy()
    null = models.iloc[total:].reset_index(drop=True)
    table["axis_null"] = null.axis.to_numpy()
    table["reference_null"] = null.reference.to_numpy()
    table["gain_null"] = (null.reference - null.axis).to_numpy()
    table["depth_ratio_null"] = flat.depth_ratio.iloc[total:].to_numpy()
    table["flat_null"] = flat.flat.iloc[total:].to_numpy()
    return table


def departing(table: pd.DataFrame, effect_size: float = 0.05, quantile: float = 0.95
              ) -> pd.DataFrame:
    """Which units depart from the axis model, by the chapter's rule: ``by_gain`` when
    the reference's gain over the axis model exceeds the unit's matched null's gain by
    at least ``effect_size`` (EV), ``by_orthogonal`` when its orthogonal/STA depth ratio
    exceeds the ``quantile`` of its layer's matched nulls' ratios, ``departs`` when
    either holds. ``table`` needs ``layer``, ``gain``, ``gain_null``, ``depth_ratio``
    and ``depth_ratio_null`` (as :func:`unit_table` gives)."""
    needed = {"layer", "gain", "gain_null", "depth_ratio", "depth_ratio_null"}
    missing = needed - set(table)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}")
    if not 0 < quantile < 1 or effect_size < 0:
        raise ValueError("need 0 < quantile < 1 and effect_size >= 0")
    values = table[["gain", "gain_null", "depth_ratio", "depth_ratio_null"]].to_numpy()
    if not np.isfinite(values).all():
        raise ValueError("table holds NaN or Inf in the gain or depth-ratio columns")
    limit = table.groupby("layer").depth_ratio_null.transform(
        lambda v: v.quantile(quantile))
    by_gain = (table.gain - table.gain_null) >= effect_size
    by_orthogonal = table.depth_ratio > limit
    return pd.DataFrame({"layer": table.layer, "by_gain": by_gain,
                         "by_orthogonal": by_orthogonal,
                         "departs": by_gain | by_orthogonal})


def bootstrap_fraction(flags, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """The fraction of True ``flags`` and its percentile bootstrap interval (resampling
    the flags, i.e. the units): (fraction, low, high)."""
    f = np.asarray(flags, dtype=bool)
    return bootstrap_statistic(f, np.mean, n_boot, level, seed)


def bootstrap_statistic(values, statistic=np.median, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0):
    """``statistic`` of 1-d ``values`` and its percentile bootstrap interval (resampling
    the values, e.g. units): (value, low, high)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError("values must be a non-empty 1-d array")
    if not np.isfinite(v).all():
        raise ValueError("values hold NaN or Inf")
    draws = np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))
    boot = statistic(v[draws], axis=1)
    tail = (1 - level) / 2
    return (float(statistic(v)), float(np.quantile(boot, tail)),
            float(np.quantile(boot, 1 - tail)))


VERDICTS = ("holds", "partly holds", "does not hold")


def layer_verdict(low: float, high: float, holds_at: float = 0.5, fails_at: float = 0.2
                  ) -> str:
    """A layer's verdict from the interval of its departing fraction: ``"holds"`` when
    even its lower end reaches ``holds_at`` (a majority of units depart), ``"does not
    hold"`` when even its upper end stays at or below ``fails_at``, otherwise ``"partly
    holds"``."""
    if not 0 <= low <= high <= 1:
        raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
    if low >= holds_at:
        return "holds"
    if high <= fails_at:
        return "does not hold"
    return "partly holds"


def verdict_rule(effect_size: float = 0.05, quantile: float = 0.95,
                 holds_at: float = 0.5, fails_at: float = 0.2) -> str:
    """The decision rule of :func:`claim3_verdict`, in words, with its thresholds."""
    return (f"A unit departs from the axis model when its reference-minus-axis gain "
            f"in cross-validated EV exceeds its matched null's by at least "
            f"{effect_size:g}, or its orthogonal/STA depth ratio exceeds the "
            f"{quantile:.0%} quantile of its layer's matched nulls. A layer holds when "
            f"the lower end of the 95% bootstrap interval (over units) of its "
            f"departing fraction is at least {holds_at:g}, does not hold when the "
            f"upper end is at most {fails_at:g}, and partly holds otherwise. Claim 3 "
            f"holds for a network when every deep layer holds, does not hold when "
            f"every deep layer does not hold, and partly holds otherwise.")


def claim3_verdict(table: pd.DataFrame, deep_layers, effect_size: float = 0.05,
                   quantile: float = 0.95, holds_at: float = 0.5, fails_at: float = 0.2,
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """Claim 3 ("CNN units are not well described by the axis model") for one network.

    Each unit departs or not by :func:`departing`; each layer gets its departing
    fraction with a bootstrap interval over units and a :func:`layer_verdict`; the claim
    ``"holds"`` when every layer of ``deep_layers`` holds, ``"does not hold"`` when none
    of them departs (every one "does not hold"), and ``"partly holds"`` otherwise.
    Returns {"layers": {layer: {units, departing_fraction, low, high, by_gain,
    by_orthogonal, excess_gain (median of the unit's gain minus its null's, with
    excess_gain_low and excess_gain_high, its bootstrap interval), verdict}},
    "verdict": str}."""
    flags = departing(table, effect_size, quantile)
    deep_layers = list(deep_layers)
    missing = [name for name in deep_layers if name not in set(flags.layer)]
    if not deep_layers or missing:
        raise ValueError(f"deep layers {missing or deep_layers} have no units in the "
                         "table")
    excess = table.gain - table.gain_null
    layers = {}
    for name, part in flags.groupby("layer", sort=False):
        fraction, low, high = bootstrap_fraction(part.departs, n_boot, seed=seed)
        gain, gain_low, gain_high = bootstrap_statistic(excess[part.index], np.median,
                                                        n_boot, seed=seed)
        layers[name] = {"units": len(part), "departing_fraction": fraction, "low": low,
                        "high": high, "by_gain": float(part.by_gain.mean()),
                        "by_orthogonal": float(part.by_orthogonal.mean()),
                        "excess_gain": gain, "excess_gain_low": gain_low,
                        "excess_gain_high": gain_high,
                        "verdict": layer_verdict(low, high, holds_at, fails_at)}
    deep = [layers[name]["verdict"] for name in deep_layers]
    if all(v == "holds" for v in deep):
        verdict = "holds"
    elif all(v == "does not hold" for v in deep):
        verdict = "does not hold"
    else:
        verdict = "partly holds"
    return {"layers": layers, "verdict": verdict}


# --------------------------------------------------------------------------------------
# Controls


def control_populations(params, n_units: int = 100, axis_noises=(0.3, 0.5),
                        widths=(0.4, 0.6, 0.9), exemplar_noise: float = 0.3,
                        seed: int = 0) -> dict:
    """Simulated populations with a known answer, on the faces ``params``: pure axis
    units at each of ``axis_noises``, and pure exemplar units in each geometry
    (:data:`GEOMETRIES`) at each tuning width (times the median distance). Returns
    {label: {"kind", "geometry", "width", "noise", "responses", "units"}}."""
    out = {}
    for k, noise in enumerate(axis_noises):
        r, axes = simulate_axis_units(params, n_units, noise=noise, seed=seed + k)
        out[f"axis, noise {noise}"] = {"kind": "axis", "geometry": "whitened",
                                       "width": None, "noise": noise, "responses": r,
                                       "units": axes}
    for g, geometry in enumerate(GEOMETRIES):
        for k, width in enumerate(widths):
            r, units = simulate_exemplar_units(params, n_units, noise=exemplar_noise,
                                               width=width, geometry=geometry,
                                               seed=seed + 100 + 10 * g + k)
            out[f"exemplar, {geometry}, width {width}"] = {
                "kind": "exemplar", "geometry": geometry, "width": width,
                "noise": exemplar_noise, "responses": r, "units": units}
    return out


def control_accuracy(table: pd.DataFrame, populations: dict, effect_size: float = 0.05,
                     quantile: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How often each test labels the simulated units of :func:`control_populations`
    correctly, from their :func:`unit_table` (its layers named as the populations). One
    row per population: ``flatness`` (share called flat if axis units, not flat if
    exemplar units), ``comparison`` (axis EV above exemplar EV, or below), ``rule`` (not
    departing, or departing, by :func:`departing`), the departing fraction with its
    bootstrap interval and the layer verdict, and ``exemplar_on_bound``."""
    flags = departing(table, effect_size, quantile)
    rows = []
    for label, meta in populations.items():
        part, flag = table[table.layer == label], flags[flags.layer == label]
        if part.empty:
            raise ValueError(f"population {label!r} has no units in the table")
        is_axis = meta["kind"] == "axis"
        fraction, low, high = bootstrap_fraction(flag.departs, seed=seed)
        right_model = (part.axis > part.exemplar) == is_axis
        rows.append({"population": label, "kind": meta["kind"],
                     "geometry": meta["geometry"], "width": meta["width"],
                     "noise": meta["noise"],
                     "flatness": float((part.flat == is_axis).mean()),
                     "comparison": float(right_model.mean()),
                     "rule": float((flag.departs != is_axis).mean()),
                     "departing_fraction": fraction, "low": low, "high": high,
                     "verdict": layer_verdict(low, high),
                     "exemplar_on_bound": float(part.exemplar_on_bound.mean())})
    return pd.DataFrame(rows)
