"""Input checks shared by facelin's modules, each with a message that says what is
wrong.

Every function takes the user's value and the name the user knows it by, and returns the
value in the form the caller computes with (a numpy array, a list of images, an int).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_numpy", "positive_int", "whole_number", "image_list", "landmark_array",
           "param_array", "box_array", "float_matrix", "matched_rows",
           "real_matrix", "feature_matrix", "label_array"]


def as_numpy(value) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def whole_number(value, name: str, minimum: int = 0) -> int:
    """``value`` as an int; a ValueError unless it is a whole number >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or int(value) != value \
            or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1."""
    return whole_number(value, name, minimum=1)


def _float_image(image: np.ndarray, name: str) -> np.ndarray:
    """uint8 (0..255) or float ([0, 1]) pixels as float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 or float pixels, got {image.dtype}")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError(f"{name}: NaN or Inf pixels")
    if image.min() < -1e-6 or image.max() > 1 + 1e-6:
        raise ValueError(
            f"{name}: float pixels must lie in [0, 1], got range "
            f"[{image.min():.3g}, {image.max():.3g}] (pass uint8 for 0..255 images)")
    return image


def _uint8_image(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype != np.uint8:
        raise TypeError(
            f"{name}: expected uint8 pixels (as dlib uses), got {image.dtype}; "
            "convert with skimage.util.img_as_ubyte"
        )
    return image


def image_list(images, pixels: str = "float", name: str = "images") -> list[np.ndarray]:
    """Validate a batch of images and return them as a list of arrays.

    images : a list of (H, W) grey or (H, W, 3) RGB arrays (sizes may differ), or one
        (N, H, W) / (N, H, W, 3) array or tensor.
    pixels : ``"float"``: uint8 or float in [0, 1] in, float32 (H, W) or (H, W, 3) in
        [0, 1] out (an (H, W, 1) image becomes (H, W)); ``"uint8"``: uint8 in,
        C-contiguous (H, W, 3) uint8 out (grey replicated to three channels), as dlib
        takes them.
    """
    if pixels not in ("float", "uint8"):
        raise ValueError(f"pixels: 'float' or 'uint8', got {pixels!r}")
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(
                f"{name}: a batch array must be (N, H, W) or (N, H, W, 3), got shape "
                f"{images.shape}; wrap a single image in a list")
        images = list(images)
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(
            f"{name}: expected a non-empty list of images or a batch array"
        )
    out = []
    for index, image in enumerate(images):
        where = f"{name}[{index}]"
        image = np.asarray(image)
        image = _float_image(image, where) if pixels == "float" else _uint8_image(image,
                                                                                  where)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(
                f"{where}: expected an (H, W) grey or (H, W, 3) RGB image, "
                f"got shape {image.shape}"
            )
        if min(image.shape[:2]) < 2:
            raise ValueError(f"{where}: image of shape {image.shape} is too small")
        if pixels == "uint8":
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            image = np.ascontiguousarray(image)
        out.append(image)
    return out


def landmark_array(landmarks, n_images: int | None = None, n_points=None,
                   name: str = "landmarks") -> np.ndarray:
    """(N, P, 2) float64 (x, y) positions, finite, P >= 3 (or one of ``n_points``), N
    equal to ``n_images`` when given."""
    points = as_numpy(landmarks).astype(np.float64, copy=False)
    allowed = (n_points,) if isinstance(n_points, int) else n_points
    if points.ndim != 3 or points.shape[2] != 2 or points.shape[1] < 3 or (
            allowed is not None and points.shape[1] not in allowed):
        count = "n_points" if allowed is None else " or ".join(map(str, allowed))
        rows = "N" if n_images is None else n_images
        raise ValueError(f"{name}: expected shape ({rows}, {count}, 2) of (x, y) "
                         f"positions, got {points.shape}")
    if n_images is not None and points.shape[0] != n_images:
        raise ValueError(
            f"{name}: {points.shape[0]} landmark sets for {n_images} images"
        )
    bad = ~np.isfinite(points).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{name}: NaN or Inf in the landmarks of face(s) "
                         f"{np.flatnonzero(bad).tolist()}")
    return points


def param_array(params, n_dims: int, name: str = "params") -> np.ndarray:
    """(N, n_dims) finite float64 parameters; one vector becomes a row."""
    params = as_numpy(params).astype(np.float64, copy=False)
    if params.ndim == 1:
        params = params[None]
    if params.ndim != 2 or params.shape[1] != n_dims:
        raise ValueError(f"{name}: expected shape (N, {n_dims}), got {params.shape}")
    bad = ~np.isfinite(params).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: NaN or Inf in row(s) {np.flatnonzero(bad).tolist()}")
    return params


def box_array(boxes, n_images: int, name: str = "boxes") -> np.ndarray:
    """(n_images, 4) finite (left, top, right, bottom) boxes with right > left and
    bottom > top."""
    boxes = as_numpy(boxes).astype(np.float64, copy=False)
    if boxes.shape != (n_images, 4) or not np.isfinite(boxes).all():
        raise ValueError(f"{name}: expected a finite ({n_images}, 4) array of "
                         f"(left, top, right, bottom), got shape {boxes.shape}")
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise ValueError(f"{name}: every box needs right > left and bottom > top")
    return boxes


def float_matrix(x, name: str) -> torch.Tensor:
    """``x`` as a finite float64 (faces x columns) CPU tensor, or a clear error."""
    t = (
        x.detach().cpu()
        if isinstance(x, torch.Tensor)
        else torch.as_tensor(np.asarray(x))
    )
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a float array, got {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() != 2:
        raise ValueError(
            f"{name} must be 2-d (faces x columns), got shape {tuple(t.shape)}"
        )
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:10].tolist()
        raise ValueError(f"{name} holds NaN or Inf (rows {rows})")
    return t


def matched_rows(x, y, x_name: str, y_name: str):
    """Two float matrices (see `float_matrix`) with the same number of faces (rows)."""
    x, y = float_matrix(x, x_name), float_matrix(y, y_name)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name} has {x.shape[0]} faces but {y_name} has {y.shape[0]}"
        )
    return x, y


def real_matrix(x, name: str) -> torch.Tensor:
    """``x`` (numbers, 1-d or 2-d) as a finite float64 (faces, columns) tensor, or an
    error naming it."""
    raw = x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x)
    t = torch.as_tensor(raw)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-d (faces x columns), got shape "
                         f"{tuple(t.shape)}")
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:10].tolist()
        raise ValueError(f"{name} holds NaN or Inf (rows {rows})")
    return t


def feature_matrix(x, name: str) -> np.ndarray:
    """``x`` as a finite float64 (images, features) array, or an error naming it."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (images x features), got shape "
                         f"{x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        bad = np.unique(np.nonzero(~np.isfinite(x))[0])
        raise ValueError(f"{name} holds NaN or Inf in rows {bad[:10].tolist()}")
    return x


def label_array(labels, n: int, name: str) -> np.ndarray:
    """``labels`` as an (n,) array, one identity per row, or an error naming it."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have one label per row ({n}), got shape "
                         f"{labels.shape}")
    return labels
