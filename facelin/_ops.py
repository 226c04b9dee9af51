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


# --- linalg: batched least squares, subset solves, ridge paths (used by facelin.linalg) ---


def _check_tensors(op: str, **tensors) -> None:
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch tensor, got {type(t).__name__}")
    _check_device(*tensors.values())


def lstsq_shared(A: torch.Tensor, B: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
    """Solve ``min ||A x - B[:, j]||^2 + ridge[j] ||x||^2`` for every column ``j`` of B.

    A (n, p) is shared by all columns and factored once (thin SVD; singular values at or
    below ``eps * max(n, p) * s_max`` count as zero without ridge, as in gelsd); B (n, m)
    in A's dtype; ridge float64 (m,) or (1,). Returns (p, m) in B's dtype; float32 input
    is computed in float64.
    """
    _check_tensors("lstsq_shared", A=A, B=B, ridge=ridge)
    return _ops.lstsq_shared(A, B, ridge)


@torch.library.register_fake("facelin::lstsq_shared")
def _lstsq_shared_fake(A, B, ridge):
    torch._check(A.dim() == 2 and B.dim() == 2 and A.shape[0] == B.shape[0])
    return B.new_empty((A.shape[1], B.shape[1]))


def lstsq_batched(A: torch.Tensor, B: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
    """Solve the independent problems ``min ||A[i] x - B[i]||^2 + ridge[i] ||x||^2``.

    A (b, n, p), B (b, n, k) in one dtype, ridge float64 (b,); returns (b, p, k). Full-rank
    (or ridged) problems are solved by the normal equations when cond <= 16, by
    CholeskyQR2 up to cond 1e6 and by shifted CholeskyQR3 beyond; unridged problems that
    gelsd would call rank-deficient get gelsd's minimum-norm solution through an SVD.
    """
    _check_tensors("lstsq_batched", A=A, B=B, ridge=ridge)
    return _ops.lstsq_batched(A, B, ridge)


@torch.library.register_fake("facelin::lstsq_batched")
def _lstsq_batched_fake(A, B, ridge):
    torch._check(A.dim() == 3 and B.dim() == 3 and A.shape[:2] == B.shape[:2])
    return B.new_empty((A.shape[0], A.shape[2], B.shape[2]))


def subset_solve(gram: torch.Tensor, cross: torch.Tensor, subsets: torch.Tensor,
                 ridge: torch.Tensor) -> torch.Tensor:
    """Solve the normal equations of many column subsets from one Gram matrix.

    For every row ``b`` of ``subsets`` (b, s) int64, solves
    ``(gram[S, S] + ridge[b] I) x = cross[S]`` with ``S = subsets[b]``; gram (M, M),
    cross (M, k), ridge (b,), all float64. Returns (b, s, k). Raises, naming the subset,
    when a subset's normal equations are singular to working precision.
    """
    _check_tensors("subset_solve", gram=gram, cross=cross, subsets=subsets, ridge=ridge)
    return _ops.subset_solve(gram, cross, subsets, ridge)


@torch.library.register_fake("facelin::subset_solve")
def _subset_solve_fake(gram, cross, subsets, ridge):
    torch._check(subsets.dim() == 2 and cross.dim() == 2)
    return cross.new_empty((subsets.shape[0], subsets.shape[1], cross.shape[1]))


def ridge_path_sse(M: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, gains: torch.Tensor,
                   row_scale: torch.Tensor) -> torch.Tensor:
    """Residual sums of squares of every target at every point of a ridge path.

    With M (n, r), Z (r, k), Y (n, k), gains (a, r) and row_scale (a, n) or an empty
    (0, 0) tensor, all float64, returns (a, k):
    ``sse[a, t] = sum_i (row_scale[a, i] * (Y - M diag(gains[a]) Z)[i, t])^2``. In ridge
    terms M is the (held-out) design in the eigenbasis, Z the rotated cross-products,
    gains 1 / (eigenvalue + alpha); row_scale turns residuals into exact leave-one-out
    residuals, 1 / (1 - h_ii).
    """
    _check_tensors("ridge_path_sse", M=M, Z=Z, Y=Y, gains=gains, row_scale=row_scale)
    return _ops.ridge_path_sse(M, Z, Y, gains, row_scale)


@torch.library.register_fake("facelin::ridge_path_sse")
def _ridge_path_sse_fake(M, Z, Y, gains, row_scale):
    torch._check(gains.dim() == 2 and Z.dim() == 2)
    return Z.new_empty((gains.shape[0], Z.shape[1]))
