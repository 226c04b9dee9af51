"""facelin.linalg and its compiled ops: agreement with LAPACK (gelsd), scikit-learn and
himalaya, accuracy on ill-conditioned problems, exact cross-validation, errors."""
import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.linear_model import Ridge, RidgeCV

from facelin import _ops, linalg

F64 = torch.float64
EPS = np.finfo(np.float64).eps


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def with_condition(n, p, cond, seed):
    """An (n, p) matrix with singular values spread log-uniformly from 1 to 1/cond."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, p)))
    v, _ = np.linalg.qr(rng.standard_normal((p, p)))
    return torch.from_numpy(u @ np.diag(np.logspace(0, -np.log10(cond), p)) @ v.T)


def gelsd(a, b):
    return torch.from_numpy(scipy.linalg.lstsq(a.numpy(), b.numpy(), lapack_driver="gelsd")[0])


def rel_err(x, ref):
    return float(torch.linalg.norm(x - ref) / torch.linalg.norm(ref))


# --------------------------------------------------------------------------- lstsq


@pytest.mark.parametrize("n, p, k", [(50, 5, 3), (200, 30, 1), (9, 9, 2), (400, 60, 17)])
def test_shared_design_matches_gelsd(n, p, k):
    a, b = randn(n, p, seed=n), randn(n, k, seed=p)
    x = linalg.lstsq(a, b)
    assert x.shape == (p, k)
    assert rel_err(x, gelsd(a, b)) < 1e-12


@pytest.mark.parametrize("n, p, k", [(50, 5, 3), (200, 30, 1), (12, 12, 4), (300, 80, 9)])
def test_batched_problems_match_gelsd(n, p, k):
    a, b = randn(6, n, p, seed=1), randn(6, n, k, seed=2)
    x = linalg.lstsq(a, b)
    assert x.shape == (6, p, k)
    for i in range(6):
        assert rel_err(x[i], gelsd(a[i], b[i])) < 1e-12


@pytest.mark.parametrize("cond", [1e2, 1e4, 1e6, 1e8])
def test_ill_conditioned_problems_reach_qr_accuracy(cond):
    # Zero residual: Householder QR's forward error is O(cond * eps); normal equations
    # would give O(cond^2 * eps), far outside the bound from cond 1e4 on.
    a = torch.stack([with_condition(300, 25, cond, seed) for seed in range(3)])
    x_true = randn(3, 25, 4, seed=5)
    b = a @ x_true
    bound = 50 * cond * EPS
    batched = linalg.lstsq(a, b)
    for i in range(3):
        assert rel_err(batched[i], x_true[i]) < bound
        assert rel_err(linalg.lstsq(a[i], b[i]), x_true[i]) < bound


def householder(a, b):
    """Householder QR with column pivoting (LAPACK gelsy, torch.linalg.lstsq's default on
    the CPU). Plain geqrf shares its first step with gelsd (a QR when n >> p), so its
    difference from gelsd would understate a QR's rounding error."""
    return gelsy(a, b)


def gelsy(a, b):
    return torch.from_numpy(scipy.linalg.lstsq(a.numpy(), b.numpy(), lapack_driver="gelsy")[0])


@pytest.mark.parametrize("cond", [1.0, 1e4, 1e8, 1e10])
@pytest.mark.parametrize("k", [3, 40])  # few right-hand sides: refinement; many: CholeskyQR2
@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_accuracy_within_a_small_multiple_of_householder_qr(cond, k, noise):
    # Relative error against gelsd, per problem, next to Householder QR's: at cond 1e8
    # the normal equations alone would be off by eps cond^2 > 1.
    a = torch.stack([with_condition(400, 30, cond, seed) for seed in range(3)])
    b = a @ randn(3, 30, k, seed=6) + noise * randn(3, 400, k, seed=7)
    x, path = linalg.lstsq(a, b, return_path=True)
    for i in range(3):
        ref = gelsd(a[i], b[i])
        qr_err = rel_err(householder(a[i], b[i]), ref)
        assert rel_err(x[i], ref) <= 10 * max(qr_err, 10 * EPS)
    assert set(path.tolist()) <= set(range(4))


