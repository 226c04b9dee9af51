"""facelin: is a face CNN's code linear in a shape-appearance parameter space?

An executable reproduction of Sun, Dong & Hu (2019), "Face representation by deep
learning: a linear encoding in a parameter space?" (arXiv:1910.09768), with a compiled
C++/CUDA core for activation gathering and batched least squares. ``import facelin``
works without the compiled core; the first call of one of its ops then says how to
build it.
"""
from ._ops import cuda_built

__version__ = "0.1.0"
__all__ = ["cuda_built", "__version__"]
