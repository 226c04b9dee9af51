// CPU kernel of gather_gram: the normal-equation matrix of every unit subset is a
// sub-matrix of one Gram matrix; gather them all in one parallel pass.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"

namespace facelin {

at::Tensor gather_gram_cpu(const at::Tensor& gram, const at::Tensor& subsets) {
  check_gather_gram_args(gram, subsets);
  const int64_t m = gram.size(0);
  const int64_t batch = subsets.size(0);
  const int64_t s = subsets.size(1);
  auto g = gram.contiguous();
  auto idx = subsets.contiguous();
  if (idx.numel() > 0) {
    const int64_t lo = idx.min().item<int64_t>();
    const int64_t hi = idx.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < m, "facelin: subsets hold indices in [", lo, ", ", hi,
                "] but gram has ", m, " rows");
  }
  auto out = at::empty({batch, s, s}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "gather_gram_cpu", [&] {
    const scalar_t* src = g.data_ptr<scalar_t>();
    const int64_t* ix = idx.data_ptr<int64_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t* row_ix = ix + b * s;
        scalar_t* block = dst + b * s * s;
        for (int64_t i = 0; i < s; ++i) {
          const scalar_t* src_row = src + row_ix[i] * m;
          for (int64_t j = 0; j < s; ++j) block[i * s + j] = src_row[row_ix[j]];
        }
      }
    });
  });
  return out;
}

}  // namespace facelin

TORCH_LIBRARY_IMPL(facelin, CPU, m) { m.impl("gather_gram", &facelin::gather_gram_cpu); }