def test_gram_without_cholesky_factor_gets_shifted_cholesky_qr3():
    # At cond 1e10 the Gram matrix A^T A is singular to working precision: the first
    # CholeskyQR factor is that of the shifted Gram matrix, and three passes follow.
    a = torch.stack([with_condition(400, 30, 1e10, seed) for seed in range(3)])
    assert (torch.linalg.cholesky_ex(a.mT @ a).info > 0).all()
    b = a @ randn(3, 30, 5, seed=12) + 1e-3 * randn(3, 400, 5, seed=13)
    x, path = linalg.lstsq(a, b, return_path=True)
    assert set(path.tolist()) == {_ops.LSTSQ_PATHS.index("CholeskyQR3")}
    for i in range(3):
        ref = gelsd(a[i], b[i])
        assert rel_err(x[i], ref) <= 10 * rel_err(householder(a[i], b[i]), ref)


def test_rank_deficient_accuracy_and_path():
    a = torch.stack([with_condition(300, 20, 1e3, seed) for seed in range(2)])
    a[1, :, 7] = a[1, :, 3] - 2 * a[1, :, 11]  # rank 19
    b = randn(2, 300, 5, seed=9)
    x, path = linalg.lstsq(a, b, return_path=True)
    assert path.tolist()[1] == _ops.LSTSQ_PATHS.index("SVD (minimum norm)")
    assert rel_err(x[1], gelsd(a[1], b[1])) < 1e-10
    # With a ridge the same problem is full rank and needs no SVD.
    xr, path_r = linalg.lstsq(a, b, alpha=[0.0, 1e-3], return_path=True)
    assert path_r.tolist()[1] != _ops.LSTSQ_PATHS.index("SVD (minimum norm)")
    ref = Ridge(alpha=1e-3, fit_intercept=False, solver="svd").fit(a[1].numpy(), b[1].numpy())
    assert rel_err(xr[1], torch.from_numpy(ref.coef_.T)) < 1e-9


@pytest.mark.parametrize(
    "cond, k, expected",
    [
        (1.0, 4, "normal equations"),
        (1e3, 4, "refined normal equations"),
        (1e3, 40, "CholeskyQR2"),
        (1e6, 4, "CholeskyQR2"),
        (1e8, 40, "CholeskyQR2"),  # Q1 still orthonormal enough for two passes
        (1e9, 4, "CholeskyQR3"),
        (1e10, 40, "CholeskyQR3"),
    ],
)
def test_each_path_is_taken_where_its_estimate_says(cond, k, expected):
    a = with_condition(400, 30, cond, 3)[None] if cond > 1 else randn(1, 400, 30, seed=3)
    x_true = randn(1, 30, k, seed=4)
    x, path = linalg.lstsq(a, a @ x_true, return_path=True)
    assert _ops.LSTSQ_PATHS[int(path[0])] == expected
    assert rel_err(x[0], x_true[0]) < 50 * cond * EPS


def test_cuda_algorithm_on_the_cpu_matches_the_cpu_kernel():
    # lstsq_batched_masked runs the CUDA kernel's batched algorithm (paths chosen by
    # masks over the whole batch) on the CPU: same paths, and solutions that agree to
    # within the accuracy of Householder QR (the CPU kernel computes its products in
    # another layout, hence other rounding).
    conds = (1.0, 1e3, 1e6, 1e9, 1e3)
    a = torch.stack([with_condition(300, 20, c, i) if c > 1 else randn(300, 20, seed=i)
                     for i, c in enumerate(conds)])
    a[4, :, 5] = a[4, :, 2]  # rank-deficient
    for k, ridge in [(3, [0.0] * 5), (40, [0.0] * 5), (3, [0.0, 1e-3, 0.0, 1e-2, 0.0])]:
        b = randn(5, 300, k, seed=k)
        r = torch.tensor(ridge, dtype=F64)
        x, path = _ops.lstsq_batched(a, b, r)
        xm, path_m = _ops.library().lstsq_batched_masked(a, b, r)
        assert path_m.tolist() == path.tolist()
        for i in range(5):
            qr_err = rel_err(householder(a[i], b[i]), gelsd(a[i], b[i]))
            assert rel_err(xm[i], x[i]) < max(1e-9, 10 * qr_err)
    assert len(set(path.tolist())) >= 3


def test_mixed_conditioning_in_one_batch():
    a = torch.stack([with_condition(200, 10, c, 7) for c in (1.5, 1e3, 1e7)])
    x_true = randn(3, 10, 2, seed=8)
    x = linalg.lstsq(a, a @ x_true)
    for i, c in enumerate((1.5, 1e3, 1e7)):
        assert rel_err(x[i], x_true[i]) < 50 * c * EPS


