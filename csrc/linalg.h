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
//   beyond                 CholeskyQR2: Q1 = A R^-1 (the first pass is the R already
//                          computed) and a second Cholesky pass on Q1^T Q1, applied
//                          implicitly (Q2 is never formed), when the second factor shows
//                          Q1 orthonormal enough (cond(R2) <= 2: every problem up to
//                          cond 2e7, most up to 1e8); else
//                          CholeskyQR3: Q2 = Q1 R2^-1 formed and a third pass applied
//                          implicitly. Where A^T A has no Cholesky factor, the first pass
//                          is shifted CholeskyQR's (Fukaya et al. 2020), stable to cond
//                          ~ 1 / eps; measured within 4x of Householder QR's (gelsy)
//                          error to cond 1e11;
//   a failed factor, or    the SVD solution, gelsd's rule: unridged problems whose
//   rank-deficient         CholeskyQR factor is numerically singular for gelsd (cond >=
//                          1e-2 / (eps max(n, p))) get the minimum-norm solution, and a
//                          later CholeskyQR factor fails only on such problems.
// The path each problem took is returned with the solution.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "checks.h"

namespace facelin::linalg {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kNormalEquationsCond = 16.0;
constexpr double kRefinementCond = 1e5;
// The last CholeskyQR pass is applied implicitly (its Q never formed), which is exact
// only when its input basis is orthonormal to working precision; an input whose factor
// has cond <= 2 leaves an orthogonality error within 4x that of a perfectly conditioned
// one. CholeskyQR2 leaves cond(Q1) below 1.1 up to cond(A) = 2e7; measured 1.2-1.4 at 1e8.
constexpr double kLastPassCond = 2.0;
// Unridged problems whose estimated cond exceeds this share of gelsd's rank cutoff
// 1 / (eps max(n, p)) are handed to the SVD, which applies the cutoff exactly.
constexpr double kRankGuard = 1e-2;

// Which method solved a problem (the path codes returned by lstsq_batched).
enum Path : int64_t {
  kNormalEquations = 0,
  kRefined = 1,
  kCholeskyQR2 = 2,
  kCholeskyQR3 = 3,
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

// Shift of shifted CholeskyQR (Fukaya, Kannan, Nakatsukasa, Yamamoto and Yanagisawa 2020),
// 11 (m p + p (p + 1)) eps ||A||^2 for A with m rows, with ||A||_F^2 = trace(A^T A) in
// place of ||A||_2^2 (larger, so no less safe): the shifted Gram matrix has a Cholesky
// factor R1 for any A, and A R1^-1 is conditioned well enough for CholeskyQR2.
inline double cholesky_qr_shift(int64_t m, int64_t p, double trace) {
  return 11.0 * static_cast<double>(m * p + p * (p + 1)) * kEps * trace;
}

// The path a problem's condition estimate asks for (before any fallback).
inline Path path_for(double cond, int64_t p, int64_t k) {
  if (cond <= kNormalEquationsCond) return kNormalEquations;
  if (cond <= kRefinementCond && refinement_is_cheaper(p, k)) return kRefined;
  return kCholeskyQR2;  // or three passes, decided by the second factor
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

inline at::Tensor triangular_inverse(const at::Tensor& r) {
  const auto eye = at::eye(r.size(-1), r.options()).expand_as(r);
  return at::linalg_solve_triangular(r, eye, /*upper=*/true);
}

// The last CholeskyQR pass on [A; sqrt(ridge) I], applied implicitly: w (b, p, p) is the
// R^-1 of the passes before, qb (b, n, p + k) holds Q = A w beside a copy of B so that
// Q^T Q and Q^T B are one product; R_last = chol(Q^T Q + ridge w^T w) (the ridge rows of
// Q are sqrt(ridge) w) and x = w R_last^-1 R_last^-T Q^T B: the last Q is never formed.
// Returns x, R_last and the problems whose factor failed.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> last_cholesky_qr_pass(
    const at::Tensor& qb, const at::Tensor& w, const at::Tensor& ridge) {
  const int64_t p = w.size(-1), k = qb.size(-1) - p;
  const auto products = at::matmul(qb.narrow(-1, 0, p).transpose(-2, -1), qb);  // (b, p, p + k)
  auto gram = products.narrow(-1, 0, p);
  if (any_ridge(ridge)) gram = gram + ridge.view({-1, 1, 1}) * at::matmul(w.transpose(-2, -1), w);
  auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const auto y = at::cholesky_solve(products.narrow(-1, p, k), r, /*upper=*/true);
  return {at::matmul(w, y), r, info != 0};
}

// Q (b, n, p) = a w written beside a copy of B, for last_cholesky_qr_pass.
inline at::Tensor basis_beside(const at::Tensor& a, const at::Tensor& w, const at::Tensor& B) {
  const int64_t p = w.size(-1), k = B.size(-1);
  auto qb = at::empty({a.size(0), a.size(1), p + k}, a.options());
  auto q = qb.narrow(-1, 0, p);
  at::matmul_out(q, a, w);
  qb.narrow(-1, p, k).copy_(B);
  return qb;
}

// The first CholeskyQR factor of problems whose Gram matrix (ridge included) has no
// Cholesky factor: that of the shifted Gram matrix, gram + shift I (cholesky_qr_shift;
// m = n + p rows when a ridge is present). Fails only on NaN/Inf.
inline std::pair<at::Tensor, at::Tensor> shifted_factor(const at::Tensor& gram, int64_t m) {
  const int64_t p = gram.size(-1);
  auto shifted = gram.clone();
  const auto trace = gram.diagonal(0, -2, -1).sum(-1, /*keepdim=*/true);
  shifted.diagonal(0, -2, -1).add_(cholesky_qr_shift(m, p, 1.0) * trace);
  auto [r, info] = at::linalg_cholesky_ex(shifted, /*upper=*/true);
  return {r, info};
}

struct CholeskyQRSolution {
  at::Tensor x;       // (b, p, k)
  at::Tensor r;       // (b, p, p) R_last ... R1, the triangular factor of [A; sqrt(ridge) I]
  at::Tensor third;   // (b,) bool: a third pass was needed
  at::Tensor failed;  // (b,) bool: a factor failed
};

// CholeskyQR on [A; sqrt(ridge) I] from a first factor R1: Q1 = A R1^-1 (R1^-1 formed,
// p^3 / 3, so that Q1 is one product, faster than a triangular solve with A), then a
// second pass applied implicitly (last_cholesky_qr_pass). Where the second factor R2 is
// not within kLastPassCond of orthogonal (its condition estimate), Q1 is too far from
// orthonormal for the implicit second pass to be the last: Q2 = Q1 R2^-1 is formed and a
// third pass applied implicitly instead.
inline CholeskyQRSolution cholesky_qr_solve(const at::Tensor& A, const at::Tensor& B,
                                            const at::Tensor& ridge, const at::Tensor& r1) {
  const int64_t p = A.size(2);
  const auto w = triangular_inverse(r1);
  const auto qb = basis_beside(A, w, B);
  auto [x, r2, failed] = last_cholesky_qr_pass(qb, w, ridge);
  auto r = at::matmul(r2, r1);
  const auto third = ~failed & (cond_estimate(r2) > kLastPassCond);
  if (third.any().item<bool>()) {
    const auto idx = third.nonzero().squeeze(1);
    const auto w2 = triangular_inverse(r2.index_select(0, idx));
    const auto q1 = qb.index_select(0, idx).narrow(-1, 0, p);
    auto [x3, r3, failed3] =
        last_cholesky_qr_pass(basis_beside(q1, w2, B.index_select(0, idx)),
                              at::matmul(w.index_select(0, idx), w2), ridge.index_select(0, idx));
    x.index_copy_(0, idx, x3);
    r.index_copy_(0, idx, at::matmul(r3, r.index_select(0, idx)));
    failed.index_copy_(0, idx, failed3);
  }
  return {x, r, third, failed};
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
  path.fill_(static_cast<int64_t>(kCholeskyQR2));
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
  const double rank_cond = kRankGuard / (kEps * static_cast<double>(std::max(n, p)));
  if (auto g = group_on(path, kCholeskyQR2)) {
    const auto sub_ridge = g->take(ridge);
    auto r1 = g->take(r);
    const auto no_factor = g->take(info) != 0;
    if (no_factor.any().item<bool>()) {
      const auto shifted = shifted_factor(g->take(gram), any_ridge(ridge) ? n + p : n).first;
      r1 = at::where(no_factor.view({-1, 1, 1}), shifted, r1);
    }
    const auto sol = cholesky_qr_solve(g->take(A), g->take(B), sub_ridge, r1);
    g->put(x, sol.x);
    const auto singular = ~sol.failed & (sub_ridge == 0) & (cond_estimate(sol.r) >= rank_cond);
    if (sol.third.any().item<bool>()) {
      path.index_fill_(0, g->global(sol.third), static_cast<int64_t>(kCholeskyQR3));
    }
    const auto to_svd = sol.failed | singular;
    if (to_svd.any().item<bool>()) {
      path.index_fill_(0, g->global(to_svd), static_cast<int64_t>(kSvd));
    }
  }
  if (auto g = group_on(path, kSvd)) {
    g->put(x, svd_solve(g->take(A), g->take(B), g->take(ridge)));
  }
  return {x, path};
}

// rows (c, n) <- m^T for m (n, c) in host memory. A row-major float64 m is transposed in
// 16 x 16 tiles (both sides touch whole cache lines), measured 2-3x faster than copy_ from
// the transposed view; other dtypes and layouts go through copy_.
inline void transpose_into(at::Tensor& rows, const at::Tensor& m) {
  if (m.scalar_type() != at::kDouble || m.stride(1) != 1 || rows.stride(1) != 1) {
    rows.copy_(m.t());
    return;
  }
  constexpr int64_t kTile = 16;
  const int64_t n = m.size(0), c = m.size(1), ld_in = m.stride(0), ld_out = rows.stride(0);
  const double* src = m.const_data_ptr<double>();
  double* dst = rows.data_ptr<double>();
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t i1 = std::min(i0 + kTile, n);
    for (int64_t j0 = 0; j0 < c; j0 += kTile) {
      const int64_t j1 = std::min(j0 + kTile, c);
      for (int64_t j = j0; j < j1; ++j) {
        for (int64_t i = i0; i < i1; ++i) dst[j * ld_out + i] = src[i * ld_in + j];
      }
    }
  }
}

// out (p, n) <- L M for L (p, p) lower triangular and M (p, n): two products that skip
// L's upper-right zero block (3/4 of the arithmetic of one product; measured 10-30%
// faster on the CPU at p = 50).
inline void lower_triangular_times(at::Tensor& out, const at::Tensor& l, const at::Tensor& m) {
  const int64_t p = l.size(0), h = p / 2;
  auto top = out.narrow(0, 0, h);
  auto bottom = out.narrow(0, h, p - h);
  at::mm_out(top, l.narrow(0, 0, h).narrow(1, 0, h), m.narrow(0, 0, h));
  at::mm_out(bottom, l.narrow(0, h, p - h), m);
}

// [X X^T, X Y^T] (p, p + k) for the rows xy (p + k, n) = [X; Y] of a buffer, X (p, n),
// with only the upper triangle of the symmetric X X^T computed (the lower one is zero):
// the rows of each half of X times the rows from its own on, two products that skip a
// quarter of X X^T (at p = k, 1/8 of the arithmetic of one product). Cholesky factors
// with upper=True read only the upper triangle.
inline at::Tensor upper_products(const at::Tensor& xy, int64_t p) {
  const int64_t width = xy.size(0), h = p / 2;
  if (h == 0) return at::mm(xy.narrow(0, 0, p), xy.t());
  auto out = at::empty({p, width}, xy.options());
  auto top = out.narrow(0, 0, h);
  at::mm_out(top, xy.narrow(0, 0, h), xy.t());
  auto bottom = out.narrow(0, h, p - h).narrow(1, h, width - h);
  at::mm_out(bottom, xy.narrow(0, h, p - h), xy.narrow(0, h, width - h).t());
  out.narrow(0, h, p - h).narrow(1, 0, h).zero_();
  return out;
}

// One problem of the CPU kernel, A (n, p) and B (n, k) in any float dtype, in host memory.
// The problem is first copied, in float64, into the rows of one buffer (2p + k, n):
//   [A^T; Q^T; B^T]   (Q^T is filled only by CholeskyQR)
// so that A, Q and B are column-major and every product below, A^T A, A^T B, Q^T [Q B],
// A^T r, reduces along contiguous rows; on the CPU (MKL, one thread) these products ran
// 1.3-1.8x faster than the same products on row-major A and B, enough to pay for the
// copy and then some. Q^T and B^T are adjacent so that Q^T Q and Q^T B are one product.
// The paths and their choice are those of solve_batch, with the control flow on host
// scalars: at one problem per task, the ATen calls that would choose and gather paths
// cost as much as a small problem's arithmetic. n < p without ridge goes to the SVD,
// with ridge to the paths.
// Returns x (p, k) float64 and the path taken.
inline std::pair<at::Tensor, Path> solve_one(const at::Tensor& A, const at::Tensor& B,
                                             double ridge_value) {
  const int64_t n = A.size(0), p = A.size(1), k = B.size(1);
  const auto opts = A.options().dtype(at::kDouble);
  if (p == 0 || k == 0) return {at::zeros({p, k}, opts), kNormalEquations};
  const bool ridged = ridge_value > 0;
  const auto ridge = at::full({1}, ridge_value, opts);
  auto svd = [&]() {
    const auto a = A.to(at::kDouble).unsqueeze(0), b = B.to(at::kDouble).unsqueeze(0);
    return svd_solve(a, b, ridge).squeeze(0);
  };
  if (n < p && !ridged) {
    if (!all_finite(A) || !all_finite(B)) return {nan_solution(1, p, k, opts)[0], kNonFinite};
    return {svd(), kSvd};
  }
  auto buffer = at::empty({2 * p + k, n}, opts);
  auto a_t = buffer.narrow(0, 0, p);
  auto q_t = buffer.narrow(0, p, p);
  auto b_t = buffer.narrow(0, 2 * p, k);
  transpose_into(a_t, A);
  transpose_into(b_t, B);
  auto gram = upper_products(a_t, p);  // upper triangle of A^T A
  if (ridged) gram.diagonal().add_(ridge_value);
  const double* g = gram.const_data_ptr<double>();
  for (int64_t i = 0; i < p * p; ++i) {
    if (!std::isfinite(g[i])) return {nan_solution(1, p, k, opts)[0], kNonFinite};
  }
  auto [r, info] = at::linalg_cholesky_ex(gram, /*upper=*/true);
  const double cond = info.item<int>() == 0 ? cond_estimate_host(r) : INFINITY;
  const Path path = path_for(cond, p, k);
  if (path == kNormalEquations || path == kRefined) {
    auto x = at::cholesky_solve(at::mm(a_t, b_t.t()), r, /*upper=*/true);
    if (path == kNormalEquations) return {x, path};
    // One corrected semi-normal step: r = B - A x overwrites B^T, which no later path
    // needs.
    b_t.addmm_(x.t(), a_t, /*beta=*/1, /*alpha=*/-1);
    auto rhs = at::mm(a_t, b_t.t());
    if (ridged) rhs.sub_(ridge_value * x);
    return {x.add_(at::cholesky_solve(rhs, r, /*upper=*/true)), path};
  }
  // CholeskyQR as in cholesky_qr_solve, on the transposed bases: Q1^T = R1^-T A^T into
  // q_t and the second pass implicit, or Q2^T = R2^-T Q1^T into q_t and a third pass
  // implicit; each last pass forms [Q^T Q, Q^T B] by upper_products.
  const double rank_cond = kRankGuard / (kEps * static_cast<double>(std::max(n, p)));
  auto last_pass = [&](const at::Tensor& w) -> std::optional<std::pair<at::Tensor, at::Tensor>> {
    const auto products = upper_products(buffer.narrow(0, p, p + k), p);  // (p, p + k)
    auto g_last = products.narrow(1, 0, p);
    if (ridged) g_last = g_last + ridge_value * at::mm(w.t(), w);
    auto [r_last, info_last] = at::linalg_cholesky_ex(g_last, /*upper=*/true);
    if (info_last.item<int>() != 0) return std::nullopt;
    const auto y = at::cholesky_solve(products.narrow(1, p, k), r_last, /*upper=*/true);
    return std::pair{at::mm(w, y), r_last};
  };
  const at::Tensor r1 =
      info.item<int>() == 0 ? r : shifted_factor(gram, ridged ? n + p : n).first;
  const auto w1 = triangular_inverse(r1);
  lower_triangular_times(q_t, w1.t(), a_t);
  if (auto second = last_pass(w1)) {
    auto [x, r2] = *second;
    at::Tensor r_all = at::mm(r2, r1);
    Path taken = kCholeskyQR2;
    if (cond_estimate_host(r2) > kLastPassCond) {
      const auto w2 = triangular_inverse(r2);
      const auto q1_t = q_t.clone();
      lower_triangular_times(q_t, w2.t(), q1_t);
      auto third = last_pass(at::mm(w1, w2));
      if (!third) return {svd(), kSvd};
      x = third->first;
      r_all = at::mm(third->second, r_all);
      taken = kCholeskyQR3;
    }
    if (!ridged && cond_estimate_host(r_all) >= rank_cond) return {svd(), kSvd};
    return {x, taken};
  }
  return {svd(), kSvd};
}

}  // namespace facelin::linalg
