// CUDA kernels of the linalg ops: the shared algorithms of linalg.h run on whole batches
// (cuBLAS batched products, cuSOLVER batched factorizations), chunked to bound memory;
// the ridge-path residuals are reduced by a kernel of their own.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../linalg.h"

namespace facelin {

at::Tensor gather_gram_cuda(const at::Tensor& gram, const at::Tensor& subsets);

namespace {

// Elements of float64 work space one chunk may allocate (2 GiB).
constexpr int64_t kChunkElements = int64_t{1} << 28;
constexpr int64_t kCastBlock = 16384;

int64_t chunk_size(int64_t per_item) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, per_item));
}

// sse[a, t] += sum_i (scale[a, i] * (y[i, t] - fitted[a, i, t]))^2 for one block of
// targets: one thread per (alpha, target), rows walked in order so that neighbouring
// threads read neighbouring targets.
__global__ void path_sse_kernel(const double* __restrict__ y, const double* __restrict__ fitted,
                                const double* __restrict__ scale, double* __restrict__ sse,
                                int64_t n, int64_t k, int64_t t0, int64_t kc, int64_t n_alpha) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= n_alpha * kc) return;
  const int64_t a = id / kc, t = id % kc;
  const double* f = fitted + a * n * kc + t;
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = scale ? scale[a * n + i] : 1.0;
    const double d = w * (y[i * k + t0 + t] - f[i * kc]);
    acc += d * d;
  }
  sse[a * k + t0 + t] = acc;
}

}  // namespace

at::Tensor lstsq_shared_cuda(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  linalg::check_lstsq_args(A, B, ridge, 2);
  const c10::cuda::CUDAGuard guard(A.device());
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

at::Tensor lstsq_batched_cuda(const at::Tensor& A, const at::Tensor& B, const at::Tensor& ridge) {
  linalg::check_lstsq_args(A, B, ridge, 3);
  const c10::cuda::CUDAGuard guard(A.device());
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2), k = B.size(2);
  TORCH_CHECK(B.size(0) == b && B.size(1) == n, "facelin: A has shape ", A.sizes(),
              " but B has shape ", B.sizes(), "; they must agree in batch and rows");
  TORCH_CHECK(ridge.size(0) == b, "facelin: ridge must hold one value per problem (", b,
              "), got ", ridge.size(0));
  auto out = at::empty({b, p, k}, B.options());
  if (out.numel() == 0) return out.zero_();
  // Work space per problem: A, the basis Q and B in float64, a few p x p factors.
  const int64_t chunk = chunk_size(2 * n * p + n * k + 6 * p * p + p * k);
  for (int64_t first = 0; first < b; first += chunk) {
    const int64_t len = std::min(chunk, b - first);
    const auto a = A.narrow(0, first, len).to(at::kDouble);
    const auto rhs = B.narrow(0, first, len).to(at::kDouble);
    out.narrow(0, first, len).copy_(linalg::solve_batch(a, rhs, ridge.narrow(0, first, len)));
  }
  return out;
}

at::Tensor subset_solve_cuda(const at::Tensor& gram, const at::Tensor& cross,
                             const at::Tensor& subsets, const at::Tensor& ridge) {
  check_gather_gram_args(gram, subsets);
  const c10::cuda::CUDAGuard guard(gram.device());
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
  const int64_t chunk = chunk_size(2 * s * s + 2 * s * k);
  for (int64_t first = 0; first < b; first += chunk) {
    const int64_t len = std::min(chunk, b - first);
    const auto sub = idx.narrow(0, first, len);
    auto grams = gather_gram_cuda(g, sub);
    const auto rhs = cross.index_select(0, sub.reshape({-1})).view({len, s, k});
    out.narrow(0, first, len)
        .copy_(linalg::subset_cholesky_solve(grams, rhs, ridge.narrow(0, first, len), first));
  }
  return out;
}

at::Tensor ridge_path_sse_cuda(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                               const at::Tensor& gains, const at::Tensor& row_scale) {
  linalg::check_ridge_path_args(M, Z, Y, gains, row_scale);
  const c10::cuda::CUDAGuard guard(M.device());
  const int64_t n = M.size(0), k = Z.size(1), n_alpha = gains.size(0);
  auto sse = at::zeros({n_alpha, k}, M.options());
  if (sse.numel() == 0 || n == 0) return sse;
  const auto y = Y.contiguous();
  const auto rs = row_scale.contiguous();
  const double* scale = rs.numel() > 0 ? rs.data_ptr<double>() : nullptr;
  const int64_t kc = std::min(k, chunk_size(n_alpha * n));
  auto stream = at::cuda::getCurrentCUDAStream();
  for (int64_t t0 = 0; t0 < k; t0 += kc) {
    const int64_t len = std::min(kc, k - t0);
    const auto fitted =
        at::matmul(M, gains.unsqueeze(-1) * Z.narrow(1, t0, len).unsqueeze(0)).contiguous();
    const int threads = 256;
    const int64_t blocks = (n_alpha * len + threads - 1) / threads;
    path_sse_kernel<<<blocks, threads, 0, stream>>>(y.data_ptr<double>(),
                                                    fitted.data_ptr<double>(), scale,
                                                    sse.data_ptr<double>(), n, k, t0, len,
                                                    n_alpha);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return sse;
}

}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CUDA, m) {
  m.impl("lstsq_shared", &facelin::lstsq_shared_cuda);
  m.impl("lstsq_batched", &facelin::lstsq_batched_cuda);
  m.impl("subset_solve", &facelin::subset_solve_cuda);
  m.impl("ridge_path_sse", &facelin::ridge_path_sse_cuda);
}
