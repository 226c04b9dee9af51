// Argument checks of every op, shared by the CPU kernels (csrc/cpu) and the CUDA kernels
// (csrc/cuda): each op's checks are written once here and called first by both backends.
// Index ranges are checked by the backend, where the indices live.
#pragma once
#include <ATen/ATen.h>

#include <utility>

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

// gather_gram: gram (M, M) float, subsets (batch, s) int64 on gram's device.
inline void check_gather_gram_args(const at::Tensor& gram, const at::Tensor& subsets) {
  check_floating(gram, "gram");
  check_dim(gram, 2, "gram");
  TORCH_CHECK(gram.size(0) == gram.size(1), "facelin: gram must be square, got shape ",
              gram.sizes());
  check_index(subsets, "subsets");
  check_dim(subsets, 2, "subsets");
  check_same_device(gram, subsets, "gram", "subsets");
}

// lstsq_batched: A (b, n, p), B (b, n, k) in one float dtype, ridge (b,) float64.
inline void check_lstsq_batched_args(const at::Tensor& A, const at::Tensor& B,
                                     const at::Tensor& ridge) {
  check_floating(A, "A");
  check_floating(B, "B");
  TORCH_CHECK(A.scalar_type() == B.scalar_type(), "facelin: A is ", A.scalar_type(),
              " but B is ", B.scalar_type(), "; pass both in one dtype");
  TORCH_CHECK(ridge.scalar_type() == at::kDouble, "facelin: ridge must be float64, got ",
              ridge.scalar_type());
  check_dim(A, 3, "A");
  check_dim(B, 3, "B");
  check_dim(ridge, 1, "ridge");
  check_same_device(A, B, "A", "B");
  check_same_device(A, ridge, "A", "ridge");
  TORCH_CHECK(B.size(0) == A.size(0) && B.size(1) == A.size(1), "facelin: A has shape ",
              A.sizes(), " but B has shape ", B.sizes(),
              "; they must agree in batch and rows");
  TORCH_CHECK(ridge.size(0) == A.size(0), "facelin: ridge must hold one value per problem (",
              A.size(0), "), got ", ridge.size(0));
}

// ridge_path_sse: M (n, r), Z (r, k), Y (n, k), gains (a, r), row_scale (a, n) or (0, 0),
// all float64 on one device.
inline void check_ridge_path_args(const at::Tensor& M, const at::Tensor& Z, const at::Tensor& Y,
                                  const at::Tensor& gains, const at::Tensor& row_scale) {
  for (auto [t, name] : {std::pair{&M, "M"}, {&Z, "Z"}, {&Y, "Y"}, {&gains, "gains"},
                         {&row_scale, "row_scale"}}) {
    TORCH_CHECK(t->scalar_type() == at::kDouble, "facelin: ", name, " must be float64, got ",
                t->scalar_type());
    check_dim(*t, 2, name);
    check_same_device(M, *t, "M", name);
  }
  TORCH_CHECK(Z.size(0) == M.size(1) && Y.size(0) == M.size(0) && Y.size(1) == Z.size(1) &&
                  gains.size(1) == M.size(1),
              "facelin: ridge_path_sse got mismatched shapes M ", M.sizes(), ", Z ", Z.sizes(),
              ", Y ", Y.sizes(), ", gains ", gains.sizes());
  TORCH_CHECK(row_scale.numel() == 0 ||
                  (row_scale.size(0) == gains.size(0) && row_scale.size(1) == M.size(0)),
              "facelin: row_scale must be empty or (", gains.size(0), ", ", M.size(0),
              "), got ", row_scale.sizes());
}

}  // namespace facelin
