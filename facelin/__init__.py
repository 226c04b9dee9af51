"""facelin: is a face CNN's code linear in a shape-appearance parameter space?

An executable reproduction of Sun, Dong & Hu (2019), "Face representation by deep
learning: a linear encoding in a parameter space?" (arXiv:1910.09768), with a compiled
C++/CUDA core for activation gathering and batched least squares. The compiled core is
loaded when one of its ops is first called: ``import facelin`` works without it, and that
first call says how to build it.
"""
from ._ops import cuda_built

__version__ = "0.1.0"
__all__ = ["cuda_built", "__version__"]