def test_float32_inputs_are_solved_in_float64():
    a, b = randn(500, 20, seed=3, dtype=torch.float32), randn(500, 6, seed=4, dtype=torch.float32)
    ref = gelsd(a.double(), b.double())
    shared, batched = linalg.lstsq(a, b), linalg.lstsq(a[None], b[None])[0]
    assert shared.dtype == batched.dtype == torch.float32
    # float64 arithmetic: only the final rounding to float32 remains.
    assert rel_err(shared.double(), ref) < 2e-7 and rel_err(batched.double(), ref) < 2e-7


@pytest.mark.parametrize("n, p", [(40, 10), (15, 40)])
def test_ridge_matches_sklearn(n, p):
    a, b = randn(4, n, p, seed=n), randn(4, n, 3, seed=p)
    ridges = torch.tensor([0.1, 1.0, 10.0, 1e3])
    batched = linalg.lstsq(a, b, alpha=ridges)
    shared = linalg.lstsq(a[0], b, alpha=ridges)
    for i, r in enumerate(ridges.tolist()):
        ref = Ridge(alpha=r, fit_intercept=False, solver="svd").fit(a[i].numpy(), b[i].numpy())
        assert rel_err(batched[i], torch.from_numpy(ref.coef_.T)) < 1e-11
        ref0 = Ridge(alpha=r, fit_intercept=False, solver="svd").fit(a[0].numpy(), b[i].numpy())
        assert rel_err(shared[i], torch.from_numpy(ref0.coef_.T)) < 1e-11


def test_rank_deficient_problems_get_gelsd_minimum_norm():
    a = randn(3, 60, 8, seed=11)
    a[1, :, 5] = a[1, :, 2] * 3  # a duplicated direction
    a[2, :, 7] = 0.0              # an empty column
    b = randn(3, 60, 2, seed=12)
    batched = linalg.lstsq(a, b)
    for i in range(3):
        assert rel_err(batched[i], gelsd(a[i], b[i])) < 1e-10
        assert rel_err(linalg.lstsq(a[i], b[i]), gelsd(a[i], b[i])) < 1e-10


def test_underdetermined_without_ridge_is_minimum_norm():
    a, b = randn(2, 10, 30, seed=13), randn(2, 10, 3, seed=14)
    x = linalg.lstsq(a, b)
    for i in range(2):
        assert rel_err(x[i], gelsd(a[i], b[i])) < 1e-12


def test_non_contiguous_broadcast_and_empty_inputs():
    base_a, base_b = randn(3, 9, 80, seed=15), randn(3, 4, 80, seed=16)
    a, b = base_a.transpose(1, 2), base_b.transpose(1, 2)  # (3, 80, 9), (3, 80, 4) views
    x = linalg.lstsq(a, b)
    for i in range(3):
        assert rel_err(x[i], gelsd(a[i].contiguous(), b[i].contiguous())) < 1e-12
    # One B for every problem, broadcast without a copy.
    xb = linalg.lstsq(a, b[0])
    assert rel_err(xb[2], gelsd(a[2].contiguous(), b[0].contiguous())) < 1e-12
    # One design for many B, with a ridge per problem.
    xs = linalg.lstsq(a[0], b, alpha=[0.0, 1.0, 2.0])
    assert rel_err(xs[0], gelsd(a[0].contiguous(), b[0].contiguous())) < 1e-12
    assert linalg.lstsq(randn(0, 5, 3), randn(0, 5, 2)).shape == (0, 3, 2)
    assert linalg.lstsq(randn(5, 3), randn(5, 0)).shape == (3, 0)
    assert linalg.lstsq(randn(5, 3), randn(0, 5, 2)).shape == (0, 3, 2)


@pytest.mark.parametrize(
    "a, b, ridge, error, message",
    [
        (torch.ones(4, 2), torch.ones(5, 1), 0.0, ValueError, "A has 4 rows"),
        (torch.ones(2, 4, 2), torch.ones(3, 4, 1), 0.0, ValueError, "2 problems but B holds 3"),
        (torch.ones(4, 2, dtype=torch.int64), torch.ones(4, 1), 0.0, TypeError, "float32 or"),
        (torch.ones(4, 2), torch.ones(4, 1, dtype=F64), 0.0, TypeError, "one dtype"),
        (torch.ones(4), torch.ones(4, 1), 0.0, ValueError, "2 or 3 dimensions"),
        (torch.ones(2, 4, 2), torch.ones(2, 4, 1), [1.0, 2.0, 3.0], ValueError, "one value per"),
        (torch.ones(4, 2), torch.ones(4, 1), -1.0, ValueError, ">= 0"),
        (torch.ones(0, 2), torch.ones(0, 1), 0.0, ValueError, "no rows"),
        ([[1.0]], torch.ones(1, 1), 0.0, TypeError, "must be a torch.Tensor"),
    ],
)
def test_lstsq_rejects_bad_input(a, b, ridge, error, message):
    with pytest.raises(error, match=message):
        linalg.lstsq(a, b, ridge)


