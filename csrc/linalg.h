// Batched least squares shared by the CPU and CUDA kernels of lstsq_batched.
//
// Written with batched ATen calls on float64 tensors, so that one implementation serves
// both devices: the CPU kernel calls solve_one on one problem per task (the problem's
// data stays in the core's cache, its BLAS/LAPACK calls run single-threaded inside the
// parallel region, the choice of method is made on host scalars), the CUDA kernel calls
// solve_batch on a whole chunk of problems, where cuBLAS/cuSOLVER run the batched
// products and factorizations and the problems of each method are gathered by masks.
//
// Every problem starts with the Cholesky factor R of its Gram matrix A^T A (+ ridge I),
// and a condition estimate read from R picks the cheapest method whose forward error
// stays within a small multiple of Householder QR's:
//   cond <= 16             normal equations: error eps cond^2, within 16x of QR's
//                          eps cond;
//   cond <= 1e5            one step of corrected semi-normal equations (Bjorck): the
//                          residual B - A x is formed from A and B and its correction
//                          solved with the same R; one step leaves an error within a few
//                          times QR's while eps cond^2 is small (measured in the tests);
//                          taken when it is the cheaper of the two refinements (few
//                          right-hand sides), else
//   cond <= 2e7            CholeskyQR2: Q1 = A R^-1 and a second Cholesky pass on
//                          Q1^T Q1, applied implicitly (Q2 is never formed); the first
//                          pass is the R already computed;
//   beyond, or a failed    Householder QR (geqrf, ormqr) of [A; sqrt(ridge) I];
//   Cholesky               unridged problems whose R is numerically singular for gelsd
//                          (cond >= 1e-2 / (eps max(n, p))) go on to
//   rank-deficient         the minimum-norm SVD solution, gelsd's rule.
// The path each problem took is returned with the solution.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "checks.h"

namespace facelin::linalg {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kNormalEquationsCond = 16.0;
constexpr double kRefinementCond = 1e5;
// CholeskyQR2 needs eps cond^2 well below 1 for its first Cholesky factor to exist.
constexpr double kCholeskyQR2Cond = 2e7;
// Unridged problems whose estimated cond exceeds this share of gelsd's rank cutoff
// 1 / (eps max(n, p)) are handed to the SVD, which applies the cutoff exactly.
constexpr double kRankGuard = 1e-2;

// Which method solved a problem (the path codes returned by lstsq_batched).
enum Path : int64_t {
  kNormalEquations = 0,
  kRefined = 1,
  kCholeskyQR2 = 2,
  kHouseholder = 3,
  kSvd = 4,
  kNonFinite = 5,  // NaN/Inf reached the Gram matrix: not solved, the solution is NaN
};

struct Solution {
  at::Tensor x;     // (b, p, k)
  at::Tensor path;  // (b,) int64 Path codes
};

// One correction step costs 2 n p k (B - A x and A^T r) on top of A^T B; the second
// CholeskyQR pass costs A R^-1 (n p^2) and Q1^T [Q1 B] (n p (p + k)) in place of A^T B.
// Measured on the CPU (one core, MKL): the first is the cheaper while k <= 7/8 p.
inline bool refinement_is_cheaper(int64_t p, int64_t k) { return 8 * k <= 7 * p; }

// A^T A for A (b, n, p). One product: computing only the upper blocks (3/4 of the work)
// was measured no faster, the smaller products running less efficiently.
inline at::Tensor gram_matrix(const at::Tensor& A) {
  return at::matmul(A.transpose(-2, -1), A);
}

inline at::Tensor unit_columns(const at::Tensor& v) {
  return v / at::linalg_vector_norm(v, 2, {1}, /*keepdim=*/true);
}

// Estimate of cond_2 of a matrix M = Q R from its triangular factor R (b, p, p), at
// O(p^2) per problem: ||R||_2 and ||R^-1||_2 from two steps of power iteration each on
// R^T R and on its inverse (two triangular solves per step), from a fixed start vector,
// and the ratio of the largest to the smallest |r_ii|; the larger of the two estimates
// (both are lower bounds of cond_2). Infinite when R is singular.
inline at::Tensor cond_estimate(const at::Tensor& r) {
  const int64_t b = r.size(0), p = r.size(1);
  const auto start = unit_columns(
      at::sin(at::arange(1, p + 1, r.options())).view({1, p, 1}).expand({b, p, 1}));
  const auto rt = r.transpose(-2, -1);
  auto u = unit_columns(at::matmul(rt, at::matmul(r, start)));
  const auto norm_sq = at::linalg_vector_norm(at::matmul(rt, at::matmul(r, u)), 2, {1, 2});
  auto v = unit_columns(at::cholesky_solve(start, r, /*upper=*/true));
  const auto inv_norm_sq =
      at::linalg_vector_norm(at::cholesky_solve(v, r, /*upper=*/true), 2, {1, 2});
  const auto power = (norm_sq * inv_norm_sq).sqrt();
  const auto d = r.diagonal(0, -2, -1).abs();
  const auto diag = d.amax(-1) / d.amin(-1);
  const auto cond = at::maximum(power, diag);
  return at::where(at::isfinite(cond), cond, at::full_like(cond, INFINITY));
}

// The same estimate for one factor R (p, p) in host memory, written as loops: at
// O(p^2) the ATen calls of cond_estimate would cost more in dispatch than in arithmetic.
inline double cond_estimate_host(const at::Tensor& r2d) {
  const auto R = r2d.accessor<double, 2>();
  const int64_t p = r2d.size(0);
  std::vector<double> v(p), t(p);
  auto normalise = [&](std::vector<double>& x) {
    double s = 0.0;
    for (double e : x) s += e * e;
    s = std::sqrt(s);
    for (double& e : x) e /= s;
    return s;
  };
  auto start = [&]() {
    for (int64_t i = 0; i < p; ++i) v[i] = std::sin(static_cast<double>(i + 1));
    normalise(v);
  };
  auto gram_times = [&]() {  // v <- R^T R v, returns |R^T R v|
    for (int64_t i = 0; i < p; ++i) {
      double s = 0.0;
      for (int64_t j = i; j < p; ++j) s += R[i][j] * v[j];
      t[i] = s;
    }
    for (int64_t j = 0; j < p; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i <= j; ++i) s += R[i][j] * t[i];
      v[j] = s;
    }
    return normalise(v);
  };
  auto inverse_gram_times = [&]() {  // v <- (R^T R)^-1 v, returns its norm
    for (int64_t i = 0; i < p; ++i) {  // R^T t = v
      double s = v[i];
      for (int64_t j = 0; j < i; ++j) s -= R[j][i] * t[j];
      t[i] = s / R[i][i];
    }
    for (int64_t i = p - 1; i >= 0; --i) {  // R v = t
      double s = t[i];
      for (int64_t j = i + 1; j < p; ++j) s -= R[i][j] * v[j];
      v[i] = s / R[i][i];
    }
    return normalise(v);
  };
  start();
  gram_times();
  const double norm_sq = gram_times();
  start();
  inverse_gram_times();
  const double inv_norm_sq = inverse_gram_times();
  double lo = INFINITY, hi = 0.0;
  for (int64_t i = 0; i < p; ++i) {
    lo = std::min(lo, std::abs(R[i][i]));
    hi = std::max(hi, std::abs(R[i][i]));
  }
  const double cond = std::max(std::sqrt(norm_sq * inv_norm_sq), hi / lo);
  return std::isfinite(cond) ? cond : INFINITY;
}

