"""Controls for claim 1: a fixed random nonlinear reparametrisation of the
parameters (a code that is not linear in them) and the pixel control as a fitted map."""
from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "random_tanh_map", "PixelPCA",
]


def random_tanh_map(
    params, out_dims: int = 50, hidden: int = 100, gain: float = 2.0, seed: int = 0
) -> np.ndarray:
    """A fixed random nonlinear reparametrisation: ``tanh(W2 tanh(W1 z + b1) + b2)`` of
    the standardised parameters z, with Gaussian weights of variance ``gain**2 /
    fan_in`` and biases N(0, 0.5**2) drawn with ``seed``. A gain of 2 keeps the tanh
    units well inside their curved range. Returns (n, out_dims)."""
    x = np.asarray(params, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("params must be a finite 2-d array (faces x dimensions)")
    rng = np.random.default_rng(seed)
    z = (x - x.mean(0)) / x.std(0)
    w1 = rng.standard_normal((x.shape[1], hidden)) * gain / np.sqrt(x.shape[1])
    w2 = rng.standard_normal((hidden, out_dims)) * gain / np.sqrt(hidden)
    h = np.tanh(z @ w1 + 0.5 * rng.standard_normal(hidden))
    return np.tanh(h @ w2 + 0.5 * rng.standard_normal(out_dims))


class PixelPCA:
    """The pixel control as a fitted map: grey pixels of (n, 3, S, S) chips projected on
    the top ``n_components`` principal components of the fitting chips, so renders never
    seen in the fit can be projected too."""

    def __init__(self, n_components: int):
        self.n_components = n_components

    @staticmethod
    def _grey(chips) -> torch.Tensor:
        chips = torch.as_tensor(chips)
        if chips.dim() != 4 or chips.shape[1] != 3:
            raise ValueError(f"chips must be (n, 3, S, S), got {tuple(chips.shape)}")
        return chips.float().mean(1).flatten(1)

    def fit(self, chips) -> "PixelPCA":
        grey = self._grey(chips)
        if not 1 <= self.n_components < min(grey.shape):
            raise ValueError(
                f"n_components must lie between 1 and {min(grey.shape) - 1}"
            )
        self.mean_ = grey.mean(0)
        centred = grey - self.mean_
        # Exact PCA through the (faces x faces) Gram matrix: for 2,000 chips of 22,500
        # pixels several times faster than scikit-learn's randomized PCA to 512
        # components.
        evals, evecs = torch.linalg.eigh((centred @ centred.T).double())
        top = evals.argsort(descending=True)[: self.n_components]
        scale = evals[top].clamp_min(1e-12).sqrt()
        self.components_ = (centred.T.double() @ evecs[:, top]) / scale  # (pixels, k)
        return self

    def transform(self, chips) -> torch.Tensor:
        """(n, n_components) float64 scores."""
        if not hasattr(self, "components_"):
            raise RuntimeError("call fit before transform")
        return (self._grey(chips) - self.mean_).double() @ self.components_
