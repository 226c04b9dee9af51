// CPU kernels of the linalg ops: threads run over problems or target blocks;
// each thread runs the shared algorithms of linalg.h on its own slice, with the BLAS and
// LAPACK calls inside it single-threaded (nested parallel regions run serially).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>

#include "../linalg.h"

namespace facelin {

namespace {

// Runs task(i) for i in [0, count) on all threads, each taking the next task when it is
// done with one: with other processes on the cores, a static split would leave every
// thread waiting for the one that was descheduled.
template <typename Task>
void parallel_tasks(int64_t count, const Task& task) {
  std::atomic<int64_t> next{0};
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), count);
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t i = next++; i < count; i = next++) task(i);
  });
}

}  // namespace

// One problem per task: its Gram matrix, factors and products stay in the core's cache,
// and each problem takes the path its own condition estimate asks for.
std::tuple<at::Tensor, at::Tensor> lstsq_batched_cpu(const at::Tensor& A, const at::Tensor& B,
                                                     const at::Tensor& ridge) {
  check_lstsq_batched_args(A, B, ridge);
  const int64_t b = A.size(0), p = A.size(2), k = B.size(2);
  auto out = at::empty({b, p, k}, B.options());
  auto path = at::empty({b}, A.options().dtype(at::kLong));
  int64_t* path_ptr = path.data_ptr<int64_t>();
  const auto ridge_c = ridge.contiguous();
  const double* ridge_ptr = ridge_c.const_data_ptr<double>();
  parallel_tasks(b, [&](int64_t i) {
    const auto [x, which] = linalg::solve_one(A.select(0, i), B.select(0, i), ridge_ptr[i]);
    out.select(0, i).copy_(x);
    path_ptr[i] = which;
  });
  return {out, path};
}

// The CUDA kernel's algorithm on the CPU, for the tests: solve_batch on the whole batch.
std::tuple<at::Tensor, at::Tensor> lstsq_batched_masked_cpu(const at::Tensor& A,
                                                            const at::Tensor& B,
                                                            const at::Tensor& ridge) {
  check_lstsq_batched_args(A, B, ridge);
  const auto sol = linalg::solve_batch(A.to(at::kDouble), B.to(at::kDouble), ridge);
  return {sol.x.to(B.scalar_type()), sol.path};
}

// Fused over one block of targets at a time: one product of M with the block's
// coefficients at every alpha side by side, then the squared residuals, all in cache;
// nothing of size alphas x n x k exists.
at::Tensor ridge_path_sse_cpu(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                              const at::Tensor& gains, const at::Tensor& row_scale) {
  check_ridge_path_args(M, Z, Y, gains, row_scale);
  const int64_t n = M.size(0), r = M.size(1), k = Z.size(1), n_alpha = gains.size(0);
  auto sse = at::zeros({n_alpha, k}, M.options());
  if (sse.numel() == 0 || n == 0) return sse;
  const auto y = Y.contiguous();
  const auto rs = row_scale.contiguous();
  const bool scaled = rs.numel() > 0;
  const auto m_c = M.contiguous();
  const auto g = gains.contiguous().view({n_alpha, r, 1});
  const double* y_ptr = y.data_ptr<double>();
  double* sse_ptr = sse.data_ptr<double>();
  // Blocks wide enough for an efficient product, and enough of them for every thread.
  const int64_t threads = at::get_num_threads();
  const int64_t kb_max = std::clamp<int64_t>((k + 2 * threads - 1) / (2 * threads), 8, 128);
  const int64_t n_blocks = (k + kb_max - 1) / kb_max;
  parallel_tasks(n_blocks, [&](int64_t blk) {
    {
      const int64_t t0 = blk * kb_max, kb = std::min(kb_max, k - t0);
      // (r, alphas * kb): column a * kb + t holds gains[a] * Z[:, t0 + t].
      const auto coefs = (g * Z.narrow(1, t0, kb).unsqueeze(0)).permute({1, 0, 2})
                             .reshape({r, n_alpha * kb});
      const auto fitted = at::mm(m_c, coefs);
      const double* f = fitted.data_ptr<double>();
      const int64_t width = n_alpha * kb;
      for (int64_t a = 0; a < n_alpha; ++a) {
        const double* scale = scaled ? rs.data_ptr<double>() + a * n : nullptr;
        double* acc = sse_ptr + a * k + t0;
        for (int64_t i = 0; i < n; ++i) {
          const double* yi = y_ptr + i * k + t0;
          const double* fi = f + i * width + a * kb;
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
  m.impl("lstsq_batched", &facelin::lstsq_batched_cpu);
  m.impl("lstsq_batched_masked", &facelin::lstsq_batched_masked_cpu);
  m.impl("ridge_path_sse", &facelin::ridge_path_sse_cpu);
}
