// Least-squares algorithms shared by the CPU and CUDA kernels of facelin's linalg ops.
//
// Everything here is written with batched ATen calls on float64 tensors, so that one
// implementation serves both devices: the CPU kernels call it on one problem (or a few)
// per thread inside at::parallel_for, the CUDA kernels call it once on the whole batch,
// where cuBLAS/cuSOLVER run the batched products and factorizations.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "checks.h"

namespace facelin::linalg {

constexpr double kEps = std::numeric_limits<double>::epsilon();
// Up to this condition number (of A, or of [A; sqrt(ridge) I]) the normal equations
// are solved directly: their error, eps * cond^2, is then within 16x of QR's eps * cond.
constexpr double kNormalEquationsCond = 16.0;
// Up to this condition number one unshifted CholeskyQR pass leaves a basis orthogonal
// enough for the second pass to finish the job (CholeskyQR2 needs cond < eps^-1/2).
constexpr double kCholeskyQR2Cond = 1e6;

// Result of solving a batch whose problems are all full rank (or ridged); problems
// that turned out rank-deficient are flagged for the minimum-norm SVD solver.
struct BatchSolution {
  at::Tensor x;           // (b, p, k)
  at::Tensor needs_svd;   // (b,) bool
};

inline at::Tensor batch_eye(int64_t b, int64_t p, const at::TensorOptions& opts) {
  return at::eye(p, opts).expand({b, p, p});
}

inline at::Tensor frobenius(const at::Tensor& m) { return m.square().sum({-2, -1}).sqrt(); }

// Solves min ||A x - B||^2 + ridge ||x||^2 for every problem of a batch with a
// CholeskyQR family method on the (implicitly) augmented matrix [A; sqrt(ridge) I]:
//   cond <= 16      normal equations (one Gram matrix, one Cholesky);
//   cond <= 1e6     CholeskyQR2: Q1 = A R1^-1, then the second pass is applied
//                   implicitly (Q1^T Q1 and Q1^T B; Q2 is never formed);
//   otherwise       shifted CholeskyQR3 (Fukaya et al. 2020): a shifted first pass,
//                   then two more, the last again implicit.
// The pass count is chosen for the worst-conditioned problem of the batch. Problems
// without ridge whose final R has cond >= 1 / (eps * max(n, p)) are flagged: gelsd would
// treat them as rank-deficient, and the caller solves them by SVD instead.
inline BatchSolution cholesky_qr_solve(const at::Tensor& A, const at::Tensor& B,
                                       const at::Tensor& ridge) {
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2);
  const auto opts = A.options();
  const auto eye = batch_eye(b, p, opts);
  const auto ridge3 = ridge.view({b, 1, 1});
  const auto At = A.transpose(-2, -1);
  auto gram = at::matmul(At, A).add_(ridge3 * eye);

  // The conditioning of the (augmented) problem decides how many passes it needs.
  const auto eig = at::linalg_eigvalsh(gram);
  const auto lo = eig.select(-1, 0), hi = eig.select(-1, p - 1);
  const auto cond2 = at::where(lo > 0, hi / lo, at::full_like(lo, INFINITY));
  const double worst = std::sqrt(cond2.max().item<double>());

  if (worst <= kNormalEquationsCond) {
    auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
    return {at::cholesky_solve(at::matmul(At, B), r, /*upper=*/true),
            at::zeros({b}, opts.dtype(at::kBool))};
  }

