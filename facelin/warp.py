"""A piecewise-affine warp between face images and a fixed texture frame.

The mesh is a triangulation of reference landmarks (the mean shape, placed in a square
texture frame). `PiecewiseAffineWarp.sample` takes images with their landmarks to
"shape-free" textures: the pixels of the frame that the mesh covers, each read from the
image at the point the triangle's affine map sends it to. `PiecewiseAffineWarp.render`
is the inverse: textures drawn onto new landmark positions. The two are what
scikit-image's ``PiecewiseAffineTransform`` + ``warp`` compute (tests/test_warp.py
checks both against it), batched: sampling is one matrix product (the barycentric
weights of every frame pixel are fixed) and one bilinear ``grid_sample`` per batch of
images; rendering rasterises each triangle with one affine map per face on worker
threads.

Coordinates are ``(x, y)`` pixel positions with pixel centres at integers; textures are
``(N, D, C)`` arrays, D the number of covered frame pixels (row-major), C channels.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt
from scipy.spatial import Delaunay
from skimage.measure import points_in_poly

from .progress import progress as progress_bar

__all__ = ["PiecewiseAffineWarp", "match_channels", "OUTSIDE"]

#: Texture coordinate given to output pixels that no triangle covers.
OUTSIDE = -1e4

# ITU-R 709 luminance weights, as scikit-image's rgb2gray
_LUMINANCE = np.array([[0.2125], [0.7154], [0.0721]])


def match_channels(texture: np.ndarray, channels: int) -> np.ndarray:
    """A (..., C) array brought to ``channels``: RGB to grey by luminance
    (scikit-image's rgb2gray weights), grey to RGB by replication."""
    if texture.shape[-1] == channels:
        return texture
    if channels == 1:
        return texture @ _LUMINANCE.astype(texture.dtype)
    return np.repeat(texture, 3, axis=-1)


class PiecewiseAffineWarp:
    """The mesh of ``reference`` landmarks (P, 2) in a ``size`` x ``size`` texture
    frame.

    The mesh is the Delaunay triangulation of ``reference[used]`` (default: every
    point), keeping the triangles whose centroid lies inside the polygon
    ``reference[outline]`` (default: all). Attributes: ``triangles`` (T, 3) landmark
    indices; ``mask`` (size, size) bool, the frame pixels the mesh covers; ``n_pixels``
    = ``mask.sum()``; ``weights`` (n_pixels, P), each covered pixel as a combination of
    the landmarks.
    """

    def __init__(self, reference: np.ndarray, size: int, used=None, outline=None):
        self.reference = np.asarray(reference, dtype=np.float64)
        self.size = int(size)
        used = np.arange(len(self.reference)) if used is None else np.asarray(used)
        triangulation = Delaunay(self.reference[used])
        kept = np.ones(len(triangulation.simplices), dtype=bool)
        if outline is not None:
            centroids = self.reference[used][triangulation.simplices].mean(axis=1)
            kept = points_in_poly(centroids, self.reference[outline])
        self.triangles = used[triangulation.simplices[kept]]
        # every frame pixel located in the triangulation at once; those in dropped
        # triangles (and outside all, simplex -1) get triangle -1
        rows, cols = np.mgrid[0:size, 0:size]
        pixels = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
        simplex = triangulation.find_simplex(pixels)
        triangle_of_simplex = np.full(len(kept) + 1, -1)
        triangle_of_simplex[np.flatnonzero(kept)] = np.arange(kept.sum())
        triangle = triangle_of_simplex[simplex]
        inside = triangle >= 0
        self.mask = inside.reshape(size, size)
        self.n_pixels = int(inside.sum())
        affine = triangulation.transform[simplex[inside]]
        partial = np.einsum("nij,nj->ni", affine[:, :2], pixels[inside] - affine[:, 2])
        barycentric = np.column_stack([partial, 1 - partial.sum(axis=1)])
        # each covered pixel as a fixed combination of the landmarks: (D, P)
        self.weights = np.zeros((self.n_pixels, len(self.reference)))
        np.put_along_axis(self.weights, self.triangles[triangle[inside]], barycentric,
                          axis=1)
        # outside the mask a texture image repeats its nearest covered pixel, so
        # bilinear reads at the face's edge never mix in background
        _, (near_r, near_c) = distance_transform_edt(~self.mask, return_indices=True)
        flat_index = -np.ones((size, size), dtype=np.int64)
        flat_index[self.mask] = np.arange(self.n_pixels)
        self.fill_index = flat_index[near_r, near_c].ravel()

    @classmethod
    def in_frame(cls, points: np.ndarray, size: int, used=None, outline=None,
                 border: float = 2.0) -> "PiecewiseAffineWarp":
        """The warp of ``points`` (P, 2) scaled and centred to fill a ``size`` frame up
        to ``border`` pixels (the mesh as in the constructor)."""
        points = np.asarray(points, dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        scale = (size - 1 - 2 * border) / (high - low).max()
        return cls((points - (low + high) / 2) * scale + (size - 1) / 2, size, used,
                   outline)

    # -------------------------------------------------------------- image -> texture
    def sample(self, images: list[np.ndarray], landmarks: np.ndarray,
               channels: int) -> np.ndarray:
        """Shape-free textures (N, D, channels), float32, of float images (a list of
        (H, W) or (H, W, 3) arrays, sizes may differ) with their landmarks (N, P, 2):
        each covered frame pixel read bilinearly (edge pixels repeated beyond the image)
        at its point of the image's mesh; RGB/grey converted by `match_channels`."""
        weights = torch.from_numpy(self.weights)
        out = np.empty((len(images), self.n_pixels, channels), dtype=np.float32)
        by_size = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(index)
        for shape, indices in by_size.items():
            height, width = shape[:2]
            scale = torch.tensor(
                [2 / (width - 1), 2 / (height - 1)], dtype=torch.float64
            )
            for start in range(0, len(indices), 128):
                group = indices[start:start + 128]
                batch = np.stack([images[i] for i in group])
                if batch.ndim == 3:
                    batch = batch[..., None]
                tensor = torch.from_numpy(
                    np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
                )
                sources = weights @ torch.from_numpy(landmarks[group])  # (n, D, 2)
                grid = (sources * scale - 1).float()[:, None]
                sampled = F.grid_sample(tensor, grid, mode="bilinear",
                                        padding_mode="border", align_corners=True)
                sampled = sampled[:, :, 0].permute(0, 2, 1).numpy()  # (n, D, C)
                out[group] = match_channels(sampled, channels)
        return out

    # -------------------------------------------------------------- texture -> image
    def texture_images(self, textures, background: float) -> np.ndarray:
        """Textures (N, D, C) laid out as (N, size, size, C) frame images,
        ``background`` outside the mask."""
        textures = np.asarray(textures)
        out = np.full((len(textures), self.size * self.size, textures.shape[2]),
                      background, dtype=textures.dtype)
        out[:, self.mask.ravel()] = textures
        return out.reshape(len(textures), self.size, self.size, -1)

    def render(self, textures, landmarks: np.ndarray, size: int, background: float,
               batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Textures drawn on landmark sets: (N, size, size, C) float32 images in [0, 1].

        textures : (N, D, C) array, or a function
            ``(start, stop) -> (stop - start, D, C)`` array or tensor that makes a
            batch's textures when it is needed (so the textures of many faces need
            never be held at once).
        landmarks : (N, P, 2) positions in the ``size`` x ``size`` output images.
        Each output pixel inside a triangle shows, read bilinearly, the texture at the
        point the triangle's affine map sends it to; other pixels are ``background``.
        Batches of ``batch_size`` faces are rasterised on worker threads.
        """
        if not callable(textures):
            array = textures
            textures = lambda start, stop: array[start:stop]  # noqa: E731
        n = len(landmarks)
        batches = [
            (start, min(start + batch_size, n)) for start in range(0, n, batch_size)
        ]
        fill = torch.from_numpy(self.fill_index)
        background = torch.tensor(background)
        images = None
        # the rasterisation (numpy, many small steps) runs on worker threads, the
        # texture reads (one large torch op per batch) on this one
        workers = max(1, min(torch.get_num_threads(), len(batches)))
        with ThreadPoolExecutor(workers) as pool:
            coordinates = pool.map(
                lambda bounds: self._texture_coordinates(
                    landmarks[slice(*bounds)], size
                ),
                batches,
            )
            coordinates = progress_bar(coordinates, total=len(batches), unit="batch",
                                       desc="synthesising faces", enabled=progress)
            for (start, stop), source in zip(batches, coordinates):
                flat = torch.as_tensor(textures(start, stop)).float()
                channels = flat.shape[2]
                if images is None:
                    images = np.empty((n, size, size, channels), dtype=np.float32)
                frame = flat[:, fill].reshape(
                    stop - start, self.size, self.size, channels
                )
                source = torch.from_numpy(source)
                grid = 2 * source / (self.size - 1) - 1
                sampled = F.grid_sample(
                    frame.permute(0, 3, 1, 2),
                    grid,
                    mode="bilinear",
                    padding_mode="border",
                    align_corners=True,
                )
                covered = (source[..., 0] > OUTSIDE / 10)[:, None]
                rendered = torch.where(covered, sampled, background).clamp(0, 1)
                images[start:stop] = rendered.permute(0, 2, 3, 1).numpy()
        return images

    def _texture_coordinates(self, target: np.ndarray, size: int) -> np.ndarray:
        """For target landmark sets (B, P, 2) in the pixels of a ``size`` image, the
        frame point each output pixel shows: (B, size, size, 2) float32 (x, y),
        `OUTSIDE` for pixels no triangle covers.

        Each target triangle is rasterised over its own bounding box (a window as large
        as the largest copy of that triangle in the batch): the barycentric coordinates
        of a pixel are an affine function of its position, so one 3x3 matrix per face
        and triangle gives both the inside test and, through the reference corners, the
        frame point. Plain numpy, so that batches can run on several threads.
        """
        batch, n_pixels = target.shape[0], size * size
        tri = self.triangles
        corners = target[:, tri]  # (B, T, 3, 2)
        # barycentric coordinates = inverse([[x_a x_b x_c], [y_a y_b y_c], [1 1 1]]) @ p
        vertex_matrix = np.concatenate([corners.transpose(0, 1, 3, 2),
                                        np.ones(corners.shape[:2] + (1, 3))], axis=2)
        degenerate = np.abs(np.linalg.det(vertex_matrix)) < 1e-9
        vertex_matrix[degenerate] = np.eye(3) * 1e9  # collapsed triangles cover nothing
        barycentric = np.linalg.inv(vertex_matrix)  # (B, T, 3, 3)
        to_frame = np.einsum("tkj,btki->btji", self.reference[tri], barycentric)
        barycentric = barycentric.astype(np.float32)
        to_frame = to_frame.astype(np.float32)  # (B, T, 2, 3)
        low = np.floor(corners.min(axis=2)).clip(0, size - 1).astype(np.int64)
        high = np.ceil(corners.max(axis=2)).clip(0, size - 1).astype(np.int64)
        extent = (high - low).max(axis=0) + 1  # (T, 2) window per triangle
        # the extra last entry takes the writes of window pixels outside their triangle
        source = np.full((2, batch, n_pixels + 1), OUTSIDE, dtype=np.float32)
        for t in range(len(tri)):
            # every quantity is affine in (x, y): a row part (B, 1, w) plus a column
            # part (B, h, 1), so each window pixel costs one addition per quantity
            px = low[:, t, 0, None] + np.arange(extent[t, 0])  # (B, w)
            py = low[:, t, 1, None] + np.arange(extent[t, 1])  # (B, h)
            fx = px.astype(np.float32)[:, None, :]
            fy = py.astype(np.float32)[:, :, None]
            bary = barycentric[:, t, :, :, None, None]
            affine = to_frame[:, t, :, :, None, None]
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
