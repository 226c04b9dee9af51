"""Chang & Tsao's shape-appearance parameter space, built from landmarked face images.

A face is a point in a 50-d space: 25 shape parameters (principal components of the
landmark sets after generalised Procrustes alignment) and 25 appearance parameters
(principal components of the "shape-free" textures: each face warped to the mean shape).

The warp is piecewise affine over a Delaunay triangulation of the mean shape. Chang & Tsao
used a thin-plate spline; the piecewise-affine warp is the standard active-appearance-model
choice and has two properties this package relies on: it maps every landmark exactly onto
its target, and its inverse is again piecewise affine, so warping to the mean shape uses a
barycentric map computed once at fit time (one matrix product and one bilinear sample per
face), and synthesis rasterises each triangle with one affine map per face. The face
region is the outline of the jaw line and the eyebrows; pixels outside it are background.

Synthesised faces are placed as dlib's chip alignment expects (``facelin.faces.face_chips``
with padding 0.25): each synthesised image *is* its own aligned chip, so chips of
synthesised faces come from the returned landmarks without any detection.

Images are float in [0, 1] or uint8, shaped ``(N, H, W)`` (grey) or ``(N, H, W, 3)``
(RGB), or a list of such arrays of different sizes; landmarks are ``(N, 68, 2)`` arrays of
``(x, y)`` pixel positions, pixel centres at integer coordinates (dlib's convention).
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt
from scipy.spatial import Delaunay
from skimage.measure import points_in_poly

__all__ = ["FaceSpace", "FaceSpaceVersionError", "default_space", "cache_dir",
           "chip_landmarks", "generalized_procrustes", "FORMAT_VERSION"]

#: Version of the file written by `FaceSpace.save`; `FaceSpace.load` refuses any other.
FORMAT_VERSION = 1

#: Margin around dlib's canonical face in its aligned chips (dlib's default, and what its
#: face-recognition network was trained with).
CHIP_PADDING = 0.25


# The warp's mesh: a Delaunay triangulation of the mean shape without the inner lip points
# (60..67: on a closed mouth they coincide with the outer lips and their triangles fold
# over), restricted to the face outline (jaw line, then the eyebrows), so that no sliver
# triangle spans the concave gap between the brows.
_WARP_POINTS = np.array([i for i in range(68) if not 60 <= i <= 67])
_FACE_OUTLINE = np.array(list(range(17)) + list(range(26, 16, -1)))


class FaceSpaceVersionError(ValueError):
    """A face-space file written by another version of the file format."""


# --------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------

def _as_float_image(image, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise ValueError(f"images[{index}]: NaN or Inf pixels")
        if image.min() < -1e-6 or image.max() > 1 + 1e-6:
            raise ValueError(
                f"images[{index}]: float pixels must lie in [0, 1], got range "
                f"[{image.min():.3g}, {image.max():.3g}] (pass uint8 for 0..255 images)")
    else:
        raise TypeError(f"images[{index}]: expected uint8 or float pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"images[{index}]: expected an (H, W) grey or (H, W, 3) RGB "
                         f"image, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"images[{index}]: image of shape {image.shape} is too small")
    return image


def _image_list(images) -> list[np.ndarray]:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"images: a batch array must be (N, H, W) or (N, H, W, 3), got "
                             f"shape {images.shape}; wrap a single image in a list")
        images = list(images)
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError("images: expected a non-empty list of images or a batch array")
    return [_as_float_image(image, i) for i, image in enumerate(images)]


def _landmark_array(landmarks, n_images: int | None = None, name="landmarks") -> np.ndarray:
    if isinstance(landmarks, torch.Tensor):
        landmarks = landmarks.detach().cpu().numpy()
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2 or points.shape[1] < 3:
        raise ValueError(f"{name}: expected shape (N, n_points, 2) of (x, y) positions, got "
                         f"{points.shape}")
    if n_images is not None and points.shape[0] != n_images:
        raise ValueError(f"{name}: {points.shape[0]} landmark sets for {n_images} images")
    bad = ~np.isfinite(points).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{name}: NaN or Inf in the landmarks of face(s) "
                         f"{np.flatnonzero(bad).tolist()}")
    return points


def _check_params(params, n_dims: int) -> np.ndarray:
    if isinstance(params, torch.Tensor):
        params = params.detach().cpu().numpy()
    params = np.asarray(params, dtype=np.float64)
    if params.ndim == 1:
        params = params[None]
    if params.ndim != 2 or params.shape[1] != n_dims:
        raise ValueError(f"params: expected shape (N, {n_dims}), got {params.shape}")
    bad = ~np.isfinite(params).all(axis=1)
    if bad.any():
        raise ValueError(f"params: NaN or Inf in row(s) {np.flatnonzero(bad).tolist()}")
    return params


# --------------------------------------------------------------------------------------
# Procrustes
# --------------------------------------------------------------------------------------

def _align_to(shapes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares similarity alignment of each centred shape onto `reference` (centred),
    then projection into the tangent space of `reference` (scaled so x . reference = 1).

    shapes: (N, P, 2); reference: (P, 2) with unit norm. For a shape already in that
    tangent space the result is the shape itself, which makes `transform` invert
    `synthesize` exactly for the shape block.
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


def generalized_procrustes(shapes: np.ndarray, tolerance: float = 1e-10,
                           max_iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Procrustes alignment of landmark sets.

    Returns ``(mean, aligned)``: the mean shape (centred, unit Frobenius norm, rotated to
    the orientation of the first shape) and every shape similarity-aligned to it and
    projected into its tangent space.
    """
    shapes = _landmark_array(shapes, name="shapes")
    centred = shapes - shapes.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=(1, 2))
    if (norms < 1e-12).any():
        raise ValueError(f"shapes: degenerate landmark set(s) (all points equal) at "
                         f"{np.flatnonzero(norms < 1e-12).tolist()}")
    mean = centred[0] / norms[0]
    for _ in range(max_iterations):
        aligned = _align_to(centred, mean)
        new_mean = aligned.mean(axis=0)
        new_mean = _align_to(new_mean[None], mean)[0]
        new_mean /= np.linalg.norm(new_mean)
        change = np.linalg.norm(new_mean - mean)
        mean = new_mean
        if change < tolerance:
            break
    return mean, _align_to(centred, mean)


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity (2x2 matrix, translation) mapping `source` points onto `target`."""
    ms, mt = source.mean(axis=0), target.mean(axis=0)
    zs = (source - ms) @ np.array([1, 1j])
    zt = (target - mt) @ np.array([1, 1j])
    a = (np.conj(zs) @ zt) / (np.abs(zs) ** 2).sum()
    matrix = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return matrix, mt - matrix @ ms


def chip_landmarks(landmarks, size: int = 150) -> np.ndarray:
    """Move landmark sets (N, 68, 2), in any frame, to where dlib's alignment puts a face
    in a ``size`` chip (padding 0.25): each set by the similarity that makes dlib's chip
    of it the identity, so an image drawn around these landmarks is its own chip."""
    from .faces import chip_transforms
    shapes = _landmark_array(landmarks)
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


# --------------------------------------------------------------------------------------
# The face space
# --------------------------------------------------------------------------------------

class FaceSpace:
    """Chang & Tsao's shape-appearance space: ``n_shape`` + ``n_appearance`` PCs.

    Parameters
    ----------
    n_shape, n_appearance : number of shape and appearance principal components kept
        (25 and 25 in Chang & Tsao 2017).
    texture_size : side, in pixels, of the square on which the shape-free textures live
        (the mean shape, upright, fills it up to a 2-pixel border).
    background : grey level in [0, 1] of the pixels outside the face region in
        synthesised images.

    Attributes (after `fit`)
    ------------------------
    mean_shape_ : (68, 2) Procrustes mean (centred, unit norm).
    shape_components_ : (n_shape, 136) orthonormal shape PCs (rows).
    shape_eigenvalues_, shape_explained_variance_ratio_ : (n_shape,).
    triangles_ : (T, 3) Delaunay triangulation of the mean shape (landmark indices).
    mask_ : (texture_size, texture_size) bool, the face region of the texture frame.
    mean_texture_ : (D, C) mean shape-free texture over the mask pixels.
    appearance_components_ : (n_appearance, D * C) orthonormal appearance PCs (rows).
    appearance_eigenvalues_, appearance_explained_variance_ratio_ : (n_appearance,).
    """

    def __init__(self, n_shape: int = 25, n_appearance: int = 25, texture_size: int = 150,
                 background: float = 0.5):
        for name, value in (("n_shape", n_shape), ("n_appearance", n_appearance)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value}")
        if int(texture_size) != texture_size or texture_size < 16:
            raise ValueError(f"texture_size: expected an integer >= 16, got {texture_size}")
        if not 0 <= background <= 1:
            raise ValueError(f"background: expected a grey level in [0, 1], got {background}")
        self.n_shape = int(n_shape)
        self.n_appearance = int(n_appearance)
        self.texture_size = int(texture_size)
        self.background = float(background)

    # ---------------------------------------------------------------- properties
    @property
    def n_params(self) -> int:
        return self.n_shape + self.n_appearance

    @property
    def eigenvalues_(self) -> np.ndarray:
        """Variances of the n_shape + n_appearance parameters (shape block first)."""
        return np.concatenate([self.shape_eigenvalues_, self.appearance_eigenvalues_])

    @property
    def n_channels(self) -> int:
        return self.mean_texture_.shape[1]

    def _check_fitted(self):
        if not hasattr(self, "mean_shape_"):
            raise RuntimeError("this FaceSpace is not fitted yet: call fit(images, "
                               "landmarks) or FaceSpace.load(path)")

    # ---------------------------------------------------------------- geometry
    def _setup_texture_frame(self):
        """Triangulation, face mask and the barycentric map of the texture frame."""
        size = self.texture_size
        # the mean shape, upright as in a chip, scaled so that its whole face region fits
        # the texture frame with a 2-pixel border (dlib's chips cut the chin)
        points = chip_landmarks(self.mean_shape_[None] * 1000.0, size)[0]
        low, high = points.min(axis=0), points.max(axis=0)
        scale = (size - 5) / (high - low).max()
        self.mean_texture_points_ = (points - (low + high) / 2) * scale + (size - 1) / 2
        triangulation = Delaunay(self.mean_texture_points_[_WARP_POINTS])
        centroids = self.mean_texture_points_[_WARP_POINTS][triangulation.simplices].mean(1)
        kept = points_in_poly(centroids, self.mean_texture_points_[_FACE_OUTLINE])
        self.triangles_ = _WARP_POINTS[triangulation.simplices[kept]]
        rows, cols = np.mgrid[0:size, 0:size]
        pixels = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
        simplex = triangulation.find_simplex(pixels)
        triangle_of_simplex = np.full(len(kept) + 1, -1)
        triangle_of_simplex[np.flatnonzero(kept)] = np.arange(kept.sum())
        triangle = triangle_of_simplex[simplex]  # simplex -1 (outside) maps to -1 too
        inside = triangle >= 0
        self.mask_ = inside.reshape(size, size)
        transform = triangulation.transform[simplex[inside]]
        partial = np.einsum("nij,nj->ni", transform[:, :2], pixels[inside] - transform[:, 2])
        self._pixel_triangle = triangle[inside]
        self._pixel_barycentric = np.column_stack([partial, 1 - partial.sum(axis=1)])
        # outside the mask, a texture image repeats its nearest face pixel so that bilinear
        # sampling at the face's edge never mixes in background
        _, (near_r, near_c) = distance_transform_edt(~self.mask_, return_indices=True)
        flat_index = -np.ones((size, size), dtype=np.int64)
        flat_index[self.mask_] = np.arange(self.mask_.sum())
        self._fill_index = flat_index[near_r, near_c].ravel()

    # ---------------------------------------------------------------- warping
    def _warp_to_mean(self, images: list[np.ndarray], landmarks: np.ndarray,
                      channels: int) -> np.ndarray:
        """Shape-free textures (N, D, channels), float32: each image sampled at the points
        that the piecewise-affine warp sends to the mask pixels of the mean shape. Those
        points are a fixed linear combination of the landmarks (barycentric weights)."""
        weights = np.zeros((len(self._pixel_triangle), landmarks.shape[1]))
        corners = self.triangles_[self._pixel_triangle]  # (D, 3) landmark indices
        np.put_along_axis(weights, corners, self._pixel_barycentric, axis=1)
        weights = torch.from_numpy(weights)
        out = np.empty((len(images), weights.shape[0], channels), dtype=np.float32)
        by_size = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(index)
        for shape, indices in by_size.items():
            height, width = shape[:2]
            for start in range(0, len(indices), 128):
                group = indices[start:start + 128]
                batch = np.stack([images[i] for i in group])
                if batch.ndim == 3:
                    batch = batch[..., None]
                tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
                sources = weights @ torch.from_numpy(landmarks[group])  # (n, D, 2)
                scale = torch.tensor([2 / (width - 1), 2 / (height - 1)], dtype=torch.float64)
                grid = (sources * scale - 1).float()[:, None]
                sampled = F.grid_sample(tensor, grid, mode="bilinear", padding_mode="border",
                                        align_corners=True)
                sampled = sampled[:, :, 0].permute(0, 2, 1).numpy()  # (n, D, C)
                for i, texture in zip(group, sampled):
                    out[i] = _match_channels(texture, channels)
        return out

    def _texture_coordinates(self, target: np.ndarray, size: int) -> np.ndarray:
        """For target landmark sets (B, 68, 2) in the pixels of a ``size`` image, the point
        of the texture frame each output pixel shows: (B, size, size, 2) float32 (x, y),
        -1e4 for pixels outside the face.

        Each target triangle is rasterised over its own bounding box (a window as large as
        the largest copy of that triangle in the batch): the barycentric coordinates of a
        pixel are an affine function of its position, so one 3x3 matrix per face and
        triangle gives both the inside test and, through the mean shape's corners, the
        texture point. Plain numpy, so that batches can run on several threads.
        """
        batch, n_pixels = target.shape[0], size * size
        tri = self.triangles_
        corners = target[:, tri]  # (B, T, 3, 2)
        # barycentric coordinates = inverse([[x_a x_b x_c], [y_a y_b y_c], [1 1 1]]) @ p
        vertex_matrix = np.concatenate([corners.transpose(0, 1, 3, 2),
                                        np.ones(corners.shape[:2] + (1, 3))], axis=2)
        degenerate = np.abs(np.linalg.det(vertex_matrix)) < 1e-9
        vertex_matrix[degenerate] = np.eye(3) * 1e9  # collapsed triangles cover nothing
        barycentric = np.linalg.inv(vertex_matrix)  # (B, T, 3, 3)
        texture_corners = self.mean_texture_points_[tri]  # (T, 3, 2)
        to_texture = np.einsum("tkj,btki->btji", texture_corners, barycentric)  # (B,T,2,3)
        barycentric = barycentric.astype(np.float32)
        to_texture = to_texture.astype(np.float32)
        low = np.floor(corners.min(axis=2)).clip(0, size - 1).astype(np.int64)  # (B, T, 2)
        high = np.ceil(corners.max(axis=2)).clip(0, size - 1).astype(np.int64)
        extent = (high - low).max(axis=0) + 1  # (T, 2) window per triangle
        # the extra last entry takes the writes of window pixels outside their triangle
        source = np.full((2, batch, n_pixels + 1), -1e4, dtype=np.float32)
        for t in range(len(tri)):
            # every quantity is affine in (x, y): a row part (B, 1, w) plus a column part
            # (B, h, 1), so each window pixel costs one addition per quantity
            px = low[:, t, 0, None] + np.arange(extent[t, 0])  # (B, w)
            py = low[:, t, 1, None] + np.arange(extent[t, 1])  # (B, h)
            fx = px.astype(np.float32)[:, None, :]
            fy = py.astype(np.float32)[:, :, None]
            bary, affine = barycentric[:, t, :, :, None, None], to_texture[:, t, :, :, None,
                                                                            None]
            off_image = np.where(px < size, 0, -1e9).astype(np.float32)[:, None, :]
            inside = (py < size)[:, :, None]
            for k in range(3):
                inside = inside & ((bary[:, k, 0] * fx + (bary[:, k, 2] + off_image))
                                   + bary[:, k, 1] * fy >= -1e-5)
            index = np.where(inside, py[:, :, None] * size + px[:, None, :], n_pixels)
            index = index.reshape(batch, -1)
            for k in range(2):
                mapped = (affine[:, k, 0] * fx + affine[:, k, 2]) + affine[:, k, 1] * fy
                np.put_along_axis(source[k], index, mapped.reshape(batch, -1), axis=1)
        return np.ascontiguousarray(
            source[:, :, :n_pixels].reshape(2, batch, size, size).transpose(1, 2, 3, 0))

    # ---------------------------------------------------------------- fit / transform
    def fit(self, images, landmarks) -> "FaceSpace":
        """Build the space from face images and their 68-point landmarks.

        Generalised Procrustes alignment of the landmark sets, PCA of the aligned shapes,
        each face warped (piecewise affine) to the mean shape and masked to the face
        region, PCA of those shape-free textures. Needs more faces than components.
        """
        images = _image_list(images)
        points = _landmark_array(landmarks, len(images))
        n_faces = len(images)
        if n_faces <= max(self.n_shape, self.n_appearance):
            raise ValueError(
                f"fit: {n_faces} faces cannot give {self.n_shape} shape and "
                f"{self.n_appearance} appearance components; need more faces than components")
        channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
        if len(channels) > 1:
            raise ValueError("images: mix of grey and RGB images; convert them to one kind")
        self.mean_shape_, aligned = generalized_procrustes(points)
        shape_vectors = aligned.reshape(n_faces, -1)
        self.shape_mean_ = shape_vectors.mean(axis=0)
        (self.shape_components_, self.shape_eigenvalues_,
         self.shape_explained_variance_ratio_) = _pca(shape_vectors - self.shape_mean_,
                                                      self.n_shape, "shape")
        self._setup_texture_frame()
        textures = self._warp_to_mean(images, points, channels.pop())  # (N, D, C)
        flat = textures.reshape(n_faces, -1).astype(np.float64)
        mean_texture = flat.mean(axis=0)
        (self.appearance_components_, self.appearance_eigenvalues_,
         self.appearance_explained_variance_ratio_) = _pca(flat - mean_texture,
                                                           self.n_appearance, "appearance")
        self.mean_texture_ = mean_texture.reshape(textures.shape[1:])
        return self

    def shape_params(self, landmarks) -> np.ndarray:
        """Shape parameters (N, n_shape) of landmark sets in any position, size and angle."""
        self._check_fitted()
        points = _landmark_array(landmarks)
        if points.shape[1] != self.mean_shape_.shape[0]:
            raise ValueError(f"landmarks: this space has {self.mean_shape_.shape[0]} points, "
                             f"got {points.shape[1]}")
        aligned = _align_to(points, self.mean_shape_).reshape(len(points), -1)
        return (aligned - self.shape_mean_) @ self.shape_components_.T

    def textures(self, images, landmarks) -> np.ndarray:
        """Shape-free textures (N, D, C) of images: each warped to the mean shape."""
        self._check_fitted()
        images = _image_list(images)
        points = _landmark_array(landmarks, len(images))
        return self._warp_to_mean(images, points, self.n_channels)

    def transform(self, images, landmarks) -> np.ndarray:
        """The (N, n_shape + n_appearance) parameters of face images with their landmarks:
        shape from the aligned landmarks, appearance from the shape-free texture."""
        self._check_fitted()
        images = _image_list(images)
        points = _landmark_array(landmarks, len(images))
        shape = self.shape_params(points)
        texture = self._warp_to_mean(images, points, self.n_channels).reshape(len(images), -1)
        mean = self.mean_texture_.reshape(-1).astype(np.float32)
        components = self.appearance_components_.T.astype(np.float32)
        appearance = np.concatenate([  # in chunks: a float64 copy of all textures is large
            (texture[start:start + 256] - mean) @ components
            for start in range(0, len(texture), 256)]).astype(np.float64)
        return np.concatenate([shape, appearance], axis=1)

    # ---------------------------------------------------------------- synthesis
    def shape_landmarks(self, shape_params, size: int = 150) -> np.ndarray:
        """Landmarks (N, 68, 2) of shape parameters, each set placed as dlib's alignment
        places a face in a ``size`` chip (its own chip is the identity)."""
        self._check_fitted()
        shape_params = np.atleast_2d(np.asarray(shape_params, dtype=np.float64))
        vectors = self.shape_mean_ + shape_params @ self.shape_components_
        # model shapes have unit norm; dlib's alignment is scale-equivariant, so any
        # scale would do, and pixel-like units keep its arithmetic well conditioned
        return chip_landmarks(vectors.reshape(len(vectors), -1, 2) * 1000.0, size)

    def texture_vectors(self, appearance_params) -> np.ndarray:
        """Shape-free textures (N, D, C) of appearance parameters (not clipped)."""
        self._check_fitted()
        appearance_params = np.atleast_2d(np.asarray(appearance_params, dtype=np.float64))
        flat = self.mean_texture_.reshape(-1) + appearance_params @ self.appearance_components_
        return flat.reshape(len(flat), *self.mean_texture_.shape)

    def texture_images(self, textures) -> np.ndarray:
        """Shape-free textures (N, D, C) laid out as (N, T, T, C) images, background
        outside the face region."""
        textures = np.asarray(textures)
        size = self.texture_size
        out = np.full((len(textures), size * size, textures.shape[2]), self.background)
        out[:, self.mask_.ravel()] = textures
        return out.reshape(len(textures), size, size, -1)

    def synthesize(self, params, size: int = 150, margin: int = 0, batch_size: int = 256,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Faces from parameters: ``(images, landmarks)``.

        Each face is placed as dlib aligns a face in a ``size`` chip with padding 0.25 (the
        input of dlib's face-recognition network at size 150): with ``margin=0`` each image
        *is* its own aligned chip, ``facelin.faces.face_chips(images, landmarks, size)``
        returns the images themselves (up to dlib's rounding). dlib's chips are tight and
        cut the chin of many faces; ``margin`` adds that many pixels on every side (the
        chip is then the central ``size`` square), e.g. to fit the whole face back with
        `transform`. Batches of ``batch_size`` faces are rasterised on worker threads.

        Returns
        -------
        images : (N, S, S) float32 in [0, 1] for a grey space, (N, S, S, 3) for an RGB
            one, S = size + 2 * margin; background outside the face region.
        landmarks : (N, 68, 2) the exact (x, y) positions of the landmarks in those images.
        """
        self._check_fitted()
        params = _check_params(params, self.n_params)
        if int(size) != size or size < 8:
            raise ValueError(f"size: expected an integer >= 8, got {size}")
        if int(margin) != margin or margin < 0:
            raise ValueError(f"margin: expected an integer >= 0, got {margin}")
        size, margin = int(size), int(margin)
        landmarks = self.shape_landmarks(params[:, :self.n_shape], size) + margin
        channels = self.n_channels
        side = size + 2 * margin
        images = np.empty((len(params), side, side, channels), dtype=np.float32)
        fill = torch.from_numpy(self._fill_index)
        components = torch.from_numpy(self.appearance_components_).float()
        mean = torch.from_numpy(self.mean_texture_.reshape(-1)).float()
        tsize = self.texture_size
        background = torch.tensor(self.background)
        batches = [(start, min(start + batch_size, len(params)))
                   for start in range(0, len(params), batch_size)]
        # the rasterisation (numpy, many small steps) runs on worker threads, the texture
        # sampling (one large torch op per batch) on this one
        with ThreadPoolExecutor(max(1, min(torch.get_num_threads(), len(batches)))) as pool:
            coordinates = pool.map(lambda bounds: self._texture_coordinates(
                landmarks[bounds[0]:bounds[1]], side), batches)
            if progress:
                from tqdm.auto import tqdm
                coordinates = tqdm(coordinates, total=len(batches), unit="batch",
                                   desc="synthesising faces")
            for (start, stop), source in zip(batches, coordinates):
                appearance = torch.from_numpy(params[start:stop, self.n_shape:]).float()
                flat = (mean + appearance @ components).reshape(stop - start, -1, channels)
                texture = flat[:, fill].reshape(stop - start, tsize, tsize, channels)
                source = torch.from_numpy(source)
                grid = 2 * source / (tsize - 1) - 1
                sampled = F.grid_sample(texture.permute(0, 3, 1, 2), grid, mode="bilinear",
                                        padding_mode="border", align_corners=True)
                covered = (source[..., 0] > -1e3)[:, None]
                rendered = torch.where(covered, sampled, background).clamp(0, 1)
                images[start:stop] = rendered.permute(0, 2, 3, 1).numpy()
        if channels == 1:
            images = images[..., 0]
        return images, landmarks

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Chang & Tsao's stimuli: (n, n_params) parameters, each dimension drawn
        independently from a normal distribution with mean 0 and standard deviation
        sqrt(eigenvalue) of its principal component."""
        self._check_fitted()
        if int(n) != n or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n}")
        rng = np.random.default_rng(seed)
        return rng.standard_normal((int(n), self.n_params)) * np.sqrt(self.eigenvalues_)

    def reconstruct(self, params, n_shape: int | None = None,
                    n_appearance: int | None = None) -> np.ndarray:
        """Parameters with all but the first n_shape / n_appearance of each block zeroed
        (a reconstruction from fewer components)."""
        params = _check_params(params, self.n_params).copy()
        n_shape = self.n_shape if n_shape is None else n_shape
        n_appearance = self.n_appearance if n_appearance is None else n_appearance
        params[:, n_shape:self.n_shape] = 0
        params[:, self.n_shape + n_appearance:] = 0
        return params

    # ---------------------------------------------------------------- normalisation
    def _normalization(self, reference):
        if isinstance(reference, str):
            if reference != "model":
                raise ValueError(f"reference: expected None, 'model' or an array of "
                                 f"parameters, got {reference!r}")
            self._check_fitted()
            centre = np.zeros(self.n_params)
            variances = self.eigenvalues_
        else:
            reference = _check_params(reference, self.n_params)
            if len(reference) < 2:
                raise ValueError("reference: need at least 2 faces to estimate variances")
            centre = reference.mean(axis=0)
            variances = reference.var(axis=0, ddof=1)
        shape_scale = np.sqrt(variances[:self.n_shape].sum())
        appearance_scale = np.sqrt(variances[self.n_shape:].sum())
        if shape_scale == 0 or appearance_scale == 0:
            raise ValueError("reference: a block of parameters has zero variance")
        scale = np.concatenate([np.full(self.n_shape, shape_scale),
                                np.full(self.n_appearance, appearance_scale)]) * np.sqrt(2)
        return centre, scale

    def normalize(self, params, reference=None) -> np.ndarray:
        """Chang & Tsao's analysis normalisation: centre each dimension, divide the shape
        block by the root of the sum of its dimensions' variances and the appearance block
        likewise, then divide the whole vector by sqrt(2) (so the normalised vectors have
        unit mean squared norm).

        reference : where the means and variances come from: None (the params themselves,
            as Chang & Tsao did), another (M, n_params) array, or ``"model"`` (mean 0 and
            the space's eigenvalues).
        """
        params = _check_params(params, self.n_params)
        centre, scale = self._normalization(params if reference is None else reference)
        return (params - centre) / scale

    def denormalize(self, normalized, reference) -> np.ndarray:
        """The inverse of `normalize` with the same ``reference`` (an array of parameters,
        e.g. the un-normalised stimuli, or ``"model"``)."""
        normalized = _check_params(normalized, self.n_params)
        centre, scale = self._normalization(reference)
        return normalized * scale + centre

    # ---------------------------------------------------------------- persistence
    _ARRAYS = ("mean_shape_", "shape_mean_", "shape_components_", "shape_eigenvalues_",
               "shape_explained_variance_ratio_", "mean_texture_", "appearance_components_",
               "appearance_eigenvalues_", "appearance_explained_variance_ratio_")

    def save(self, path) -> Path:
        """Write the fitted space to an ``.npz`` file (format version `FORMAT_VERSION`):
        the settings, the Procrustes mean and shape PCs, the mean texture and appearance
        PCs with their eigenvalues. The triangulation and mask are rebuilt on load."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle, facelin_facespace_version=np.array(FORMAT_VERSION),
                settings=np.array([self.n_shape, self.n_appearance, self.texture_size]),
                background=np.array(self.background), **arrays)
        return path

    @classmethod
    def load(cls, path) -> "FaceSpace":
        """Read a space written by `save`; raises `FaceSpaceVersionError` for a file of
        another format version and ValueError for a file that is not a face space."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no face-space file at {path}")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as error:  # zip/npz errors come in many types
            raise ValueError(f"{path}: not a readable .npz face-space file ({error})") from None
        with data:
            if "facelin_facespace_version" not in data:
                raise ValueError(f"{path}: not a facelin face-space file")
            version = int(data["facelin_facespace_version"])
            if version != FORMAT_VERSION:
                raise FaceSpaceVersionError(
                    f"{path}: face-space file format version {version}, but this facelin "
                    f"reads version {FORMAT_VERSION}; rebuild the space with FaceSpace.fit")
            missing = [name for name in cls._ARRAYS if name not in data]
            if missing:
                raise ValueError(f"{path}: truncated face-space file, missing {missing}")
            n_shape, n_appearance, texture_size = (int(v) for v in data["settings"])
            space = cls(n_shape, n_appearance, texture_size, float(data["background"]))
            for name in cls._ARRAYS:
                setattr(space, name, data[name])
        space._setup_texture_frame()
        return space


def _pca(centred: np.ndarray, n_components: int, name: str):
    """Top principal components (rows), their variances and explained-variance ratios."""
    if len(centred) < centred.shape[1]:
        # few faces, many pixels: the eigenvectors of the faces' Gram matrix give the
        # components at a fraction of a full SVD's cost
        eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(eigenvalues)[::-1]
        singular = np.sqrt(np.clip(eigenvalues[order], 0, None))
        vt = (vectors[:, order].T @ centred) / np.maximum(singular, 1e-300)[:, None]
    else:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variances = singular ** 2 / (len(centred) - 1)
    if variances[n_components - 1] <= 1e-12 * max(variances[0], 1e-300):
        rank = int((variances > 1e-12 * variances[0]).sum())
        raise ValueError(f"fit: the {name} data have rank {rank}, fewer than the "
                         f"{n_components} {name} components asked for")
    total = variances.sum()
    # a fixed sign per component (largest loading positive), so refits draw the same faces
    vt = vt[:n_components]
    vt = vt * np.sign(vt[np.arange(n_components), np.abs(vt).argmax(axis=1)])[:, None]
    return (vt.copy(), variances[:n_components].copy(),
            variances[:n_components] / total)


def _match_channels(texture: np.ndarray, channels: int) -> np.ndarray:
    """Bring a sampled texture (D, C) to the space's channels: RGB to grey by luminance
    (the ITU-R 709 weights of scikit-image's rgb2gray), grey to RGB by replication."""
    if texture.shape[1] == channels:
        return texture
    if channels == 1:
        return texture @ np.array([[0.2125], [0.7154], [0.0721]], dtype=texture.dtype)
    return np.repeat(texture, 3, axis=1)


# --------------------------------------------------------------------------------------
# The default space, cached on disk
# --------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where fitted spaces are cached: ``$FACELIN_CACHE`` or ``~/.cache/facelin``."""
    return Path(os.environ.get("FACELIN_CACHE", Path.home() / ".cache" / "facelin"))


def default_space(n_shape: int = 25, n_appearance: int = 25, texture_size: int = 150,
                  refresh: bool = False) -> FaceSpace:
    """The space built from the embedded faces (`facelin.datasets.lfw_subset`), loaded from
    the cache when it was built before with the same settings and format version."""
    key = hashlib.sha1(
        f"lfw_subset|{n_shape}|{n_appearance}|{texture_size}|v{FORMAT_VERSION}".encode()
    ).hexdigest()[:12]
    path = cache_dir() / f"facespace-lfw_subset-{key}.npz"
    if path.is_file() and not refresh:
        try:
            return FaceSpace.load(path)
        except ValueError:
            pass  # a damaged or outdated cache entry is rebuilt below
    from .datasets import lfw_subset
    faces = lfw_subset()
    space = FaceSpace(n_shape, n_appearance, texture_size).fit(faces.images, faces.landmarks)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    space.save(temporary)
    os.replace(temporary, path)
    return space
