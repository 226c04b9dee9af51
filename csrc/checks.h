// Input checks shared by the CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

namespace facelin {

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "facelin: ", name, " must be float32 or float64, got ", t.scalar_type());
}

inline void check_index(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kLong, "facelin: ", name, " must be int64, got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.dim() == dim, "facelin: ", name, " must have ", dim, " dimensions, got shape ",
              t.sizes());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* name_a,
                              const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), "facelin: ", name_a, " is on ", a.device(), " but ",
              name_b, " is on ", b.device());
}

// Checks shared by every backend of gather_gram; the index range is checked by
// the caller where the data lives.
inline void check_gather_gram_args(const at::Tensor& gram, const at::Tensor& subsets) {
  check_floating(gram, "gram");
  check_dim(gram, 2, "gram");
  TORCH_CHECK(gram.size(0) == gram.size(1), "facelin: gram must be square, got shape ",
              gram.sizes());
  check_index(subsets, "subsets");
  check_dim(subsets, 2, "subsets");
  check_same_device(gram, subsets, "gram", "subsets");
}

}  // namespace facelin
