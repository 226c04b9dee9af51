// CUDA kernels of the linalg ops: the shared algorithms of linalg.h run on whole batches
// (cuBLAS batched products, cuSOLVER batched factorizations), chunked to bound memory;
// the ridge-path residuals are reduced by a kernel of their own.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../linalg.h"

namespace facelin {

namespace {

// Elements of float64 work space one chunk may allocate (2 GiB).
constexpr int64_t kChunkElements = int64_t{1} << 28;

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

std::tuple<at::Tensor, at::Tensor> lstsq_batched_cuda(const at::Tensor& A,
                                                      const at::Tensor& B,
                                                      const at::Tensor& ridge) {
  check_lstsq_batched_args(A, B, ridge);
  const c10::cuda::CUDAGuard guard(A.device());
  const int64_t b = A.size(0), n = A.size(1), p = A.size(2), k = B.size(2);
  auto out = at::empty({b, p, k}, B.options());
  auto path = at::empty({b}, A.options().dtype(at::kLong));
  // Work space per problem: A, two bases of its size (CholeskyQR3) and B in float64
  // (B twice), a few p x p factors.
  const int64_t chunk = chunk_size(3 * n * p + 2 * n * k + 10 * p * p + 2 * p * k);
  for (int64_t first = 0; first < b; first += chunk) {
    const int64_t len = std::min(chunk, b - first);
    const auto a = A.narrow(0, first, len).to(at::kDouble);
    const auto rhs = B.narrow(0, first, len).to(at::kDouble);
    const auto sol = linalg::solve_batch(a, rhs, ridge.narrow(0, first, len));
    out.narrow(0, first, len).copy_(sol.x);
    path.narrow(0, first, len).copy_(sol.path);
  }
  return {out, path};
}

// The fitted values of a chunk of targets at every alpha, (alphas, n, targets), are formed
// by one batched product and reduced by path_sse_kernel; the chunk is as wide as 2 GiB of
// them allows.
at::Tensor ridge_path_sse_cuda(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                               const at::Tensor& gains, const at::Tensor& row_scale) {
  check_ridge_path_args(M, Z, Y, gains, row_scale);
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
  m.impl("lstsq_batched", &facelin::lstsq_batched_cuda);
  // On CUDA the two are one algorithm.
  m.impl("lstsq_batched_masked", &facelin::lstsq_batched_cuda);
  m.impl("ridge_path_sse", &facelin::ridge_path_sse_cuda);
}
