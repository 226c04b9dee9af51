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
}

TORCH_LIBRARY_IMPL(facelin, CompositeExplicitAutograd, m) {
#ifdef FACELIN_WITH_CUDA
  m.impl("cuda_built", []() { return true; });
#else
  m.impl("cuda_built", []() { return false; });
#endif
}
