// Op schemas of facelin's compiled core. Each op is declared once here; the CPU
// kernels (csrc/cpu) and CUDA kernels (csrc/cuda) register their implementations
// with TORCH_LIBRARY_IMPL so that the dispatcher picks one by device.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing facelin._C loads this shared library and so runs the registrations
// below; the module itself carries no Python functions.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(facelin, m) {
  // True when this build carries CUDA kernels.
  m.def("cuda_built() -> bool");
  // gram (M, M), subsets (batch, s) int64 -> (batch, s, s): gram[subsets[b, i], subsets[b, j]].
  m.def("gather_gram(Tensor gram, Tensor subsets) -> Tensor");

  // facelin.extract: activation gathering.
  // layer (N, C, H, W) or (N, F), any strides, float16/bfloat16/float32/float64; index int64
  // (U,) on the layer's device: flat units of C*H*W (pooling "none") or channels (pooling "mean"
  // or "max" over H*W). Writes out[row0 + n, col0 + u], converted to out's dtype,
  // in place; out lives on the layer's device or, for a CUDA layer, in (pinned) host memory.
  m.def("gather_units(Tensor layer, Tensor index, str pooling, Tensor(a!) out, int row0, "
        "int col0) -> ()");

  // linalg (facelin/linalg.py): batched least squares and ridge paths.
  // A (b, n, p), B (b, n, k) in one float dtype, ridge (b,) float64 -> x (b, p, k) in B's
  // dtype and path (b,) int64: the method that solved each problem (csrc/linalg.h, Path).
  m.def("lstsq_batched(Tensor A, Tensor B, Tensor ridge) -> (Tensor, Tensor)");
  // The same solve with the CUDA kernel's algorithm (whole batch, paths chosen by masks),
  // on the CPU: lets the tests check that algorithm where no GPU is.
  m.def("lstsq_batched_masked(Tensor A, Tensor B, Tensor ridge) -> (Tensor, Tensor)");
  // M (n, r), Z (r, k), Y (n, k), gains (a, r), row_scale (a, n) or (0, 0) -> (a, k):
  // sum_i ((Y - M diag(gains[a]) Z) * row_scale[a])^2, every alpha of a ridge path.
  m.def("ridge_path_sse(Tensor M, Tensor Z, Tensor Y, Tensor gains, Tensor row_scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(facelin, CompositeExplicitAutograd, m) {
#ifdef FACELIN_WITH_CUDA
  m.impl("cuda_built", []() { return true; });
#else
  m.impl("cuda_built", []() { return false; });
#endif
}
