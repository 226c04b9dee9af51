"""The one module that touches ``torch.ops.facelin``.

Loading ``facelin._C`` registers the compiled ops with PyTorch's dispatcher. It is loaded
when this module is imported if it is built; ``import facelin`` also works without it,
and the first call of a compiled op then raises ImportError with the command that
builds it. Every op gets a
Python wrapper here with a docstring, argument checks that give clear messages, and a fake
(meta) implementation so that it also traces under ``torch.compile``.

Compiled ops: ``gather_units`` (activation gathering), ``gather_gram`` (sub-matrices of a
Gram matrix), ``lstsq_batched`` (independent least-squares problems) and
``ridge_path_sse`` (ridge-path residuals). ``subset_solve`` is plain PyTorch around
``gather_gram``: a compiled version (gather, Cholesky and solve per thread) measured
within about 10% of this composition, not enough to keep a second copy per device.
"""
import math

import torch

BUILD_HELP = (
    "facelin's compiled core (facelin._C) is not built. From the repository root run\n"
    "    make build\n"
    "or, in an environment that already has torch:\n"
    "    pip install --no-build-isolation -e .\n"
    "Set FACELIN_CUDA=1 (with a CUDA torch and nvcc) for the CUDA kernels."
)

_library = None


def library():
    """``torch.ops.facelin``, loading the compiled core on first use.

    Raises ImportError with the build command when ``facelin._C`` is not built.
    """
    global _library
    if _library is None:
        try:
            from . import _C  # noqa: F401  (registers torch.ops.facelin.*)
        except ImportError as err:
            raise ImportError(f"{BUILD_HELP}\n(import error: {err})") from err
        _register_fakes()
        _library = torch.ops.facelin
    return _library


def cuda_built() -> bool:
    """True when facelin._C was compiled with its CUDA kernels."""
    return bool(library().cuda_built())


def _check_device(*tensors: torch.Tensor) -> None:
    """Turn the dispatcher's 'no CUDA kernel' error into one that says how to fix it."""
    if any(t.is_cuda for t in tensors) and not cuda_built():
        raise RuntimeError(
            "facelin was built without CUDA kernels, but a CUDA tensor was passed. Rebuild "
            "with a CUDA torch and nvcc: FACELIN_CUDA=1 pip install --no-build-isolation -e . "
            "(see the README, 'A CUDA build')."
        )


def _check_tensors(op: str, **tensors) -> None:
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch tensor, got {type(t).__name__}")
    _check_device(*tensors.values())


def gather_gram(gram: torch.Tensor, subsets: torch.Tensor) -> torch.Tensor:
    """Gather the sub-matrices ``gram[subsets[b]][:, subsets[b]]`` for every row ``b``.

    ``gram`` is a square (M, M) float32/float64 tensor (for example R^T R of a response
    matrix); ``subsets`` is a (batch, s) int64 tensor of indices into its rows. Returns
    (batch, s, s), equal to ``gram[subsets[:, :, None], subsets[:, None, :]]`` but
    several times faster than that indexing (one pass, one thread per subset or element;
    measured in benchmarks/bench_linalg.py).
    """
    if not isinstance(gram, torch.Tensor) or not isinstance(subsets, torch.Tensor):
        raise TypeError("gather_gram: gram and subsets must be torch tensors")
    _check_device(gram, subsets)
    return library().gather_gram(gram, subsets)


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
    library().gather_units(layer, index, pooling, out, int(row0), int(col0))


# --- linalg: batched least squares, subset solves, ridge paths (used by facelin.linalg) ---

# The method that solved each problem of lstsq_batched, by path code (csrc/linalg.h).
LSTSQ_PATHS = ("normal equations", "refined normal equations", "CholeskyQR2",
               "CholeskyQR3", "SVD (minimum norm)", "not solved (NaN/Inf)")