def test_lstsq_names_nonfinite_entries():
    a, b = randn(2, 20, 3, seed=17), randn(2, 20, 2, seed=18)
    a[1, 4, 2] = float("nan")
    with pytest.raises(ValueError, match=r"A holds NaN or Inf \(first at index \(1, 4, 2\)\)"):
        linalg.lstsq(a, b)
    a[1, 4, 2] = 0.0
    b[0, 7, 1] = float("inf")
    with pytest.raises(ValueError, match=r"B holds NaN or Inf \(first at index \(0, 7, 1\)\)"):
        linalg.lstsq(a, b)
    with pytest.raises(ValueError, match=r"B holds NaN or Inf \(first at index \(7, 1\)\)"):
        linalg.lstsq(a[0], b[0])


# --------------------------------------------------------------------------- subsets


def subset_reference(r, y, idx, ridge, fit_intercept):
    cols = r[:, idx].numpy()
    if ridge > 0:
        m = Ridge(alpha=ridge, fit_intercept=fit_intercept, solver="svd").fit(cols, y.numpy())
        return m.coef_.T, (m.intercept_ if fit_intercept else 0.0)
    if fit_intercept:
        sol = np.linalg.lstsq(np.c_[cols, np.ones(len(cols))], y.numpy(), rcond=None)[0]
        return sol[:-1], sol[-1]
    return np.linalg.lstsq(cols, y.numpy(), rcond=None)[0], 0.0


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("ridge", [0.0, 5.0])
def test_subset_lstsq_matches_per_subset_fits(fit_intercept, ridge):
    r, y = randn(150, 40, seed=19) + 3.0, randn(150, 3, seed=20) - 1.0
    subsets = torch.stack([torch.randperm(40, generator=gen(i))[:12] for i in range(9)])
    coef, intercept = linalg.subset_lstsq(r, y, subsets, alpha=ridge, fit_intercept=fit_intercept,
                                          return_intercept=True)
    assert coef.shape == (9, 12, 3) and intercept.shape == (9, 3)
    for i in range(9):
        ref_coef, ref_int = subset_reference(r, y, subsets[i], ridge, fit_intercept)
        np.testing.assert_allclose(coef[i].numpy(), ref_coef, rtol=0, atol=1e-11)
        np.testing.assert_allclose(intercept[i].numpy(), ref_int, rtol=0, atol=1e-11)


def test_subset_lstsq_wide_response_matrix():
    # More than 1024 columns: the Gram matrix is assembled block by block.
    r, y = randn(40, 1100, seed=47), randn(40, 2, seed=48)
    subsets = torch.tensor([[0, 600, 1099], [1098, 5, 512], [1023, 1024, 1025]])
    coef, intercept = linalg.subset_lstsq(r, y, subsets, return_intercept=True)
    for i in range(3):
        ref_coef, ref_int = subset_reference(r, y, subsets[i], 0.0, True)
        np.testing.assert_allclose(coef[i].numpy(), ref_coef, rtol=0, atol=1e-12)
        np.testing.assert_allclose(intercept[i].numpy(), ref_int, rtol=0, atol=1e-12)


def test_subset_lstsq_ridge_per_subset_and_float32():
    r, y = randn(80, 20, seed=21), randn(80, 2, seed=22)
    subsets = torch.tensor([[0, 1, 2], [0, 1, 2]])
    coef = linalg.subset_lstsq(r, y, subsets, alpha=[0.0, 100.0])
    assert not torch.allclose(coef[0], coef[1])
    coef32 = linalg.subset_lstsq(r.float(), y.float(), subsets, alpha=[0.0, 100.0])
    assert coef32.dtype == torch.float32
    torch.testing.assert_close(coef32.double(), coef, rtol=1e-6, atol=1e-7)
    assert linalg.subset_lstsq(r, y, torch.empty(0, 4, dtype=torch.int64)).shape == (0, 4, 2)


