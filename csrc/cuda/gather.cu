// CUDA kernels of gather_units: one thread per selected element, one warp per pooled
// (sample, channel). The layer output is read in place; a host-side out gets the block
// through one asynchronous 2-D copy from a device buffer of the batch's units.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <c10/util/TypeCast.h>
#include <torch/library.h>

#include <cuda_runtime.h>

#include "../gather.h"

namespace facelin {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

template <typename in_t, typename out_t>
__global__ void select_units_kernel(const in_t* __restrict__ src, LayerGeometry g,
                                    const int64_t* __restrict__ index, int64_t units,
                                    int64_t bound, out_t* __restrict__ dst,
                                    int64_t out_row_stride, int64_t out_col_stride) {
  const int64_t total = g.n * units;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = k / units;
    const int64_t u = k - row * units;
    const int64_t unit = index[u];
    CUDA_KERNEL_ASSERT(unit >= 0 && unit < bound && "gather_units: index out of range");
    dst[row * out_row_stride + u * out_col_stride] =
        c10::convert<out_t>(src[row * g.sn + g.unit_offset(unit)]);
  }
}

template <typename acc_t>
__device__ acc_t max_propagating_nan(acc_t a, acc_t b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

template <typename in_t, typename out_t>
__global__ void pool_channels_kernel(const in_t* __restrict__ src, LayerGeometry g,
                                     const int64_t* __restrict__ channels, int64_t units,
                                     bool mean, out_t* __restrict__ dst, int64_t out_row_stride,
                                     int64_t out_col_stride) {
  using acc_t = at::opmath_type<in_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t task = blockIdx.x * warps_per_block + threadIdx.x / kWarp;
  if (task >= g.n * units) return;  // whole warps leave together
  const int64_t row = task / units;
  const int64_t u = task - row * units;
  const int64_t channel = channels[u];
  CUDA_KERNEL_ASSERT(channel >= 0 && channel < g.c && "gather_units: channel out of range");
  const in_t* plane = src + row * g.sn + channel * g.sc;
  const int64_t hw = g.h * g.w;
  out_t& target = dst[row * out_row_stride + u * out_col_stride];
  if (mean) {
    double sum = 0.0;
    for (int64_t k = lane; k < hw; k += kWarp) {
      const int64_t y = k / g.w;
      sum += static_cast<double>(static_cast<acc_t>(plane[y * g.sh + (k - y * g.w) * g.sw]));
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) target = c10::convert<out_t>(sum / static_cast<double>(hw));
  } else {
    acc_t best = -INFINITY;
    for (int64_t k = lane; k < hw; k += kWarp) {
      const int64_t y = k / g.w;
      best = max_propagating_nan(best,
                                 static_cast<acc_t>(plane[y * g.sh + (k - y * g.w) * g.sw]));
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      best = max_propagating_nan(best, __shfl_down_sync(0xffffffffu, best, offset));
    if (lane == 0) target = c10::convert<out_t>(best);
  }
}

// Gathers into dst (on the layer's device) with the given element strides.
void launch_gather(const at::Tensor& layer, const LayerGeometry& g, const at::Tensor& index,
                   Pooling kind, const at::Tensor& dst_tensor, int64_t offset,
                   int64_t out_row_stride, int64_t out_col_stride) {
  const int64_t units = index.size(0);
  const int64_t tasks = g.n * units;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, layer.scalar_type(),
                                  "gather_units_cuda_in", [&] {
    using in_t = scalar_t;
    const in_t* src = layer.const_data_ptr<in_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst_tensor.scalar_type(),
                                    "gather_units_cuda_out", [&] {
      using out_t = scalar_t;
      out_t* dst = dst_tensor.data_ptr<out_t>() + offset;
      if (kind == Pooling::None) {
        const int64_t blocks = std::min<int64_t>((tasks + kThreads - 1) / kThreads, 65535);
        select_units_kernel<in_t, out_t><<<blocks, kThreads, 0, stream>>>(
            src, g, index.data_ptr<int64_t>(), units, g.units_per_sample(), dst,
            out_row_stride, out_col_stride);
      } else {
        const int64_t warps_per_block = kThreads / kWarp;
        const int64_t blocks = (tasks + warps_per_block - 1) / warps_per_block;
        pool_channels_kernel<in_t, out_t><<<blocks, kThreads, 0, stream>>>(
            src, g, index.data_ptr<int64_t>(), units, kind == Pooling::Mean, dst,
            out_row_stride, out_col_stride);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

void gather_units_cuda(const at::Tensor& layer, const at::Tensor& index,
                       c10::string_view pooling, const at::Tensor& out, int64_t row0,
                       int64_t col0) {
  const Pooling kind = parse_pooling(std::string_view(pooling.data(), pooling.size()));
  check_gather_units_args(layer, index, kind, out, row0, col0);
  TORCH_CHECK(layer.is_cuda(), "facelin: gather_units reads a layer output on ",
              layer.device(), " but out is on ", out.device(),
              "; out may be in host memory only for a CUDA layer");
  TORCH_CHECK(out.is_cpu() || out.device() == layer.device(), "facelin: the layer output is on ",
              layer.device(), " but out is on ", out.device());
  const c10::cuda::CUDAGuard guard(layer.device());
  const LayerGeometry g = layer_geometry(layer);
  const int64_t units = index.size(0);
  if (g.n == 0 || units == 0) return;

  if (out.is_cuda()) {
    launch_gather(layer, g, index, kind, out, row0 * out.stride(0) + col0 * out.stride(1),
                  out.stride(0), out.stride(1));
    return;
  }
  // Host output: gather the batch's block on the device, then one 2-D copy into the rows
  // and columns of out (asynchronous when out is pinned).
  auto block = at::empty({g.n, units}, layer.options().dtype(out.scalar_type()));
  launch_gather(layer, g, index, kind, block, 0, units, 1);
  auto target = out.narrow(0, row0, g.n).narrow(1, col0, units);
  if (out.stride(1) == 1) {
    const size_t item = out.element_size();
    C10_CUDA_CHECK(cudaMemcpy2DAsync(target.data_ptr(), out.stride(0) * item, block.data_ptr(),
                                     units * item, units * item, g.n, cudaMemcpyDeviceToHost,
                                     at::cuda::getCurrentCUDAStream()));
  } else {
    target.copy_(block);
  }
}

}  // namespace
}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CUDA, m) { m.impl("gather_units", &facelin::gather_units_cuda); }