// The path a problem's condition estimate asks for (before any fallback).
inline Path path_for(double cond, int64_t p, int64_t k) {
  if (cond <= kNormalEquationsCond) return kNormalEquations;
  if (cond <= kRefinementCond && refinement_is_cheaper(p, k)) return kRefined;
  if (cond <= kCholeskyQR2Cond) return kCholeskyQR2;
  return kHouseholder;
}

// NaN/Inf in A reach A^T A (an Inf meets its own square, 0 * Inf is NaN), so the Gram
// matrix is checked instead of A; NaN/Inf in B reach every path's solution, which the
// Python layer checks.
inline bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

inline at::Tensor nan_solution(int64_t b, int64_t p, int64_t k, const at::TensorOptions& opts) {
  return at::full({b, p, k}, NAN, opts);
}

inline bool any_ridge(const at::Tensor& ridge) { return (ridge > 0).any().item<bool>(); }

inline at::Tensor normal_solve(const at::Tensor& A, const at::Tensor& B, const at::Tensor& r) {
  return at::cholesky_solve(at::matmul(A.transpose(-2, -1), B), r, /*upper=*/true);
}

// Normal equations and one corrected semi-normal step with the same factor R:
// x += (R^T R)^-1 (A^T (B - A x) - ridge x).
inline at::Tensor refined_solve(const at::Tensor& A, const at::Tensor& B,
                                const at::Tensor& ridge, const at::Tensor& r) {
  auto x = normal_solve(A, B, r);
  auto rhs = at::matmul(A.transpose(-2, -1), at::baddbmm(B, A, x, /*beta=*/1, /*alpha=*/-1));
  if (any_ridge(ridge)) rhs.sub_(ridge.view({-1, 1, 1}) * x);
  return x.add_(at::cholesky_solve(rhs, r, /*upper=*/true));
}

