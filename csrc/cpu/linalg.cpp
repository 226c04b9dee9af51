// CPU kernels of the linalg ops: threads run over problems, subsets or target blocks;
// each thread runs the shared algorithms of linalg.h on its own slice, with the BLAS and
// LAPACK calls inside it single-threaded (nested parallel regions run serially).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../linalg.h"

namespace facelin {

at::Tensor gather_gram_cpu(const at::Tensor& gram, const at::Tensor& subsets);

namespace {

// Columns of B converted to float64 per block, so that a float32 B is never copied whole.
constexpr int64_t kCastBlock = 16384;

}  // namespace

at::Tensor lstsq_shared_cpu(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  linalg::check_lstsq_args(A, B, ridge, 2);
  const int64_t n = A.size(0), p = A.size(1), m = B.size(1);
  TORCH_CHECK(B.size(0) == n, "facelin: A has ", n, " rows but B has ", B.size(0));
  TORCH_CHECK(ridge.size(0) == 1 || ridge.size(0) == m, "facelin: ridge must hold 1 or ", m,
              " values, got ", ridge.size(0));
  auto out = at::empty({p, m}, B.options());
  if (p == 0 || m == 0) return out.zero_();
  const auto a = A.to(at::kDouble);
  if (B.scalar_type() == at::kDouble) return linalg::shared_solve(a, B, ridge);
  for (int64_t c0 = 0; c0 < m; c0 += kCastBlock) {
    const int64_t len = std::min(kCastBlock, m - c0);
    const auto r = ridge.size(0) == 1 ? ridge : ridge.narrow(0, c0, len);
    out.narrow(1, c0, len).copy_(linalg::shared_solve(a, B.narrow(1, c0, len).to(at::kDouble), r));
  }
  return out;
}

at::Tensor lstsq_batched_cpu(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  linalg::check_lstsq_args(A, B, ridge, 3);
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2), k = B.size(2);
  TORCH_CHECK(B.size(0) == b && B.size(1) == n, "facelin: A has shape ", A.sizes(),
              " but B has shape ", B.sizes(), "; they must agree in batch and rows");
  TORCH_CHECK(ridge.size(0) == b, "facelin: ridge must hold one value per problem (", b,
              "), got ", ridge.size(0));
  auto out = at::empty({b, p, k}, B.options());
  if (out.numel() == 0) return out.zero_();
  // One problem per task: its Gram, Cholesky and triangular solves stay in cache, and the
  // condition-dependent pass count is chosen per problem.
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto a = A.select(0, i).unsqueeze(0).to(at::kDouble);
      const auto rhs = B.select(0, i).unsqueeze(0).to(at::kDouble);
      out.select(0, i).copy_(linalg::solve_batch(a, rhs, ridge.narrow(0, i, 1)).squeeze(0));
    }
  });
  return out;
}

at::Tensor subset_solve_cpu(const at::Tensor& gram, const at::Tensor& cross,
                            const at::Tensor& subsets, const at::Tensor& ridge) {
  check_gather_gram_args(gram, subsets);
  TORCH_CHECK(gram.scalar_type() == at::kDouble && cross.scalar_type() == at::kDouble &&
                  ridge.scalar_type() == at::kDouble,
              "facelin: subset_solve works in float64");
  check_dim(cross, 2, "cross");
  check_same_device(gram, cross, "gram", "cross");
  check_same_device(gram, ridge, "gram", "ridge");
  TORCH_CHECK(cross.size(0) == gram.size(0), "facelin: cross has ", cross.size(0),
              " rows but gram is ", gram.size(0), " x ", gram.size(0));
  const int64_t b = subsets.size(0), s = subsets.size(1), k = cross.size(1);
  TORCH_CHECK(ridge.dim() == 1 && ridge.size(0) == b, "facelin: ridge must hold one value per "
              "subset (", b, "), got shape ", ridge.sizes());
  auto out = at::empty({b, s, k}, cross.options());
  if (out.numel() == 0) return out.zero_();
  const auto g = gram.contiguous();
  const auto idx = subsets.contiguous();
  TORCH_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < g.size(0),
              "facelin: subsets hold indices in [", idx.min().item<int64_t>(), ", ",
              idx.max().item<int64_t>(), "] but gram has ", g.size(0), " rows");
  // A few subsets per task: enough to amortise dispatch, few enough to stay in cache.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(8, (1 << 20) / (s * s + 1)));
  const int64_t n_chunks = (b + chunk - 1) / chunk;
  at::parallel_for(0, n_chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t first = c * chunk, len = std::min(chunk, b - first);
      const auto sub = idx.narrow(0, first, len);
      auto grams = gather_gram_cpu(g, sub);
      const auto rhs = cross.index_select(0, sub.reshape({-1})).view({len, s, k});
      out.narrow(0, first, len)
          .copy_(linalg::subset_cholesky_solve(grams, rhs, ridge.narrow(0, first, len), first));
    }
  });
  return out;
}

// Fused over one block of targets at a time: the scaled coefficients, the product with
// M and the squared residuals stay in cache, and nothing of size alphas x n x k exists.
at::Tensor ridge_path_sse_cpu(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                              const at::Tensor& gains, const at::Tensor& row_scale) {
  linalg::check_ridge_path_args(M, Z, Y, gains, row_scale);
  const int64_t n = M.size(0), k = Z.size(1), n_alpha = gains.size(0);
  auto sse = at::zeros({n_alpha, k}, M.options());
  if (sse.numel() == 0 || n == 0) return sse;
  const auto y = Y.contiguous();
  const auto rs = row_scale.contiguous();
  const bool scaled = rs.numel() > 0;
  const auto m_c = M.contiguous();
  const auto g = gains.contiguous();
  const double* y_ptr = y.data_ptr<double>();
  double* sse_ptr = sse.data_ptr<double>();
  constexpr int64_t kBlock = 64;
  const int64_t n_blocks = (k + kBlock - 1) / kBlock;
  at::parallel_for(0, n_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t t0 = blk * kBlock, kb = std::min(kBlock, k - t0);
      const auto z = Z.narrow(1, t0, kb);
      for (int64_t a = 0; a < n_alpha; ++a) {
        const auto fitted = at::mm(m_c, z * g.select(0, a).unsqueeze(1)).contiguous();
        const double* f = fitted.data_ptr<double>();
        const double* scale = scaled ? rs.data_ptr<double>() + a * n : nullptr;
        double* acc = sse_ptr + a * k + t0;
        for (int64_t i = 0; i < n; ++i) {
          const double* yi = y_ptr + i * k + t0;
          const double* fi = f + i * kb;
          const double w = scaled ? scale[i] * scale[i] : 1.0;
          for (int64_t t = 0; t < kb; ++t) {
            const double d = yi[t] - fi[t];
            acc[t] += w * d * d;
          }
        }
      }
    }
  });
  return sse;
}

}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CPU, m) {
  m.impl("lstsq_shared", &facelin::lstsq_shared_cpu);
  m.impl("lstsq_batched", &facelin::lstsq_batched_cpu);
  m.impl("subset_solve", &facelin::subset_solve_cpu);
  m.impl("ridge_path_sse", &facelin::ridge_path_sse_cpu);
}
