// CPU kernel of gather_units: read the chosen units (or per-channel mean / max) of a layer
// output in place, whatever its strides, and write them converted into a block of a
// preallocated response matrix. One pass over the selected elements, no copy of the layer.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/util/TypeCast.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../gather.h"

namespace facelin {
namespace {

// Elements handled per parallel task; small batches stay on one thread.
constexpr int64_t kGrainElements = 1 << 15;

template <typename in_t, typename out_t>
void select_units(const in_t* src, const LayerGeometry& g, const std::vector<int64_t>& offsets,
                  out_t* dst, int64_t out_row_stride, int64_t out_col_stride) {
  const int64_t units = static_cast<int64_t>(offsets.size());
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(units, 1));
  at::parallel_for(0, g.n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const in_t* sample = src + row * g.sn;
      out_t* out_row = dst + row * out_row_stride;
      for (int64_t u = 0; u < units; ++u)
        out_row[u * out_col_stride] = c10::convert<out_t>(sample[offsets[u]]);
    }
  });
}

template <typename in_t, typename out_t>
void pool_channels(const in_t* src, const LayerGeometry& g, const int64_t* channels,
                   int64_t units, Pooling kind, out_t* dst, int64_t out_row_stride,
                   int64_t out_col_stride) {
  using acc_t = at::opmath_type<in_t>;
  const int64_t hw = g.h * g.w;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(hw, 1));
  at::parallel_for(0, g.n * units, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / units;
      const int64_t u = task - row * units;
      const in_t* plane = src + row * g.sn + channels[u] * g.sc;
      out_t& target = dst[row * out_row_stride + u * out_col_stride];
      if (kind == Pooling::Mean) {
        // Summed in float64 whatever the input type, so the mean is the same as
        // layer.double().mean((2, 3)) up to the order of a float64 sum.
        double sum = 0.0;
        for (int64_t y = 0; y < g.h; ++y)
          for (int64_t x = 0; x < g.w; ++x)
            sum += static_cast<double>(static_cast<acc_t>(plane[y * g.sh + x * g.sw]));
        target = c10::convert<out_t>(sum / static_cast<double>(hw));
      } else {
        acc_t best = -std::numeric_limits<acc_t>::infinity();
        bool nan = false;
        for (int64_t y = 0; y < g.h && !nan; ++y)
          for (int64_t x = 0; x < g.w; ++x) {
            const acc_t v = static_cast<acc_t>(plane[y * g.sh + x * g.sw]);
            if (std::isnan(v)) {
              best = v;  // NaN propagates, as in torch.amax
              nan = true;
              break;
            }
            if (v > best) best = v;
          }
        target = c10::convert<out_t>(best);
      }
    }
  });
}

void gather_units_cpu(const at::Tensor& layer, const at::Tensor& index, c10::string_view pooling,
                      const at::Tensor& out, int64_t row0, int64_t col0) {
  const Pooling kind = parse_pooling(std::string_view(pooling.data(), pooling.size()));
  check_gather_units_args(layer, index, kind, out, row0, col0);
  TORCH_CHECK(layer.device().is_cpu() && out.device().is_cpu(),
              "facelin: the CPU kernel of gather_units needs the layer output and out on the "
              "CPU, got ", layer.device(), " and ", out.device());
  const LayerGeometry g = layer_geometry(layer);
  const int64_t units = index.size(0);
  if (g.n == 0 || units == 0) return;

  const auto idx = index.contiguous();
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t bound = gather_index_bound(g, kind);
  for (int64_t u = 0; u < units; ++u)
    TORCH_CHECK(ix[u] >= 0 && ix[u] < bound, "facelin: index[", u, "] = ", ix[u],
                " is out of range for a layer of shape ", layer.sizes(), " (valid: 0 to ",
                bound - 1, kind == Pooling::None ? " over C*H*W units)" : " channels)");

  const int64_t out_row_stride = out.stride(0);
  const int64_t out_col_stride = out.stride(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, layer.scalar_type(),
                                  "gather_units_cpu_in", [&] {
    using in_t = scalar_t;
    const in_t* src = layer.const_data_ptr<in_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(),
                                    "gather_units_cpu_out", [&] {
      using out_t = scalar_t;
      out_t* dst = out.data_ptr<out_t>() + row0 * out_row_stride + col0 * out_col_stride;
      if (kind == Pooling::None) {
        std::vector<int64_t> offsets(units);
        for (int64_t u = 0; u < units; ++u) offsets[u] = g.unit_offset(ix[u]);
        select_units<in_t, out_t>(src, g, offsets, dst, out_row_stride, out_col_stride);
      } else {
        pool_channels<in_t, out_t>(src, g, ix, units, kind, dst, out_row_stride, out_col_stride);
      }
    });
  });
}

}  // namespace
}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CPU, m) { m.impl("gather_units", &facelin::gather_units_cpu); }
