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


# --- facelin.extract: activation gathering -------------------------------------------------

GATHER_POOLINGS = ("none", "mean", "max")
GATHER_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def gather_units(layer: torch.Tensor, index: torch.Tensor, pooling: str, out: torch.Tensor,
                 row0: int, col0: int) -> None:
    """Write chosen units of a layer output into a block of a response matrix, in place.

    ``layer`` is a layer output of shape (N, C, H, W) or (N, F) with any strides, in
    float16, bfloat16, float32 or float64; it is read where it lies, never copied.
    ``index`` is a one-dimensional int64 tensor on the layer's device. With
    ``pooling="none"`` it holds flat unit indices into C*H*W (as ``layer.flatten(1)``
    numbers them) and ``out[row0 + n, col0 + u] = layer.flatten(1)[n, index[u]]``; with
    ``pooling="mean"`` or ``"max"`` it holds channels and each becomes the mean (summed in
    float64) or the maximum (NaN propagates) over H*W. Values are converted to ``out``'s
    dtype as ``Tensor.to`` converts them. ``out`` is a float matrix on the layer's device
    or, for a CUDA layer, in host memory (pinned for an asynchronous copy; synchronise the
    stream before reading it). Indices are range-checked on the CPU; on CUDA an
    out-of-range index trips a device-side assertion, as PyTorch's own indexing does.
    """
    if not all(isinstance(t, torch.Tensor) for t in (layer, index, out)):
        raise TypeError("gather_units: layer, index and out must be torch tensors")
    if pooling not in GATHER_POOLINGS:
        raise ValueError(f"gather_units: pooling must be one of {GATHER_POOLINGS}, got {pooling!r}")
    _check_device(layer, index, out)
    _ops.gather_units(layer, index, pooling, out, int(row0), int(col0))


@torch.library.register_fake("facelin::gather_units")
def _gather_units_fake(layer, index, pooling, out, row0, col0):
    torch._check(layer.dim() in (2, 4))
    torch._check(index.dim() == 1 and out.dim() == 2)
    return None