def lstsq_batched(A: torch.Tensor, B: torch.Tensor,
                  ridge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the independent problems ``min ||A[i] x - B[i]||^2 + ridge[i] ||x||^2``.

    A (b, n, p), B (b, n, k) in one float dtype (computed in float64), ridge float64 (b,).
    Returns ``(x, path)``: x (b, p, k) in B's dtype and path (b,) int64, the method that
    solved each problem as an index into :data:`LSTSQ_PATHS`. Each problem's method is
    chosen from a condition estimate read off the Cholesky factor R of its Gram matrix:

    - normal equations up to cond 16 (error eps cond^2, within 16x of QR's eps cond);
    - one step of corrected semi-normal equations up to cond 1e5 when the right-hand
      sides are few (k <= 7/8 p), the residual B - A x formed from A and B;
    - else CholeskyQR2: Q1 = A R^-1 and a second Cholesky pass on Q1^T Q1 applied
      implicitly (Q2 never formed), when the second factor shows Q1 orthonormal enough
      (its cond <= 2: all problems to cond 2e7, most to 1e8);
    - else CholeskyQR3: Q2 = Q1 R2^-1 and a third pass; where A^T A has no Cholesky
      factor, the first pass is shifted CholeskyQR's (A^T A + shift I), stable to cond
      ~ 1 / eps;
    - the minimum-norm SVD solution (gelsd's rule) for unridged problems whose
      CholeskyQR factor is numerically singular (cond >= 1e-2 / (eps max(n, p))), where
      a CholeskyQR factor fails, and for unridged problems with n < p (on CUDA a chunk
      with n < p goes wholly to the SVD unless every problem is ridged; the SVD applies
      the ridge).

    Every path is accurate to a small multiple of Householder QR's error. The CPU kernel
    solves one problem per thread on a column-major copy of it (faster products); the
    CUDA kernel runs the same paths on whole chunks, gathered by masks.
    Problems whose Gram matrix holds NaN/Inf are not solved: every solution is NaN (the
    CPU kernel marks only those problems, the CUDA kernel the whole chunk).
    """
    _check_tensors("lstsq_batched", A=A, B=B, ridge=ridge)
    return library().lstsq_batched(A, B, ridge)


def subset_solve(gram: torch.Tensor, cross: torch.Tensor, subsets: torch.Tensor,
                 ridge: torch.Tensor) -> torch.Tensor:
    """Solve the normal equations of many column subsets from one Gram matrix.

    For every row ``b`` of ``subsets`` (b, s) int64, solves
    ``(gram[S, S] + ridge[b] I) x = cross[S]`` with ``S = subsets[b]``; gram (M, M),
    cross (M, k), ridge (b,), all float64. Returns (b, s, k). Raises RuntimeError, naming
    the subset, when a subset's normal equations are singular to working precision.

    Plain PyTorch around :func:`gather_gram`, a chunk of subsets at a time (about 8 MiB
    of Gram blocks): Cholesky factors and solves, batched.
    """
    _check_tensors("subset_solve", gram=gram, cross=cross, subsets=subsets, ridge=ridge)
    if not all(t.dtype == torch.float64 for t in (gram, cross, ridge)):
        raise TypeError("subset_solve: gram, cross and ridge must be float64")
    if cross.dim() != 2 or cross.shape[0] != gram.shape[0]:
        raise ValueError(f"subset_solve: cross must be ({gram.shape[0]}, k), got shape "
                         f"{tuple(cross.shape)}")
    if subsets.dtype != torch.int64 or subsets.dim() != 2:
        raise TypeError(f"subset_solve: subsets must be (batch, s) int64, got "
                        f"{subsets.dtype} of shape {tuple(subsets.shape)}")
    batch, size = subsets.shape
    if ridge.shape != (batch,):
        raise ValueError(f"subset_solve: ridge must hold one value per subset ({batch}), "
                         f"got shape {tuple(ridge.shape)}")
    out = cross.new_zeros(batch, size, cross.shape[1])
    if out.numel() == 0:
        gather_gram(gram, subsets)  # the argument checks
        return out
    chunk = max(1, 2**20 // (size * size))
    for first in range(0, batch, chunk):
        index = subsets[first:first + chunk]
        grams = gather_gram(gram, index)
        diag = grams.diagonal(dim1=-2, dim2=-1)
        diag.add_(ridge[first:first + chunk, None])
        scale = diag.clone()
        factor, info = torch.linalg.cholesky_ex(grams)
        # l_ii^2 / g_ii is the share of column i's variance that the subset's earlier
        # columns leave unexplained; below sqrt(eps) the normal equations lose all accuracy.
        pivots = factor.diagonal(dim1=-2, dim2=-1).square() / scale
        bad = ((info != 0) | (scale <= 0).any(-1) | (pivots < math.sqrt(_EPS)).any(-1)
               | pivots.isnan().any(-1))
        if bool(bad.any()):
            which = first + int(bad.nonzero()[0])
            raise RuntimeError(
                f"facelin: subset {which} is rank-deficient: its columns are linearly "
                "dependent (or nearly so) after centring, so its normal equations are "
                "singular; remove duplicate or constant columns or pass ridge > 0")
        out[first:first + chunk] = torch.cholesky_solve(cross[index], factor)
    return out


_EPS = torch.finfo(torch.float64).eps


def ridge_path_sse(M: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, gains: torch.Tensor,
                   row_scale: torch.Tensor) -> torch.Tensor:
    """Residual sums of squares of every target at every point of a ridge path.

    With M (n, r), Z (r, k), Y (n, k), gains (a, r) and row_scale (a, n) or an empty
    (0, 0) tensor, all float64, returns (a, k):
    ``sse[a, t] = sum_i (row_scale[a, i] * (Y - M diag(gains[a]) Z)[i, t])^2``. In ridge
    terms M is the (held-out) design in the eigenbasis, Z the rotated cross-products,
    gains 1 / (eigenvalue + alpha); row_scale turns residuals into exact leave-one-out
    residuals, 1 / (1 - h_ii). On the CPU the residuals are formed one cache-sized block
    of targets at a time; on CUDA for chunks of targets of at most 2 GiB of
    alphas x n x targets fitted values.
    """
    _check_tensors("ridge_path_sse", M=M, Z=Z, Y=Y, gains=gains, row_scale=row_scale)
    return library().ridge_path_sse(M, Z, Y, gains, row_scale)


def _register_fakes() -> None:
    """Shape functions of the compiled ops, for FakeTensor tracing (torch.compile)."""

    @torch.library.register_fake("facelin::gather_gram")
    def _gather_gram_fake(gram, subsets):
        torch._check(gram.dim() == 2 and gram.shape[0] == gram.shape[1])
        torch._check(subsets.dim() == 2)
        s = subsets.shape[1]
        return gram.new_empty((subsets.shape[0], s, s))

    @torch.library.register_fake("facelin::gather_units")
    def _gather_units_fake(layer, index, pooling, out, row0, col0):
        torch._check(layer.dim() in (2, 4))
        torch._check(index.dim() == 1 and out.dim() == 2)

    @torch.library.register_fake("facelin::lstsq_batched")
    def _lstsq_batched_fake(A, B, ridge):
        torch._check(A.dim() == 3 and B.dim() == 3 and A.shape[:2] == B.shape[:2])
        return (B.new_empty((A.shape[0], A.shape[2], B.shape[2])),
                A.new_empty((A.shape[0],), dtype=torch.int64))

    @torch.library.register_fake("facelin::lstsq_batched_masked")
    def _lstsq_batched_masked_fake(A, B, ridge):
        return _lstsq_batched_fake(A, B, ridge)

    @torch.library.register_fake("facelin::ridge_path_sse")
    def _ridge_path_sse_fake(M, Z, Y, gains, row_scale):
        torch._check(gains.dim() == 2 and Z.dim() == 2)
        return Z.new_empty((gains.shape[0], Z.shape[1]))


# Load the core now when it is built, so that torch.ops.facelin.* resolve for every caller;
# without it, importing still works and the first compiled op raises the build command.
try:
    library()
except ImportError:
    pass
