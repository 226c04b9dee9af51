"""Chang & Tsao's analysis normalisation of face-space parameters, by blocks.

Centre each dimension, divide each block (the shape parameters, the appearance
parameters) by the root of the summed variances of its dimensions, then divide the whole
vector by the root of the number of blocks, so the normalised vectors have unit mean
squared norm and each block carries half of it.
"""
from __future__ import annotations

import numpy as np

from ._validation import param_array, positive_int

__all__ = ["BlockNormalizer"]


class BlockNormalizer:
    """Block normalisation with scikit-learn's fit / transform / inverse_transform.

    blocks : the sizes of consecutive blocks of dimensions, e.g. ``(25, 25)``.
    After fitting: ``center_`` and ``scale_`` (n_dims,), so that
    ``transform(x) = (x - center_) / scale_``.
    """

    def __init__(self, blocks=(25, 25)):
        self.blocks = tuple(positive_int(size, "blocks") for size in blocks)
        if not self.blocks:
            raise ValueError("blocks: expected at least one block size")

    @property
    def n_dims(self) -> int:
        return sum(self.blocks)

    def fit(self, params) -> "BlockNormalizer":
        """Means and variances (ddof 1) from (N, n_dims) parameters, N >= 2."""
        params = param_array(params, self.n_dims, name="reference")
        if len(params) < 2:
            raise ValueError("reference: need at least 2 faces to estimate variances")
        return self.fit_moments(params.mean(axis=0), params.var(axis=0, ddof=1))

    def fit_moments(self, center, variances) -> "BlockNormalizer":
        """The normalisation of known means and variances (n_dims,) each, e.g. a model's
        mean 0 and eigenvalues."""
        center = np.broadcast_to(np.asarray(center, dtype=np.float64), (self.n_dims,))
        variances = np.asarray(variances, dtype=np.float64)
        edges = np.cumsum((0,) + self.blocks)
        block_scales = np.sqrt([variances[lo:hi].sum() for lo, hi in
                                zip(edges[:-1], edges[1:])])
        if (block_scales == 0).any():
            raise ValueError("reference: a block of parameters has zero variance")
        self.center_ = center.copy()
        self.scale_ = np.repeat(block_scales, self.blocks) * np.sqrt(len(self.blocks))
        return self

    def _check_fitted(self):
        if not hasattr(self, "scale_"):
            raise RuntimeError(
                "this BlockNormalizer is not fitted yet: call fit(params)"
            )

    def transform(self, params) -> np.ndarray:
        """(N, n_dims) normalised parameters."""
        self._check_fitted()
        return (param_array(params, self.n_dims) - self.center_) / self.scale_

    def inverse_transform(self, normalized) -> np.ndarray:
        """The parameters (N, n_dims) of normalised vectors."""
        self._check_fitted()
        return param_array(normalized, self.n_dims) * self.scale_ + self.center_

    def fit_transform(self, params) -> np.ndarray:
        return self.fit(params).transform(params)
