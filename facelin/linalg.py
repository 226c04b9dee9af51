"""Batched least squares, unit-subset fits and cross-validated ridge, on facelin's core.

Every finding of the book is a linear fit, and this module makes them exact and fast:

- :func:`lstsq` solves one design shared by many targets (factored once), or many
  independent problems at once, optionally with ridge; accurate to a small multiple of
  Householder QR's error, at about the cost of the Gram matrices when well conditioned.
- :func:`subset_lstsq` fits many column subsets of one response matrix (the
  identification-vs-number-of-units curves): one pass over the data builds the Gram
  matrix, after which each subset costs O(s^3) instead of O(n s^2).
- :func:`ridge_cv` selects a ridge penalty per target by k-fold or exact leave-one-out
  cross-validation and refits on all data; one eigendecomposition per fold serves every
  penalty and every target.

Float32 inputs are computed in float64 and returned in float32. Errors name the problem:
NaN/Inf (with the first offending index), shapes, dtypes, devices, rank deficiency.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from . import _ops

__all__ = ["lstsq", "subset_lstsq", "ridge_cv", "RidgeCVResult", "kfold_indices"]

RidgeArg = Union[float, Sequence[float], torch.Tensor]


# --------------------------------------------------------------------------- checks


def _check_tensor(name: str, t, dims: Sequence[int]) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    if t.dim() not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(t.shape)}")


def _check_same(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> None:
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.device != first.device:
            raise ValueError(f"{names[0]} is on {first.device} but {name} is on {t.device}")
        if t.dtype != first.dtype:
            raise TypeError(f"{names[0]} is {first.dtype} but {name} is {t.dtype}; "
                            "pass them in one dtype")


def _first_nonfinite(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in (~torch.isfinite(t)).nonzero()[0])


def _check_finite(name: str, t: torch.Tensor) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or Inf (first at index {_first_nonfinite(t)})")


def _ridge_vector(alpha: RidgeArg, count: int, what: str, device) -> torch.Tensor:
    r = torch.as_tensor(alpha, dtype=torch.float64).to(device).reshape(-1)
    if r.numel() == 1:
        r = r.expand(count)
    if r.numel() != count:
        raise ValueError(f"alpha must be a scalar or hold one value per {what} ({count}), "
                         f"got {r.numel()} values")
    if not bool(torch.isfinite(r).all()) or bool((r < 0).any()):
        raise ValueError(f"alpha must be finite and >= 0, got {r.tolist()[:8]}")
    return r.contiguous()


# --------------------------------------------------------------------------- lstsq


def lstsq(A: torch.Tensor, B: torch.Tensor, alpha: RidgeArg = 0.0, *,
          return_path: bool = False):
    """Least squares ``argmin_x ||A x - B||^2 + alpha ||x||^2``, shared or batched.

    Parameters
    ----------
    A : (n, p) shared design, or (batch, n, p) one design per problem.
    B : (n, k) or (batch, n, k) right-hand sides (a 2-D B with a 3-D A is broadcast to
        every problem without a copy), same dtype and device as A.
    alpha : ridge penalty: a scalar, or one value per problem (batch,), all >= 0.
    return_path : also return which method solved each problem.

    Returns
    -------
    x : (p, k) when A and B are 2-D, else (batch, p, k), in B's dtype.
    path : with ``return_path``, (batch,) int64 indices into ``_ops.LSTSQ_PATHS`` (for a
        shared design, a 0-d tensor: the SVD).

    A shared design is factored once (thin SVD) and never copied per problem; the only
    pass over B is one matrix product, so many targets cost about as much as ``A^T B``.
    Independent problems (3-D A) are solved in parallel in the compiled core, each by the
    cheapest method that a condition estimate from the Cholesky factor of its Gram matrix
    allows: the normal equations up to cond 16, one step of corrected semi-normal
    equations (few right-hand sides) up to 1e5, else CholeskyQR2, with a third pass
    where the second leaves the basis short of orthonormal (from about cond 1e8; its
    first pass shifted where A^T A has no Cholesky factor), each accurate to a small
    multiple of Householder QR's error (see ``_ops.lstsq_batched``). Without ridge,
    rank-deficient problems (and n < p) get the minimum-norm solution that LAPACK's gelsd
    gives (singular values at or below ``eps * max(n, p) * s_max`` count as zero). No
    intercept is fitted: append a column of ones to A, or see :func:`ridge_cv`. Float32
    is computed in float64.
    """
    _check_tensor("A", A, (2, 3))
    _check_tensor("B", B, (2, 3))
    _check_same(["A", "B"], [A, B])
    n_rows = A.shape[-2]
    if B.shape[-2] != n_rows:
        raise ValueError(f"A has {n_rows} rows (shape {tuple(A.shape)}) but B has "
                         f"{B.shape[-2]} (shape {tuple(B.shape)})")
    if A.dim() == 3 and B.dim() == 3 and A.shape[0] != B.shape[0]:
        raise ValueError(f"A holds {A.shape[0]} problems but B holds {B.shape[0]}")
    if n_rows == 0:
        raise ValueError("A has no rows: least squares needs at least one observation")

    if A.dim() == 2:
        _check_finite("A", A)  # small; a batch of designs is checked inside the kernel
        p = A.shape[1]
        if B.dim() == 2:
            r = _ridge_vector(alpha, 1, "problem", A.device)
            x = _shared_solve(A, B, r)
        else:
            # Many problems on one design: their columns side by side, one ridge per column.
            batch, _, k = B.shape
            r = _ridge_vector(alpha, batch, "problem", A.device)
            cols = B.permute(1, 0, 2).reshape(n_rows, batch * k)
            x = _shared_solve(A, cols, r.repeat_interleave(k) if batch * k else r[:0])
            x = x.reshape(p, batch, k).permute(1, 0, 2).contiguous()
        path = torch.tensor(_ops.LSTSQ_PATHS.index("SVD (minimum norm)"))
    else:
        batch = A.shape[0]
        r = _ridge_vector(alpha, batch, "problem", A.device)
        rhs = B if B.dim() == 3 else B.expand(batch, *B.shape)
        x, path = _ops.lstsq_batched(A, rhs, r)
    _raise_on_nonfinite_result(x, A, B)
    return (x, path) if return_path else x


# Columns of B converted to float64 per block, so that a float32 B is never copied whole.
_CAST_BLOCK = 16384


def _shared_solve(A: torch.Tensor, B: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
    """One thin SVD of A (n, p) for every column of B (n, m), a ridge per column (ridge
    (m,) or (1,)); returns (p, m) in B's dtype. Singular values at or below
    ``eps * max(n, p) * s_max`` count as zero without ridge (gelsd's rule). U^T B is the
    only pass over B. (A compiled version made the same LAPACK and BLAS calls and
    measured no faster.)"""
    n, p = A.shape
    m = B.shape[1]
    if p == 0 or m == 0:
        return B.new_zeros(p, m)
    u, s, vh = torch.linalg.svd(A.to(torch.float64), full_matrices=False)
    cutoff = torch.finfo(torch.float64).eps * max(n, p) * s.max()
    sc = s[:, None]
    pinv = torch.where(sc > cutoff, 1.0 / sc, torch.zeros_like(sc))

    def solve(block, r):
        gain = torch.where(r[None, :] > 0, sc / (sc.square() + r[None, :]), pinv)
        return vh.T @ ((u.T @ block).mul_(gain))

    if B.dtype == torch.float64:
        return solve(B, ridge)
    out = B.new_empty(p, m)
    for c0 in range(0, m, _CAST_BLOCK):
        r = ridge if ridge.numel() == 1 else ridge[c0:c0 + _CAST_BLOCK]
        out[:, c0:c0 + _CAST_BLOCK] = solve(B[:, c0:c0 + _CAST_BLOCK].to(torch.float64), r)
    return out


def _raise_on_nonfinite_result(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> None:
    """NaN/Inf in the inputs make the solution NaN: check the small result, and only then
    search the big inputs for the culprit."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        _check_finite("A", A)
        _check_finite("B", B)
        raise ValueError(f"the solution overflowed (first non-finite entry at "
                         f"{_first_nonfinite(x)}); rescale A or B")


# --------------------------------------------------------------------------- subsets


def _centred_float64(t: torch.Tensor, fit_intercept: bool):
    t64 = t.to(torch.float64)
    if not fit_intercept:
        return t64, None
    mean = t64.mean(0)
    return t64 - mean, mean


def subset_lstsq(R: torch.Tensor, Y: torch.Tensor, subsets: torch.Tensor,
                 alpha: RidgeArg = 0.0, fit_intercept: bool = True,
                 return_intercept: bool = False):
    """Regress Y on many column subsets of R: ``Y ~ R[:, subsets[b]] coef[b] (+ intercept)``.

    Parameters
    ----------
    R : (n, M) responses (for example n faces x M units).
    Y : (n, k) targets, same dtype and device as R.
    subsets : (batch, s) int64 column indices into R.
    alpha : ridge penalty, a scalar or one value per subset (batch,), >= 0.
    fit_intercept : centre R and Y by their column means first (the intercept is then
        ``Y.mean(0) - R[:, S].mean(0) @ coef``).
    return_intercept : also return the (batch, k) intercepts.

    Returns
    -------
    coef (batch, s, k) in R's dtype, or ``(coef, intercept)``.

    One pass over the data forms the float64 Gram matrix ``R^T R`` and ``R^T Y`` (of the
    centred data); every subset's normal equations are sub-matrices of them, gathered
    and solved by Cholesky in parallel, O(s^3) per subset. A subset whose normal
    equations are singular to working precision (duplicate or constant columns, s > n
    without a penalty) raises an error that names it; pass ``alpha > 0`` for those.
    """
    _check_tensor("R", R, (2,))
    _check_tensor("Y", Y, (2,))
    _check_same(["R", "Y"], [R, Y])
    if not isinstance(subsets, torch.Tensor) or subsets.dtype != torch.int64:
        raise TypeError("subsets must be an int64 torch.Tensor of column indices")
    if subsets.dim() != 2:
        raise ValueError(f"subsets must be (batch, s), got shape {tuple(subsets.shape)}")
    if subsets.device != R.device:
        raise ValueError(f"R is on {R.device} but subsets is on {subsets.device}")
    if R.shape[0] != Y.shape[0]:
        raise ValueError(f"R has {R.shape[0]} rows but Y has {Y.shape[0]}")
    if R.shape[0] == 0:
        raise ValueError("R has no rows: least squares needs at least one observation")
    _check_finite("R", R)
    _check_finite("Y", Y)
    batch = subsets.shape[0]
    r = _ridge_vector(alpha, batch, "subset", R.device)
    rc, r_mean = _centred_float64(R, fit_intercept)
    yc, y_mean = _centred_float64(Y, fit_intercept)
    gram = _symmetric_gram(rc)
    cross = rc.T @ yc
    coef = _ops.subset_solve(gram, cross, subsets.contiguous(), r)
    out = coef.to(R.dtype)
    if not return_intercept:
        return out
    if fit_intercept:
        intercept = y_mean - torch.einsum("bs,bsk->bk", r_mean[subsets], coef)
    else:
        intercept = coef.new_zeros(batch, Y.shape[1])
    return out, intercept.to(R.dtype)


def _symmetric_gram(x: torch.Tensor, block: int = 512) -> torch.Tensor:
    """x^T x computed one block row at a time from the diagonal on, then mirrored: about
    half the work of the full product for wide x."""
    m = x.shape[1]
    if m <= 2 * block:
        return x.T @ x
    gram = x.new_empty(m, m)
    for i in range(0, m, block):
        stop = min(i + block, m)
        gram[i:stop, i:] = x[:, i:stop].T @ x[:, i:]
        gram[stop:, i:stop] = gram[i:stop, stop:].T
    return gram


# --------------------------------------------------------------------------- ridge CV


@dataclass
class RidgeCVResult:
    """Outcome of :func:`ridge_cv` for k targets and p features.

    Attributes
    ----------
    alpha : (k,) the penalty chosen for each target.
    alpha_index : (k,) its index in ``alphas``.
    coef : (k, p) coefficients refit on all rows with each target's alpha (scikit-learn's
        ``coef_`` orientation).
    intercept : (k,) intercepts of that refit (zeros when ``fit_intercept=False``).
    cv_predictions : (n, k) cross-validated predictions with each target's alpha: every
        row predicted by the model of the fold that held it out.
    explained_variance : (k,) ``1 - SSE / SST`` of those predictions, SST about the mean
        of all rows (about zero when ``fit_intercept=False``).
    cv_mse : (n_alphas, k) cross-validated mean squared error, the mean over folds of
        each fold's mean squared error (the selection criterion).
    alphas : (n_alphas,) the penalties tried.
    """

    alpha: torch.Tensor
    alpha_index: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    cv_predictions: torch.Tensor
    explained_variance: torch.Tensor
    cv_mse: torch.Tensor
    alphas: torch.Tensor

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Predictions ``X @ coef.T + intercept`` of the refit model for new rows X (m, p)."""
        return X.to(self.coef.dtype) @ self.coef.T + self.intercept


def kfold_indices(n: int, n_folds: int) -> list[torch.Tensor]:
    """Held-out rows of each fold: contiguous blocks, the first ``n % n_folds`` one row
    longer (scikit-learn's ``KFold`` without shuffling)."""
    sizes = [n // n_folds + (1 if f < n % n_folds else 0) for f in range(n_folds)]
    bounds = torch.tensor([0] + sizes).cumsum(0).tolist()
    return [torch.arange(bounds[f], bounds[f + 1]) for f in range(n_folds)]


def _eigh_ridge_basis(gram: torch.Tensor):
    """Eigenvalues (clipped at zero) and eigenvectors of a symmetric Gram matrix."""
    evals, evecs = torch.linalg.eigh(gram)
    return evals.clamp_min(0.0), evecs


def ridge_cv(X: torch.Tensor, Y: torch.Tensor, alphas: Sequence[float] | torch.Tensor,
             cv: int | str = 10, fit_intercept: bool = True) -> RidgeCVResult:
    """Ridge regression of every column of Y on X, with the penalty chosen per target by
    cross-validation, then refit on all rows.

    Parameters
    ----------
    X : (n, p) design; Y : (n, k) targets, same dtype and device.
    alphas : penalties to try, all > 0 (for no penalty use :func:`lstsq`).
    cv : number of folds (contiguous, as scikit-learn's ``KFold``) or ``"loo"`` for exact
        leave-one-out through the hat-matrix diagonal, ``e_i / (1 - h_ii)``.
    fit_intercept : fit an unpenalised intercept; inside each fold X and Y are centred
        with the means of that fold's training rows only.

    Returns
    -------
    :class:`RidgeCVResult`; the alpha minimising the mean over folds of the held-out mean
    squared error is chosen per target (the first such alpha on ties), as himalaya's and
    scikit-learn's ``RidgeCV`` do.

    One eigendecomposition of each fold's Gram matrix (downdated from the full one, not
    recomputed) serves every alpha and target; the held-out residuals of all alphas are
    reduced to sums of squares in the compiled core: on the CPU one cache-sized block of
    targets at a time, never as an alphas x n x k array; on CUDA in chunks of targets
    whose alphas x n x targets residuals take at most 2 GiB. Float32 is computed in
    float64.
    """
    _check_tensor("X", X, (2,))
    _check_tensor("Y", Y, (2,))
    _check_same(["X", "Y"], [X, Y])
    n, p = X.shape
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} rows but Y has {Y.shape[0]}")
    a = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1).to(X.device)
    if a.numel() == 0 or not bool(torch.isfinite(a).all()) or bool((a <= 0).any()):
        raise ValueError(f"alphas must be a non-empty list of finite values > 0, got "
                         f"{a.tolist()[:8]}")
    loo = isinstance(cv, str)
    if loo and cv != "loo":
        raise ValueError(f"cv must be an int (folds) or 'loo', got {cv!r}")
    if not loo and (not isinstance(cv, int) or isinstance(cv, bool) or not 2 <= cv <= n):
        raise ValueError(f"cv must be an int between 2 and n = {n} or 'loo', got {cv!r}")
    if n < 2:
        raise ValueError(f"ridge_cv needs at least 2 rows, got {n}")
    _check_finite("X", X)
    _check_finite("Y", Y)

    # Centring by the global means is a shift that the per-fold centring undoes exactly;
    # it only keeps the downdated Gram matrices free of cancellation.
    x0, x_mean = _centred_float64(X, fit_intercept)
    y0, y_mean = _centred_float64(Y, fit_intercept)
    gram_all = x0.T @ x0
    cross_all = x0.T @ y0

    if loo:
        cv_mse, predict_cv = _loo_path(x0, y0, gram_all, cross_all, a, fit_intercept)
    else:
        cv_mse, predict_cv = _kfold_path(x0, y0, gram_all, cross_all, a, cv, fit_intercept)

    best = torch.argmin(cv_mse, dim=0)  # first minimum on ties
    cv_pred0 = predict_cv(best)

    # Refit on all rows, x0 and y0 centred (when fitting an intercept) by the full means.
    evals, evecs = _eigh_ridge_basis(gram_all)
    gains = _ridge_gains(evals, a)[best].T  # (p, k)
    coef = evecs @ (gains * (evecs.T @ cross_all))
    if fit_intercept:
        intercept = y_mean - x_mean @ coef
        cv_pred = cv_pred0 + y_mean
    else:
        intercept = coef.new_zeros(Y.shape[1])
        cv_pred = cv_pred0
    # y0 is centred when fitting an intercept, so this is SST about the mean.
    ev = 1.0 - (y0 - cv_pred0).square().sum(0) / y0.square().sum(0)
    dtype = Y.dtype
    return RidgeCVResult(alpha=a[best].to(dtype), alpha_index=best, coef=coef.T.to(dtype),
                         intercept=intercept.to(dtype), cv_predictions=cv_pred.to(dtype),
                         explained_variance=ev.to(dtype), cv_mse=cv_mse.to(dtype),
                         alphas=a.to(dtype))


def _ridge_gains(evals: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """(n_alphas, r) gains 1 / (eigenvalue + alpha)."""
    return 1.0 / (evals[None, :] + alphas[:, None])


def _kfold_path(x0, y0, gram_all, cross_all, alphas, n_folds, fit_intercept):
    n = x0.shape[0]
    folds = kfold_indices(n, n_folds)
    sse = []

    def fold_basis(test):
        """Eigenbasis, held-out design in it, rotated cross-products, held-out targets."""
        test = test.to(x0.device)
        x_te, y_te = x0[test], y0[test]
        n_tr = n - test.numel()
        gram = gram_all - x_te.T @ x_te
        cross = cross_all - x_te.T @ y_te
        if fit_intercept:
            # Training means from the training rows only: (total - held out) / n_train.
            # x0, y0 sum to zero over all rows, so the training rows sum to minus the
            # held-out sums.
            mu_x = -x_te.sum(0) / n_tr
            mu_y = -y_te.sum(0) / n_tr
            gram = gram - n_tr * torch.outer(mu_x, mu_x)
            cross = cross - n_tr * torch.outer(mu_x, mu_y)
            x_te = x_te - mu_x
            y_te = y_te - mu_y
        else:
            mu_y = None
        evals, evecs = _eigh_ridge_basis(gram)
        return evals, x_te @ evecs, evecs.T @ cross, y_te, mu_y, test

    # The per-fold bases are kept for the prediction pass when they fit in 1 GiB.
    keep = len(folds) * x0.shape[1] * (y0.shape[1] + x0.shape[0]) * 8 <= 2**30
    kept = []
    empty = x0.new_empty(0, 0)
    for test in folds:
        basis = fold_basis(test)
        if keep:
            kept.append(basis)
        evals, m, z, y_te, _, _ = basis
        sse.append(_ops.ridge_path_sse(m, z.contiguous(), y_te.contiguous(),
                                       _ridge_gains(evals, alphas), empty) / test.numel())
    cv_mse = torch.stack(sse).mean(0)

    def predict(best):
        pred = torch.empty_like(y0)
        for f, test in enumerate(folds):
            evals, m, z, _, mu_y, test = kept[f] if keep else fold_basis(test)
            gains = _ridge_gains(evals, alphas)[best].T
            fold_pred = m @ (gains * z)
            pred[test] = fold_pred + mu_y if mu_y is not None else fold_pred
        return pred

    return cv_mse, predict


def _loo_path(x0, y0, gram_all, cross_all, alphas, fit_intercept):
    n = x0.shape[0]
    evals, evecs = _eigh_ridge_basis(gram_all)
    m = x0 @ evecs
    z = (evecs.T @ cross_all).contiguous()
    gains = _ridge_gains(evals, alphas)
    # Hat-matrix diagonal of every alpha; the unpenalised intercept adds 1/n.
    hat = (m.square() @ gains.T).T + (1.0 / n if fit_intercept else 0.0)  # (a, n)
    if bool((hat >= 1 - 1e-12).any()):
        bad = int((hat >= 1 - 1e-12).any(0).nonzero()[0])
        raise ValueError(f"leave-one-out is undefined: row {bad} has leverage 1 (the fit "
                         "without it cannot predict it); use a larger alpha or k-fold cv")
    scale = 1.0 / (1.0 - hat)
    cv_mse = _ops.ridge_path_sse(m, z, y0.contiguous(), gains, scale.contiguous()) / n

    def predict(best):
        resid = y0 - m @ (gains[best].T * z)
        return y0 - resid * scale[best].T

    return cv_mse, predict