def test_rank_deficient_subset_is_named():
    r, y = randn(60, 10, seed=23), randn(60, 2, seed=24)
    r[:, 7] = 2 * r[:, 3] + 1  # collinear with column 3 once centred
    subsets = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 3, 7], [2, 8, 9]])
    with pytest.raises(RuntimeError, match="subset 2 is rank-deficient"):
        linalg.subset_lstsq(r, y, subsets)
    # A ridge makes it solvable; without centring column 7 is not collinear with column 3.
    assert torch.isfinite(linalg.subset_lstsq(r, y, subsets, alpha=1e-3)).all()
    assert torch.isfinite(linalg.subset_lstsq(r, y, subsets, fit_intercept=False)).all()


@pytest.mark.parametrize(
    "subsets, error, message",
    [
        (torch.tensor([[0, 10]]), RuntimeError, r"indices in \[0, 10\]"),
        (torch.tensor([[0, 1]], dtype=torch.int32), TypeError, "int64"),
        (torch.tensor([0, 1]), ValueError, r"\(batch, s\)"),
    ],
)
def test_subset_lstsq_rejects_bad_subsets(subsets, error, message):
    with pytest.raises(error, match=message):
        linalg.subset_lstsq(randn(30, 10), randn(30, 2), subsets)


def test_subset_lstsq_rejects_nonfinite_and_shape_mismatch():
    r = randn(30, 10)
    r[3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"R holds NaN or Inf \(first at index \(3, 4\)\)"):
        linalg.subset_lstsq(r, randn(30, 2), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="R has 30 rows but Y has 29"):
        linalg.subset_lstsq(randn(30, 10), randn(29, 2), torch.tensor([[0, 1]]))


# --------------------------------------------------------------------------- ridge_cv


def brute_force_cv(x, y, alphas, folds, fit_intercept):
    """Held-out predictions (n_alphas, n, k) and mean-over-folds MSE, one sklearn fit each."""
    n, k = y.shape
    preds = np.zeros((len(alphas), n, k))
    mse = np.zeros((len(alphas), k))
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        for j, alpha in enumerate(alphas):
            m = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd")
            m.fit(x[train], y[train])
            preds[j, test] = m.predict(x[test])
            mse[j] += ((preds[j, test] - y[test]) ** 2).mean(0) / len(folds)
    return preds, mse


def cv_problem(n=90, p=12, k=6, seed=25):
    x = randn(n, p, seed=seed) * torch.linspace(0.2, 3, p, dtype=F64) + 4.0
    w = randn(p, k, seed=seed + 1) * torch.logspace(-2, 0, k, dtype=F64)
    y = x @ w + randn(n, k, seed=seed + 2) + 10.0
    return x, y


