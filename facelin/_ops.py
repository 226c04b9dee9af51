"""The one module that touches ``torch.ops.facelin``.

Loading ``facelin._C`` registers the compiled ops with PyTorch's dispatcher. Every op
gets a Python wrapper here with a docstring, argument checks that give clear messages,
and a fake (meta) implementation so that it also traces under ``torch.compile``.
"""
import torch

BUILD_HELP = (
    "facelin's compiled core (facelin._C) is not built. From the repository root run\n"
    "    make build\n"
    "or, in an environment that already has torch:\n"
    "    pip install --no-build-isolation -e .\n"
    "Set FACELIN_CUDA=1 (with a CUDA torch and nvcc) for the CUDA kernels."
)

try:
    from . import _C  # noqa: F401  (registers torch.ops.facelin.*)
except ImportError as err:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(f"{BUILD_HELP}\n(import error: {err})") from err

_ops = torch.ops.facelin


def cuda_built() -> bool:
    """True when facelin._C was compiled with its CUDA kernels."""
    return bool(_ops.cuda_built())


def _check_device(*tensors: torch.Tensor) -> None:
    """Turn the dispatcher's 'no CUDA kernel' error into one that says how to fix it."""
    if any(t.is_cuda for t in tensors) and not cuda_built():
        raise RuntimeError(
            "facelin was built without CUDA kernels, but a CUDA tensor was passed. Rebuild "
            "with a CUDA torch and nvcc: FACELIN_CUDA=1 pip install --no-build-isolation -e . "
            "(see the README, 'A CUDA build')."
        )


def gather_gram(gram: torch.Tensor, subsets: torch.Tensor) -> torch.Tensor:
    """Gather the sub-matrices ``gram[subsets[b]][:, subsets[b]]`` for every row ``b``.

    ``gram`` is a square (M, M) float32/float64 tensor (for example R^T R of a response
    matrix); ``subsets`` is a (batch, s) int64 tensor of indices into its rows. Returns
    (batch, s, s). The normal equations of a least-squares fit on a column subset are a
    sub-matrix of the full normal equations; this gathers them all in one pass.
    """
    if not isinstance(gram, torch.Tensor) or not isinstance(subsets, torch.Tensor):
        raise TypeError("gather_gram: gram and subsets must be torch tensors")
    _check_device(gram, subsets)
    return _ops.gather_gram(gram, subsets)


@torch.library.register_fake("facelin::gather_gram")
def _gather_gram_fake(gram, subsets):
    torch._check(gram.dim() == 2 and gram.shape[0] == gram.shape[1])
    torch._check(subsets.dim() == 2)
    s = subsets.shape[1]
    return gram.new_empty((subsets.shape[0], s, s))