  // q is the current basis and r_acc the accumulated triangular factor, A = q r_acc, with
  // w = r_acc^-1. The ridge rows sqrt(ridge) I of the augmented matrix have the basis
  // sqrt(ridge) w, so each pass's Gram matrix is q^T q + ridge w^T w.
  at::Tensor q = A, w = eye, r_acc = eye;
  const int passes = worst <= kCholeskyQR2Cond ? 1 : 2;
  for (int pass = 0; pass < passes; ++pass) {
    if (pass > 0) {
      gram = at::matmul(q.transpose(-2, -1), q)
                 .add_(ridge3 * at::matmul(w.transpose(-2, -1), w));
    }
    if (pass == 0 && passes == 2) {
      // Shift of shifted CholeskyQR3; trace(gram) bounds ||[A; sqrt(ridge) I]||_2^2.
      const double c = 11.0 * (static_cast<double>(n + p) * p + p * (p + 1.0)) * kEps;
      const auto trace = gram.diagonal(0, -2, -1).sum(-1).view({b, 1, 1});
      gram = gram + c * trace * eye;
    }
    auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
    // A failed factorization leaves r partly garbage; those problems are rank-deficient
    // beyond what the shift can absorb and get flagged below through their cond.
    r = at::where((info == 0).view({b, 1, 1}), r, eye);
    q = at::linalg_solve_triangular(r, q, /*upper=*/true, /*left=*/false);
    w = at::linalg_solve_triangular(r, w, /*upper=*/true, /*left=*/false);
    r_acc = at::matmul(r, r_acc);
  }
  gram = at::matmul(q.transpose(-2, -1), q).add_(ridge3 * at::matmul(w.transpose(-2, -1), w));
  auto [r_last, info_last] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const auto ok_last = (info_last == 0).view({b, 1, 1});
  r_last = at::where(ok_last, r_last, eye);
  auto x = at::matmul(w, at::cholesky_solve(at::matmul(q.transpose(-2, -1), B), r_last, true));

  // cond_F(R) = ||R||_F ||R^-1||_F bounds cond_2(A) from above.
  const auto r_total = at::matmul(r_last, r_acc);
  const auto r_total_inv = at::linalg_solve_triangular(r_last, w, /*upper=*/true, /*left=*/false);
  const auto cond = frobenius(r_total) * frobenius(r_total_inv);
  const double rank_cutoff = 1.0 / (kEps * static_cast<double>(std::max(n, p)));
  auto needs_svd = (ridge == 0) & ((cond >= rank_cutoff) | cond.isnan() |
                                   (info_last != 0));
  return {x, needs_svd};
}

// Minimum-norm least squares (with optional ridge) by thin SVD, the gelsd rule:
// singular values at or below eps * max(n, p) * s_max count as zero when ridge is 0.
//   A (b, n, p), B (b, n, k), ridge (b,) -> (b, p, k)
inline at::Tensor svd_solve(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  const int64_t n = A.size(1), p = A.size(2);
  auto [u, s, vh] = at::linalg_svd(A, /*full_matrices=*/false);
  const auto cutoff = kEps * static_cast<double>(std::max(n, p)) * s.amax(-1, true);
  const auto r = ridge.view({-1, 1});
  const auto gain = at::where(r > 0, s / (s.square() + r),
                              at::where(s > cutoff, s.reciprocal(), at::zeros_like(s)));
  const auto utb = at::matmul(u.transpose(-2, -1), B);
  return at::matmul(vh.transpose(-2, -1), gain.unsqueeze(-1) * utb);
}

// Solves a batch: CholeskyQR where it applies, SVD for n < p without ridge and for
// problems found rank-deficient.
inline at::Tensor solve_batch(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2);
  if (b == 0 || p == 0 || B.size(2) == 0) {
    return at::zeros({b, p, B.size(2)}, A.options());
  }
  if (n < p) {
    // The ridged problems are full rank through their ridge rows.
    const bool all_ridged = (ridge > 0).all().item<bool>();
    if (!all_ridged) return svd_solve(A, B, ridge);
  }
  auto sol = cholesky_qr_solve(A, B, ridge);
  if (sol.needs_svd.any().item<bool>()) {
    const auto idx = sol.needs_svd.nonzero().squeeze(1);
    sol.x.index_copy_(0, idx, svd_solve(A.index_select(0, idx), B.index_select(0, idx),
                                        ridge.index_select(0, idx)));
  }
  return sol.x;
}

// Shared design: one thin SVD of A (n, p) serves every column of B (n, m), with a ridge
// per column (ridge (m,) or (1,)). The product U^T B is the only pass over B.
inline at::Tensor shared_solve(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  const int64_t n = A.size(0), p = A.size(1), m = B.size(1);
  if (p == 0 || m == 0) return at::zeros({p, m}, A.options());
  auto [u, s, vh] = at::linalg_svd(A, /*full_matrices=*/false);
  const auto cutoff = kEps * static_cast<double>(std::max(n, p)) * s.max();
  const auto r = ridge.view({1, -1});
  const auto sc = s.view({-1, 1});
  // gain (r, m): s / (s^2 + ridge), or the pseudo-inverse 1 / s above the cutoff.
  const auto gain = at::where(r > 0, sc / (sc.square() + r),
                              at::where(sc > cutoff, sc.reciprocal(), at::zeros_like(sc)));
  auto utb = at::matmul(u.transpose(0, 1), B);
  return at::matmul(vh.transpose(0, 1), utb.mul_(gain));
}