@pytest.mark.parametrize("cv", [5, 7, "loo"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_cv_equals_brute_force(cv, fit_intercept):
    x, y = cv_problem()
    alphas = [0.01, 1.0, 30.0, 1e3, 1e5]
    res = linalg.ridge_cv(x, y, alphas, cv=cv, fit_intercept=fit_intercept)
    folds = ([np.array([i]) for i in range(len(x))] if cv == "loo"
             else [f.numpy() for f in linalg.kfold_indices(len(x), cv)])
    preds, mse = brute_force_cv(x.numpy(), y.numpy(), alphas, folds, fit_intercept)
    np.testing.assert_allclose(res.cv_mse.numpy(), mse, rtol=1e-10)
    best = mse.argmin(0)
    assert res.alpha_index.tolist() == best.tolist()
    assert len(set(best.tolist())) > 1  # the targets really choose different alphas
    cv_pred = preds[best, :, np.arange(y.shape[1])].T
    np.testing.assert_allclose(res.cv_predictions.numpy(), cv_pred, rtol=1e-10, atol=1e-10)
    sse = ((y.numpy() - cv_pred) ** 2).sum(0)
    centre = y.numpy().mean(0) if fit_intercept else 0.0
    sst = ((y.numpy() - centre) ** 2).sum(0)
    np.testing.assert_allclose(res.explained_variance.numpy(), 1 - sse / sst, rtol=1e-10)
    for t, j in enumerate(best):
        full = Ridge(alpha=alphas[j], fit_intercept=fit_intercept, solver="svd")
        full.fit(x.numpy(), y[:, t].numpy())
        np.testing.assert_allclose(res.coef[t].numpy(), full.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(res.intercept[t]), full.intercept_, rtol=1e-10,
                                   atol=1e-10)
    torch.testing.assert_close(res.predict(x), x @ res.coef.T + res.intercept)


def test_kfold_centring_never_sees_held_out_rows():
    # With one alpha, a fold's held-out predictions may depend on its inputs X but not on
    # its targets Y: centring with held-out targets would leak them into the predictions.
    x, y = cv_problem(seed=26)
    folds = linalg.kfold_indices(len(x), 5)
    before = linalg.ridge_cv(x, y, [3.0], cv=5).cv_predictions
    y2 = y.clone()
    y2[folds[2]] += 100.0 * randn(len(folds[2]), y.shape[1], seed=27)
    after = linalg.ridge_cv(x, y2, [3.0], cv=5).cv_predictions
    torch.testing.assert_close(after[folds[2]], before[folds[2]], rtol=1e-12, atol=1e-10)
    assert not torch.allclose(after[folds[0]], before[folds[0]])


def test_ridge_cv_loo_matches_sklearn_ridgecv():
    x, y = cv_problem(n=70, p=20, k=5, seed=28)
    alphas = np.logspace(-2, 4, 9)
    res = linalg.ridge_cv(x, y, alphas, cv="loo")
    ref = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(res.alpha.numpy(), ref.alpha_)
    np.testing.assert_allclose(res.coef.numpy(), ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.intercept.numpy(), ref.intercept_, rtol=1e-9, atol=1e-10)


def test_ridge_cv_kfold_matches_himalaya():
    himalaya_ridge = pytest.importorskip("himalaya.ridge")
    x, y = cv_problem(n=100, p=15, k=8, seed=29)
    alphas = np.logspace(-2, 5, 8)
    res = linalg.ridge_cv(x, y, alphas, cv=5)
    ref = himalaya_ridge.RidgeCV(alphas=alphas, cv=5, fit_intercept=True).fit(x.numpy(),
                                                                             y.numpy())
    np.testing.assert_allclose(res.alpha.numpy(), np.asarray(ref.best_alphas_), rtol=1e-6)
    np.testing.assert_allclose(res.coef.T.numpy(), np.asarray(ref.coef_), rtol=1e-8,
                               atol=1e-11)
    np.testing.assert_allclose(res.intercept.numpy(), np.asarray(ref.intercept_), rtol=1e-8)


def test_ridge_cv_wide_design_and_float32():
    x, y = cv_problem(n=40, p=60, k=3, seed=30)
    res = linalg.ridge_cv(x, y, [0.1, 10.0, 1e3], cv=4)
    preds, mse = brute_force_cv(x.numpy(), y.numpy(), [0.1, 10.0, 1e3],
                                [f.numpy() for f in linalg.kfold_indices(40, 4)], True)
    np.testing.assert_allclose(res.cv_mse.numpy(), mse, rtol=1e-8)
    res32 = linalg.ridge_cv(x.float(), y.float(), [0.1, 10.0, 1e3], cv=4)
    assert res32.coef.dtype == torch.float32
    assert res32.alpha_index.tolist() == res.alpha_index.tolist()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(cv=1), ValueError, "between 2 and n"),
        (dict(cv="gcv"), ValueError, "'loo'"),
        (dict(alphas=[1.0, -1.0]), ValueError, "> 0"),
        (dict(alphas=[]), ValueError, "non-empty"),
        (dict(Y=torch.ones(9, 2, dtype=F64)), ValueError, "X has 10 rows but Y has 9"),
    ],
)
def test_ridge_cv_rejects_bad_input(kwargs, error, message):
    args = dict(X=randn(10, 3), Y=randn(10, 2), alphas=[1.0], cv=5) | kwargs
    with pytest.raises(error, match=message):
        linalg.ridge_cv(**args)


def test_ridge_cv_names_nonfinite_entries():
    y = randn(10, 2)
    y[6, 1] = float("nan")
    with pytest.raises(ValueError, match=r"Y holds NaN or Inf \(first at index \(6, 1\)\)"):
        linalg.ridge_cv(randn(10, 3), y, [1.0], cv=5)


# --------------------------------------------------------------------------- the ops


