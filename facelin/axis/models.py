"""Four models of each unit, compared by cross-validated explained variance for
thousands of units at once: linear, axis (a response function of one projection),
exemplar (a function of the distance to a preferred face) and a free reference (kernel
ridge tuned per unit); and each unit's fitted axis model with its matched null."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from .. import linalg
from ..progress import progress as progress_bar
from .._validation import real_matrix
from .tuning_curves import paired, unit_rows

__all__ = [
    "fold_indices", "fit_curves", "Curves", "kernel_features", "kernel_reference",
    "KernelFit", "compare_models", "fit_axis_model", "AxisFit", "matched_null",
]


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
                @ self.coef[s])[:, :, 0] for s in chunks(z.shape[0])]
        return torch.cat(out).T


def chunks(units: int):
    """Slices of ``units`` in blocks of ``_CHUNK`` (one batched solve each)."""
    return [slice(i, min(i + _CHUNK, units)) for i in range(0, units, _CHUNK)]


def fit_curves(z: torch.Tensor, r: torch.Tensor, n_knots: int = 5, alpha: float = 1e-8
               ) -> Curves:
    """A 1-d piecewise-linear response function per unit, ``r[:, u] ~ f_u(z[u])`` with
    ``z`` (U, n) and ``r`` (n, U), fitted by least squares (one small problem per unit,
    ``_CHUNK`` units at a time) with knots at quantiles of each unit's inputs."""
    n = z.shape[1]
    position = torch.linspace(0, n - 1, n_knots + 2)[1:-1].round().long()
    knots = z.sort(1).values[:, position]  # (U, K); one sort, cheaper than quantile
    scale = z.std(1, keepdim=True).clamp_min(1e-12)  # conditioning
    eye = alpha * torch.eye(n_knots + 2, dtype=torch.float64)
    coef = []
    for s in chunks(z.shape[0]):
        basis = _hinge_basis(z[s] / scale[s], knots[s] / scale[s])
        # Normal equations of a (K + 2)-column basis of scaled inputs: six times faster
        # here than linalg.lstsq's batched QR, and accurate to ~1e-12 on these fits.
        gram = basis.transpose(1, 2) @ basis + eye
        coef.append(torch.linalg.solve(gram, basis.transpose(1, 2) @ r.T[s, :, None]))
    return Curves(scale=scale, knots=knots, coef=torch.cat(coef))


def whitener(x_train: torch.Tensor):
    """A function mapping faces (m, d) into the whitened space of ``x_train`` (n, d):
    centred by its mean, rotated to its principal axes, each divided by its SD."""
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
    # |a|^2 + |b|^2 - 2 a.b as one GEMM, as torch.cdist computes it for these sizes,
    # without cdist's square root that the kernel would square again
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return torch.exp(-gamma * sq.clamp_min(0))


def kernel_features(x_train, scale: float = 1.0, n_centres: int = 300, seed: int = 0):
    """Nystroem features of the RBF kernel ``exp(-|a - b|^2 / (2 sigma^2))``, ``sigma =
    scale x`` the median distance between training faces, on ``n_centres`` training
    faces drawn with ``seed``: a function mapping faces (m, d) to features
    (m, n_centres) whose inner products approximate the kernel, so ridge regression on
    them is kernel ridge regression of that rank."""
    x = real_matrix(x_train, "x_train")
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=gen)[:min(n_centres, len(x))]]
    sample = x[torch.randperm(len(x), generator=gen)[:500]]
    gamma = 1.0 / (2 * scale ** 2 * torch.median(torch.pdist(sample) ** 2))
    k_cc = _rbf(centres, centres, gamma)
    jitter = 1e-8 * torch.eye(len(centres), dtype=k_cc.dtype)
    chol = torch.linalg.cholesky(k_cc + jitter)
    return lambda faces: torch.linalg.solve_triangular(
        chol, _rbf(centres, real_matrix(faces, "faces"), gamma), upper=False).T


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
    x_train, r_train = paired(x_train, r_train)
    x_test = real_matrix(x_test, "x_test")
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
    x, r = paired(params, responses)
    folds = fold_indices(x.shape[0], cv, seed)
    if (r.std(0) == 0).any():
        bad = torch.nonzero(r.std(0) == 0).flatten()[:10].tolist()
        raise ValueError(f"units {bad} give the same response to every face")
    models = ("linear", "axis", "exemplar", "reference")
    predictions = {m: torch.empty_like(r) for m in models}
    on_bound, geometry, scales, alphas = [], [], [], []
    bar = progress_bar(folds, desc="model comparison (folds)", enabled=progress)
    for k, test in enumerate(bar):
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
        axes = unit_rows(w.T)
        curves = fit_curves(axes @ (x_tr - mean_x).T, r_tr, n_knots)
        predictions["axis"][test] = curves(axes @ (x_te - mean_x).T)
        whiten = whitener(x_tr)
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
        x = real_matrix(params, "params")
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
    x, r = paired(params, responses)
    mean = x.mean(0)
    axes = unit_rows(linalg.lstsq(x - mean, r - r.mean(0)).T)
    curves = fit_curves(axes @ (x - mean).T, r, n_knots)
    fitted = curves(axes @ (x - mean).T)
    return AxisFit(mean=mean, axes=axes, curves=curves, residual_sd=(r - fitted).std(0))


def matched_null(params, responses, n_knots: int = 5, seed: int = 0) -> torch.Tensor:
    """For each unit, a pure axis unit matched to it: the unit's own regression axis and
    fitted response function ``f`` (as in the axis model), plus Gaussian noise with the
    SD of the unit's residuals about that fit. Put through the same tests as the real
    units, these say what a perfect axis unit with the same axis, anisotropy and noise
    would score. Returns (n, U)."""
    x, r = paired(params, responses)
    return fit_axis_model(x, r, n_knots).sample(x, seed)