// CholeskyQR2 on [A; sqrt(ridge) I] whose first pass is the given R: Q1 = A R^-1 (the
// ridge rows sqrt(ridge) R^-1), R2 = chol(Q1^T Q1 + ridge R^-T R^-1), and
// x = R^-1 R2^-1 R2^-T Q1^T B. R^-1 is formed (p^3 / 3) so that Q1 is one matrix product,
// faster than a triangular solve with A; Q1 is written beside a copy of B so that Q1^T Q1
// and Q1^T B are one product. Returns x and the problems whose second factor failed.
inline std::pair<at::Tensor, at::Tensor> cholesky_qr2_solve(const at::Tensor& A,
                                                            const at::Tensor& B,
                                                            const at::Tensor& ridge,
                                                            const at::Tensor& r) {
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2), k = B.size(2);
  const auto eye = at::eye(p, r.options()).expand_as(r);
  const auto w = at::linalg_solve_triangular(r, eye, /*upper=*/true);  // R^-1
  auto qb = at::empty({b, n, p + k}, A.options());
  auto q = qb.narrow(-1, 0, p);
  at::matmul_out(q, A, w);
  qb.narrow(-1, p, k).copy_(B);
  const auto products = at::matmul(q.transpose(-2, -1), qb);  // (b, p, p + k)
  auto gram = products.narrow(-1, 0, p);
  if (any_ridge(ridge)) gram = gram + ridge.view({-1, 1, 1}) * at::matmul(w.transpose(-2, -1), w);
  auto [r2, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const auto y = at::cholesky_solve(products.narrow(-1, p, k), r2, /*upper=*/true);
  return {at::matmul(w, y), info != 0};
}

// Householder QR of [A; sqrt(ridge) I]: x = R^-1 (Q^T [B; 0])[:p]. Returns x and R.
inline std::pair<at::Tensor, at::Tensor> householder_solve(const at::Tensor& A,
                                                           const at::Tensor& B,
                                                           const at::Tensor& ridge) {
  const int64_t b = A.size(0), p = A.size(2), k = B.size(2);
  at::Tensor a = A, rhs = B;
  if (any_ridge(ridge)) {
    const auto eye = at::eye(p, A.options()).expand({b, p, p});
    a = at::cat({A, ridge.sqrt().view({b, 1, 1}) * eye}, 1);
    rhs = at::cat({B, at::zeros({b, p, k}, B.options())}, 1);
  }
  auto [qr, tau] = at::geqrf(a);
  const auto qtb = at::ormqr(qr, tau, rhs, /*left=*/true, /*transpose=*/true).narrow(1, 0, p);
  const auto r = qr.narrow(1, 0, p).triu();
  return {at::linalg_solve_triangular(r, qtb, /*upper=*/true), r};
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

// The problems of a batch on one path: the whole batch (no copy) or a selection.
struct Group {
  at::Tensor index;  // undefined: every problem
  at::Tensor take(const at::Tensor& t) const { return index.defined() ? t.index_select(0, index) : t; }
  void put(at::Tensor& out, const at::Tensor& part) const {
    if (index.defined()) {
      out.index_copy_(0, index, part);
    } else {
      out.copy_(part);
    }
  }
  // Global indices of the group's problems selected by a mask over the group.
  at::Tensor global(const at::Tensor& mask) const {
    return index.defined() ? index.masked_select(mask) : mask.nonzero().squeeze(1);
  }
};

inline std::optional<Group> group_on(const at::Tensor& path, Path which) {
  if (path.size(0) == 1) {  // the CPU kernel's case: one problem, one read
    if (path.item<int64_t>() == which) return Group{};
    return std::nullopt;
  }
  const auto mask = path == static_cast<int64_t>(which);
  const int64_t count = mask.sum().item<int64_t>();
  if (count == 0) return std::nullopt;
  if (count == path.size(0)) return Group{};
  return Group{mask.nonzero().squeeze(1)};
}

// Solves min ||A x - B||^2 + ridge ||x||^2 for every problem of a batch, float64:
//   A (b, n, p), B (b, n, k), ridge (b,) -> x (b, p, k) and the path of each problem.
// Problems with n < p are all solved by SVD unless every one of them is ridged.
inline Solution solve_batch(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2), k = B.size(2);
  const auto opts = A.options();
  auto path = at::full({b}, static_cast<int64_t>(kNormalEquations), opts.dtype(at::kLong));
  if (b == 0 || p == 0 || k == 0) return {at::zeros({b, p, k}, opts), path};
  if (n < p && !(ridge > 0).all().item<bool>()) {
    if (!all_finite(A) || !all_finite(B)) {
      return {nan_solution(b, p, k, opts), path.fill_(static_cast<int64_t>(kNonFinite))};
    }
    return {svd_solve(A, B, ridge), path.fill_(static_cast<int64_t>(kSvd))};
  }

  auto gram = gram_matrix(A);
  if (any_ridge(ridge)) gram.diagonal(0, -2, -1).add_(ridge.view({b, 1}));
  if (!all_finite(gram)) {
    return {nan_solution(b, p, k, opts), path.fill_(static_cast<int64_t>(kNonFinite))};
  }
  auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const auto cond = cond_estimate(r).masked_fill_(info != 0, INFINITY);
  path.fill_(static_cast<int64_t>(kHouseholder));
  path.masked_fill_(cond <= kCholeskyQR2Cond, static_cast<int64_t>(kCholeskyQR2));
  if (refinement_is_cheaper(p, k)) {
    path.masked_fill_(cond <= kRefinementCond, static_cast<int64_t>(kRefined));
  }
  path.masked_fill_(cond <= kNormalEquationsCond, static_cast<int64_t>(kNormalEquations));

  auto x = at::empty({b, p, k}, opts);
  if (auto g = group_on(path, kNormalEquations)) {
    g->put(x, normal_solve(g->take(A), g->take(B), g->take(r)));
  }
  if (auto g = group_on(path, kRefined)) {
    g->put(x, refined_solve(g->take(A), g->take(B), g->take(ridge), g->take(r)));
  }
  if (auto g = group_on(path, kCholeskyQR2)) {
    auto [part, failed] = cholesky_qr2_solve(g->take(A), g->take(B), g->take(ridge), g->take(r));
    g->put(x, part);
    if (failed.any().item<bool>()) {
      path.index_fill_(0, g->global(failed), static_cast<int64_t>(kHouseholder));
    }
  }
  if (auto g = group_on(path, kHouseholder)) {
    const auto sub_ridge = g->take(ridge);
    auto [part, rf] = householder_solve(g->take(A), g->take(B), sub_ridge);
    g->put(x, part);
    const double rank_cond = kRankGuard / (kEps * static_cast<double>(std::max(n, p)));
    const auto singular = (sub_ridge == 0) & (cond_estimate(rf) >= rank_cond);
    if (singular.any().item<bool>()) {
      path.index_fill_(0, g->global(singular), static_cast<int64_t>(kSvd));
    }
  }
  if (auto g = group_on(path, kSvd)) {
    g->put(x, svd_solve(g->take(A), g->take(B), g->take(ridge)));
  }
  return {x, path};
}

