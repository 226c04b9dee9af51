// Argument checks and layer geometry shared by the CPU and CUDA kernels of gather_units.
#pragma once
#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <string_view>

namespace facelin {

enum class Pooling { None, Mean, Max };

inline Pooling parse_pooling(std::string_view name) {
  if (name == "none") return Pooling::None;
  if (name == "mean") return Pooling::Mean;
  if (name == "max") return Pooling::Max;
  TORCH_CHECK(false, "facelin: gather_units pooling must be 'none', 'mean' or 'max', got '",
              std::string(name), "'");
  return Pooling::None;  // not reached
}

// A layer output seen as (n, c, h, w) with element strides; an (N, F) output is (N, F, 1, 1).
struct LayerGeometry {
  int64_t n, c, h, w;
  int64_t sn, sc, sh, sw;
  C10_HOST_DEVICE int64_t units_per_sample() const { return c * h * w; }
  // Element offset (from the start of a sample) of flat unit k of C*H*W.
  C10_HOST_DEVICE int64_t unit_offset(int64_t k) const {
    const int64_t hw = h * w;
    const int64_t ch = k / hw;
    const int64_t rest = k - ch * hw;
    const int64_t y = rest / w;
    return ch * sc + y * sh + (rest - y * w) * sw;
  }
};

inline LayerGeometry layer_geometry(const at::Tensor& layer) {
  if (layer.dim() == 2)
    return {layer.size(0), layer.size(1), 1, 1, layer.stride(0), layer.stride(1), 0, 0};
  return {layer.size(0), layer.size(1), layer.size(2), layer.size(3),
          layer.stride(0), layer.stride(1), layer.stride(2), layer.stride(3)};
}

inline bool is_gather_float(at::ScalarType t) {
  return t == at::kHalf || t == at::kBFloat16 || t == at::kFloat || t == at::kDouble;
}

// Checks shared by every backend; the index range is checked where the index lives.
inline void check_gather_units_args(const at::Tensor& layer, const at::Tensor& index,
                                    Pooling kind, const at::Tensor& out, int64_t row0,
                                    int64_t col0) {
  TORCH_CHECK(layer.dim() == 2 || layer.dim() == 4,
              "facelin: gather_units needs a layer output of shape (N, C, H, W) or (N, F), got ",
              layer.sizes());
  TORCH_CHECK(is_gather_float(layer.scalar_type()),
              "facelin: the layer output must be float16, bfloat16, float32 or float64, got ",
              layer.scalar_type());
  TORCH_CHECK(out.dim() == 2, "facelin: out must be a matrix (rows, columns), got shape ",
              out.sizes());
  TORCH_CHECK(is_gather_float(out.scalar_type()),
              "facelin: out must be float16, bfloat16, float32 or float64, got ",
              out.scalar_type());
  TORCH_CHECK(index.scalar_type() == at::kLong, "facelin: index must be int64, got ",
              index.scalar_type());
  TORCH_CHECK(index.dim() == 1, "facelin: index must be one-dimensional, got shape ",
              index.sizes());
  TORCH_CHECK(index.device() == layer.device(), "facelin: index is on ", index.device(),
              " but the layer output is on ", layer.device());
  TORCH_CHECK(row0 >= 0 && col0 >= 0, "facelin: row0 and col0 must be >= 0, got ", row0, ", ",
              col0);
  TORCH_CHECK(row0 + layer.size(0) <= out.size(0), "facelin: rows [", row0, ", ",
              row0 + layer.size(0), ") of the batch do not fit into out with ", out.size(0),
              " rows");
  TORCH_CHECK(col0 + index.size(0) <= out.size(1), "facelin: columns [", col0, ", ",
              col0 + index.size(0), ") of the layer do not fit into out with ", out.size(1),
              " columns");
  if (kind != Pooling::None) {
    TORCH_CHECK(layer.dim() == 2 || layer.size(2) * layer.size(3) > 0,
                "facelin: cannot pool channels of zero spatial size, layer shape ",
                layer.sizes());
  }
}

// Number of valid index values: units of a sample, or channels when pooling.
inline int64_t gather_index_bound(const LayerGeometry& g, Pooling kind) {
  return kind == Pooling::None ? g.units_per_sample() : g.c;
}

}  // namespace facelin
