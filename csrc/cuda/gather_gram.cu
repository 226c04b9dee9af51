// CUDA kernel of gather_gram: one thread per output element.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../checks.h"

namespace facelin {

template <typename scalar_t>
__global__ void gather_gram_kernel(const scalar_t* __restrict__ gram,
                                   const int64_t* __restrict__ subsets, scalar_t* __restrict__ out,
                                   int64_t m, int64_t s, int64_t total) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= total) return;
  const int64_t j = k % s;
  const int64_t i = (k / s) % s;
  const int64_t b = k / (s * s);
  out[k] = gram[subsets[b * s + i] * m + subsets[b * s + j]];
}

at::Tensor gather_gram_cuda(const at::Tensor& gram, const at::Tensor& subsets) {
  check_gather_gram_args(gram, subsets);
  const c10::cuda::CUDAGuard guard(gram.device());
  const int64_t m = gram.size(0);
  const int64_t batch = subsets.size(0);
  const int64_t s = subsets.size(1);
  auto g = gram.contiguous();
  auto idx = subsets.contiguous();
  if (idx.numel() > 0) {
    // One synchronising check: an out-of-range index would read foreign memory.
    auto range = at::stack({idx.min(), idx.max()}).cpu();
    const int64_t lo = range[0].item<int64_t>();
    const int64_t hi = range[1].item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < m, "facelin: subsets hold indices in [", lo, ", ", hi,
                "] but gram has ", m, " rows");
  }
  auto out = at::empty({batch, s, s}, g.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "gather_gram_cuda", [&] {
    gather_gram_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        g.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), out.data_ptr<scalar_t>(), m, s, total);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CUDA, m) { m.impl("gather_gram", &facelin::gather_gram_cuda); }
