"""The appearance half of the face space: principal components of shape-free textures.

Textures are ``(N, D, C)`` arrays: D pixels of the texture frame's face region, C
channels (1 for grey, 3 for RGB), values in [0, 1] (see `facelin.warp`).
"""
from __future__ import annotations

import numpy as np
import torch

from ._validation import positive_int
from .shape import fit_pca

__all__ = ["AppearanceModel"]


class AppearanceModel:
    """PCA of shape-free textures.

    Attributes (after `fit`): ``mean_texture_`` (D, C); ``components_`` (n_components,
    D * C) orthonormal rows; ``eigenvalues_`` and ``explained_variance_ratio_``
    (n_components,).
    """

    def __init__(self, n_components: int = 25):
        self.n_components = positive_int(n_components, "n_appearance")

    @classmethod
    def from_arrays(cls, mean_texture, components, eigenvalues,
                    ratios) -> "AppearanceModel":
        """A fitted model from its arrays (as `FaceSpace.load` reads them)."""
        model = cls(len(components))
        model.mean_texture_, model.components_ = mean_texture, components
        model.eigenvalues_, model.explained_variance_ratio_ = eigenvalues, ratios
        return model

    @property
    def n_channels(self) -> int:
        return self.mean_texture_.shape[1]

    def fit(self, textures: np.ndarray) -> "AppearanceModel":
        """PCA of (N, D, C) textures."""
        flat = textures.reshape(len(textures), -1).astype(np.float64)
        pca = fit_pca(flat, self.n_components, "appearance")
        self.mean_texture_ = pca.mean_.reshape(textures.shape[1:])
        self.components_ = pca.components_
        self.eigenvalues_ = pca.explained_variance_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return self

    def params(self, textures: np.ndarray) -> np.ndarray:
        """Appearance parameters (N, n_components) of (N, D, C) textures (projected in
        float32, 256 at a time: a float64 copy of many textures is large)."""
        flat = textures.reshape(len(textures), -1)
        mean = self.mean_texture_.reshape(-1).astype(np.float32)
        components = self.components_.T.astype(np.float32)
        return np.concatenate(
            [
                (flat[start : start + 256] - mean) @ components
                for start in range(0, len(flat), 256)
            ]
        ).astype(np.float64)

    def textures(self, params) -> np.ndarray:
        """Textures (N, D, C), float64, of (N, n_components) parameters (not
        clipped)."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        flat = self.mean_texture_.reshape(-1) + params @ self.components_
        return flat.reshape(len(flat), *self.mean_texture_.shape)

    def texture_batches(self, params: np.ndarray):
        """A function ``(start, stop) -> (stop - start, D, C)`` float32 tensor: the
        textures of ``params[start:stop]``, made when asked for (as
        `facelin.warp.PiecewiseAffineWarp.render` takes them)."""
        components = torch.from_numpy(self.components_).float()
        mean = torch.from_numpy(self.mean_texture_.reshape(-1)).float()
        appearance = torch.from_numpy(np.asarray(params, dtype=np.float64)).float()

        def textures(start, stop):
            flat = mean + appearance[start:stop] @ components
            return flat.reshape(stop - start, -1, self.n_channels)
        return textures