// Normal equations of column subsets: the gram (s x s) and cross (s x k) blocks of a
// chunk of subsets, already gathered, are ridged, factored and solved. Raises, naming the subset, when
// a subset's columns are (numerically) linearly dependent.
//   grams (c, s, s), cross (c, s, k), ridge (c,), first = index of the chunk's first subset
inline at::Tensor subset_cholesky_solve(at::Tensor grams, const at::Tensor& cross,
                                        const at::Tensor& ridge, int64_t first) {
  const int64_t c = grams.size(0), s = grams.size(1);
  if (c == 0 || s == 0) return at::zeros({c, s, cross.size(2)}, grams.options());
  const auto diag = grams.diagonal(0, -2, -1);
  diag.add_(ridge.view({c, 1}));
  const auto scale = diag.clone();
  auto [l, info] = at::linalg_cholesky_ex(grams);
  // l_ii^2 / g_ii is the share of column i's variance that the earlier columns of the
  // subset do not explain; below sqrt(eps) the normal equations lose all accuracy.
  const auto pivots = l.diagonal(0, -2, -1).square() / scale;
  const auto bad = (info != 0) | (scale <= 0).any(-1) |
                   (pivots < std::sqrt(kEps)).any(-1) | pivots.isnan().any(-1);
  if (bad.any().item<bool>()) {
    const int64_t which = bad.nonzero()[0][0].item<int64_t>();
    TORCH_CHECK(false, "facelin: subset ", first + which,
                " is rank-deficient: its columns are linearly dependent (or nearly so) after "
                "centring, so its normal equations are singular; remove duplicate or "
                "constant columns or pass ridge > 0");
  }
  return at::cholesky_solve(cross, l);
}

// Checks shared by every backend.
inline void check_lstsq_args(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge,
                             int64_t a_dim) {
  check_floating(A, "A");
  check_floating(B, "B");
  TORCH_CHECK(A.scalar_type() == B.scalar_type(), "facelin: A is ", A.scalar_type(),
              " but B is ", B.scalar_type(), "; pass both in one dtype");
  TORCH_CHECK(ridge.scalar_type() == at::kDouble, "facelin: ridge must be float64, got ",
              ridge.scalar_type());
  check_dim(A, a_dim, "A");
  check_dim(B, a_dim, "B");
  check_dim(ridge, 1, "ridge");
  check_same_device(A, B, "A", "B");
  check_same_device(A, ridge, "A", "ridge");
}

inline void check_ridge_path_args(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                                  const at::Tensor& gains, const at::Tensor& row_scale) {
  for (auto [t, name] : {std::pair{&M, "M"}, {&Z, "Z"}, {&Y, "Y"}, {&gains, "gains"},
                         {&row_scale, "row_scale"}}) {
    TORCH_CHECK(t->scalar_type() == at::kDouble, "facelin: ", name, " must be float64, got ",
                t->scalar_type());
    check_dim(*t, 2, name);
    check_same_device(M, *t, "M", name);
  }
  TORCH_CHECK(Z.size(0) == M.size(1) && Y.size(0) == M.size(0) && Y.size(1) == Z.size(1) &&
                  gains.size(1) == M.size(1),
              "facelin: ridge_path_sse got mismatched shapes M ", M.sizes(), ", Z ", Z.sizes(),
              ", Y ", Y.sizes(), ", gains ", gains.sizes());
  TORCH_CHECK(row_scale.numel() == 0 ||
                  (row_scale.size(0) == gains.size(0) && row_scale.size(1) == M.size(0)),
              "facelin: row_scale must be empty or (", gains.size(0), ", ", M.size(0),
              "), got ", row_scale.sizes());
}

}  // namespace facelin::linalg