def test_ridge_path_sse_matches_dense_formula():
    m, z, y = randn(30, 7, seed=31), randn(7, 150, seed=32), randn(30, 150, seed=33)
    gains, scale = randn(4, 7, seed=34).abs(), randn(4, 30, seed=35)
    dense = ((y - m @ (gains[:, :, None] * z)) * scale[:, :, None]).square().sum(1)
    torch.testing.assert_close(_ops.ridge_path_sse(m, z, y, gains, scale), dense)
    plain = (y - m @ (gains[:, :, None] * z)).square().sum(1)
    torch.testing.assert_close(_ops.ridge_path_sse(m, z, y, gains, no_row_scale()), plain)


def no_row_scale():
    """The empty row_scale that ridge_path_sse takes for plain residuals."""
    return torch.empty(0, 0, dtype=F64)


def op_samples():
    a, b = randn(30, 4, seed=36), randn(30, 3, seed=37)
    return [
        (_ops.library().lstsq_batched.default,
         (randn(2, 30, 4, seed=38), randn(2, 30, 3, seed=39), torch.tensor([0.0, 1.0], dtype=F64))),
        (_ops.library().lstsq_batched_masked.default,
         (randn(2, 30, 4, seed=38), randn(2, 30, 3, seed=39), torch.tensor([0.0, 1.0], dtype=F64))),
        (_ops.library().ridge_path_sse.default,
         (a, randn(4, 5, seed=40), randn(30, 5, seed=41), randn(3, 4, seed=42).abs(),
          no_row_scale())),
    ]


@pytest.mark.parametrize("device_name", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("sample", range(len(op_samples())))
def test_opcheck(sample, device_name):
    op, args = op_samples()[sample]
    torch.library.opcheck(op, tuple(t.to(device_name) for t in args))


def test_subset_solve_in_plain_torch_matches_per_subset_cholesky():
    # The composition that replaced a compiled op: gathered blocks, Cholesky, solve.
    r, y = randn(50, 12, seed=49), randn(50, 2, seed=50)
    gram, cross = r.T @ r, r.T @ y
    subsets = torch.tensor([[0, 5, 9], [11, 2, 3]])
    out = _ops.subset_solve(gram, cross, subsets, torch.tensor([0.0, 2.0], dtype=F64))
    for i, ridge in enumerate((0.0, 2.0)):
        s = subsets[i]
        ref = torch.linalg.solve(gram[s][:, s] + ridge * torch.eye(3, dtype=F64), cross[s])
        torch.testing.assert_close(out[i], ref)


# --------------------------------------------------------------------------- CPU/CUDA


@pytest.mark.cuda
def test_cuda_matches_cpu(device):
    if device.type != "cuda":
        pytest.skip("parity is checked on a CUDA device")
    a = torch.stack([with_condition(200, 12, c, 43) for c in (2.0, 1e4, 1e7)])
    a[2, :, 5] = a[2, :, 1]  # rank-deficient: the SVD fallback
    b = randn(3, 200, 5, seed=44)
    for args in [(a, b), (a[0], b[0]), (a, b, [0.0, 1.0, 2.0])]:
        cpu = linalg.lstsq(*args)
        gpu = linalg.lstsq(*[t.to(device) if isinstance(t, torch.Tensor) else t for t in args])
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-8, atol=1e-10)
    r, y = randn(120, 30, seed=45), randn(120, 4, seed=46)
    subsets = torch.stack([torch.randperm(30, generator=gen(i))[:8] for i in range(5)])
    torch.testing.assert_close(
        linalg.subset_lstsq(r.to(device), y.to(device), subsets.to(device)).cpu(),
        linalg.subset_lstsq(r, y, subsets), rtol=1e-9, atol=1e-11)
    x, yy = cv_problem()
    for cv in (5, "loo"):
        cpu = linalg.ridge_cv(x, yy, [0.1, 10.0, 1e3], cv=cv)
        gpu = linalg.ridge_cv(x.to(device), yy.to(device), [0.1, 10.0, 1e3], cv=cv)
        assert gpu.alpha_index.cpu().tolist() == cpu.alpha_index.tolist()
        torch.testing.assert_close(gpu.cv_predictions.cpu(), cpu.cv_predictions)
        torch.testing.assert_close(gpu.coef.cpu(), cpu.coef)
    for op, args in op_samples():
        torch.testing.assert_close(to_cpu(op(*[t.to(device) for t in args])), op(*args))


def to_cpu(out):
    """An op's output (a tensor or a tuple of them) on the CPU."""
    return tuple(t.cpu() for t in out) if isinstance(out, tuple) else out.cpu()