// solve_batch for one problem in host memory, A (1, n, p), B (1, n, k), ridge (1,), with
// the control flow on host scalars: the CPU kernel's case, where the ATen calls that
// would choose and gather paths cost as much as a small problem's arithmetic. Also
// solves n < p per problem: by SVD without ridge, by the paths above with it.
inline std::pair<at::Tensor, Path> solve_one(const at::Tensor& A, const at::Tensor& B,
                                             const at::Tensor& ridge) {
  const int64_t n = A.size(1), p = A.size(2), k = B.size(2);
  const auto opts = A.options();
  if (p == 0 || k == 0) return {at::zeros({1, p, k}, opts), kNormalEquations};
  const double ridge_value = ridge.item<double>();
  if (n < p && ridge_value == 0) {
    if (!all_finite(A) || !all_finite(B)) return {nan_solution(1, p, k, opts), kNonFinite};
    return {svd_solve(A, B, ridge), kSvd};
  }
  auto gram = gram_matrix(A);
  if (ridge_value > 0) gram.diagonal(0, -2, -1).add_(ridge_value);
  const double* g = gram.const_data_ptr<double>();
  for (int64_t i = 0; i < p * p; ++i) {
    if (!std::isfinite(g[i])) return {nan_solution(1, p, k, opts), kNonFinite};
  }
  auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const double cond = info.item<int>() == 0 ? cond_estimate_host(r.select(0, 0)) : INFINITY;
  const Path path = path_for(cond, p, k);
  if (path == kNormalEquations) return {normal_solve(A, B, r), path};
  if (path == kRefined) return {refined_solve(A, B, ridge, r), path};
  if (path == kCholeskyQR2) {
    auto [x, failed] = cholesky_qr2_solve(A, B, ridge, r);
    if (!failed.item<bool>()) return {x, path};
  }
  auto [x, rf] = householder_solve(A, B, ridge);
  const double rank_cond = kRankGuard / (kEps * static_cast<double>(std::max(n, p)));
  if (ridge_value == 0 && cond_estimate_host(rf.select(0, 0)) >= rank_cond) {
    return {svd_solve(A, B, ridge), kSvd};
  }
  return {x, kHouseholder};
}

}  // namespace facelin::linalg
