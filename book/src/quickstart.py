# %% [markdown]
# # Quick start: the compiled core
#
# facelin's fits run on a compiled C++/CUDA core, `facelin._C`. This page checks that the
# core is built and loaded, and shows its smallest op at work. Every number below comes
# from the code cell above it.

# %%
import torch

import facelin
from facelin import _ops

print(f"facelin {facelin.__version__}, torch {torch.__version__}")
print("CUDA kernels in this build:", facelin.cuda_built())

# %% [markdown]
# ## One op: gathering sub-matrices of a Gram matrix
#
# A least-squares fit on a subset of a population's units needs the normal equations of
# that subset, and those are a sub-matrix of the normal equations of the whole population.
# `gather_gram` cuts thousands of such sub-matrices out of one Gram matrix in a single
# pass, instead of recomputing a product over every face for every subset. Here it is
# checked against plain PyTorch indexing.

# %% tags=["nbval-check-output"]
generator = torch.Generator().manual_seed(0)
responses = torch.randn(2000, 512, generator=generator, dtype=torch.float64)
gram = responses.T @ responses
subsets = torch.stack([torch.randperm(512, generator=generator)[:100]
                       for _ in range(1000)])

blocks = _ops.gather_gram(gram, subsets)
reference = gram[subsets[:, :, None], subsets[:, None, :]]
print("shape:", tuple(blocks.shape))
print("equal to plain indexing:", torch.equal(blocks, reference))
