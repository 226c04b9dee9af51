"""The shape half of the face space: landmark sets aligned by generalised Procrustes and
reduced by PCA, and the placement of shapes where dlib's chip alignment puts a face.

Landmark sets are ``(N, P, 2)`` arrays of ``(x, y)`` pixel positions.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from ._validation import landmark_array, positive_int
from .faces import chip_transforms

__all__ = ["ShapeModel", "generalized_procrustes", "align_shapes", "chip_landmarks",
           "fit_pca", "CHIP_PADDING"]

#: Margin around dlib's canonical face in its aligned chips (dlib's default, and what
#: its face-recognition network was trained with).
CHIP_PADDING = 0.25

#: Landmark sets in model units (unit norm) are scaled to pixel-like units before dlib's
#: alignment: it is scale-equivariant, and its arithmetic is better conditioned there.
_PIXEL_SCALE = 1000.0


def align_shapes(shapes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares similarity alignment of each shape onto ``reference`` (centred,
    unit norm), then projection into the tangent space of ``reference`` (scaled so that
    ``aligned . reference = 1``).

    shapes : (N, P, 2); reference : (P, 2). Returns (N, P, 2). For a shape already in
    that tangent space the result is the shape itself, which makes the shape parameters
    of a synthesised face exactly those it was drawn from. (scipy.spatial.procrustes
    standardises both sets and has no tangent projection, hence this one.)
    """
    centred = shapes - shapes.mean(axis=1, keepdims=True)
    # complex form: z -> a z with a = <z, r> / |z|^2 minimises |a z - r|
    z = centred[..., 0] + 1j * centred[..., 1]
    r = reference[:, 0] + 1j * reference[:, 1]
    a = (np.conj(z) @ r) / (np.abs(z) ** 2).sum(axis=1)
    aligned = a[:, None] * z
    aligned = aligned / (aligned.real * r.real + aligned.imag * r.imag).sum(
        axis=1, keepdims=True)
    return np.stack([aligned.real, aligned.imag], axis=-1)


def generalized_procrustes(shapes, tolerance: float = 1e-10,
                           max_iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Procrustes alignment of landmark sets (N, P, 2).

    Returns ``(mean, aligned)``: the mean shape (P, 2) (centred, unit Frobenius norm,
    rotated to the orientation of the first shape) and every shape (N, P, 2)
    similarity-aligned to it and projected into its tangent space.
    """
    shapes = landmark_array(shapes, name="shapes")
    centred = shapes - shapes.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=(1, 2))
    if (norms < 1e-12).any():
        raise ValueError(f"shapes: degenerate landmark set(s) (all points equal) at "
                         f"{np.flatnonzero(norms < 1e-12).tolist()}")
    mean = centred[0] / norms[0]
    for _ in range(max_iterations):
        aligned = align_shapes(centred, mean)
        new_mean = align_shapes(aligned.mean(axis=0)[None], mean)[0]
        new_mean /= np.linalg.norm(new_mean)
        change = np.linalg.norm(new_mean - mean)
        mean = new_mean
        if change < tolerance:
            break
    return mean, align_shapes(centred, mean)


def chip_landmarks(landmarks, size: int = 150) -> np.ndarray:
    """Move landmark sets (N, 68, 2), in any frame, to where dlib's alignment puts a
    face in a ``size`` chip (padding 0.25): each set by the similarity that makes dlib's
    chip of it the identity, so an image drawn around these landmarks is its own
    chip."""
    shapes = landmark_array(landmarks)
    rects, angles = chip_transforms(shapes, size, CHIP_PADDING)
    centres = np.stack([rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1) / 2
    cos, sin = np.cos(angles), np.sin(angles)
    rotate_back = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    # dlib's chip rectangle of a face at scale k (pixels per chip pixel) is k * size - 1
    # wide and its chip samples it every width / (size - 1): scaling the face by
    # size / (width + 1) makes that step 1 and the rectangle (0, 0, size-1, size-1)
    pixels_per_unit = size / (rects[:, 2] - rects[:, 0] + 1)
    local = np.einsum("nij,npj->npi", rotate_back, shapes - centres[:, None])
    return pixels_per_unit[:, None, None] * local + (size - 1) / 2


def fit_pca(data: np.ndarray, n_components: int, name: str) -> PCA:
    """scikit-learn's PCA by a full SVD of the centred (N, D) ``data`` (no Gram matrix,
    so the condition number is not squared), with a clear error when the data have fewer
    than ``n_components`` directions of variance. Each component's largest loading is
    positive (scikit-learn's convention), so refits draw the same faces."""
    pca = PCA(n_components, svd_solver="full").fit(data)
    variances = pca.explained_variance_
    if variances[-1] <= 1e-12 * max(variances[0], 1e-300):
        rank = int((variances > 1e-12 * variances[0]).sum())
        raise ValueError(f"fit: the {name} data have rank {rank}, fewer than the "
                         f"{n_components} {name} components asked for")
    return pca


class ShapeModel:
    """Procrustes-aligned landmark sets and their principal components.

    Attributes (after `fit`): ``mean_shape_`` (P, 2), the Procrustes mean (centred, unit
    norm); ``mean_`` (2P,), the mean of the aligned shape vectors; ``components_``
    (n_components, 2P) orthonormal rows; ``eigenvalues_`` and
    ``explained_variance_ratio_`` (n_components,).
    """

    def __init__(self, n_components: int = 25):
        self.n_components = positive_int(n_components, "n_shape")

    @classmethod
    def from_arrays(
        cls, mean_shape, mean, components, eigenvalues, ratios
    ) -> "ShapeModel":
        """A fitted model from its arrays (as `FaceSpace.load` reads them)."""
        model = cls(len(components))
        model.mean_shape_, model.mean_, model.components_ = mean_shape, mean, components
        model.eigenvalues_, model.explained_variance_ratio_ = eigenvalues, ratios
        return model

    def fit(self, landmarks) -> "ShapeModel":
        """Align (N, P, 2) landmark sets by generalised Procrustes; PCA of the aligned
        shapes."""
        self.mean_shape_, aligned = generalized_procrustes(landmarks)
        pca = fit_pca(aligned.reshape(len(aligned), -1), self.n_components, "shape")
        self.mean_, self.components_ = pca.mean_, pca.components_
        self.eigenvalues_ = pca.explained_variance_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return self

    def params(self, landmarks) -> np.ndarray:
        """Shape parameters (N, n_components) of landmark sets in any position, size and
        angle."""
        points = landmark_array(landmarks)
        if points.shape[1] != self.mean_shape_.shape[0]:
            raise ValueError(f"landmarks: this space has {self.mean_shape_.shape[0]} "
                             f"points, got {points.shape[1]}")
        aligned = align_shapes(points, self.mean_shape_).reshape(len(points), -1)
        return (aligned - self.mean_) @ self.components_.T

    def landmarks(self, params, size: int = 150) -> np.ndarray:
        """Landmarks (N, P, 2) of shape parameters (N, n_components), each set placed as
        dlib's alignment places a face in a ``size`` chip (its own chip is the
        identity)."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        vectors = self.mean_ + params @ self.components_
        return chip_landmarks(vectors.reshape(len(vectors), -1, 2) * _PIXEL_SCALE, size)

    def chip_mean_shape(self, size: int) -> np.ndarray:
        """The mean shape (P, 2) placed as in a ``size`` chip."""
        return chip_landmarks(self.mean_shape_[None] * _PIXEL_SCALE, size)[0]
