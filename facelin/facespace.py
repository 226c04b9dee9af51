"""Chang & Tsao's shape-appearance parameter space, built from landmarked face images.

A face is a point in a 50-d space: 25 shape parameters (principal components of the
landmark sets after generalised Procrustes alignment, `facelin.shape`) and 25
appearance parameters (principal components of the "shape-free" textures, each face
warped to the mean shape, `facelin.appearance`). `FaceSpace` composes those two models,
the warp between images and textures (`facelin.warp`) and Chang & Tsao's normalisation
(`facelin.normalize`), and reads and writes fitted spaces.

The warp is piecewise affine over a Delaunay triangulation of the mean shape. Chang &
Tsao used a thin-plate spline; the piecewise-affine warp is the standard
active-appearance-model choice and has two properties this package relies on: it maps
every landmark exactly onto its target, and its inverse is again piecewise affine. The
face region is the outline of the jaw line and the eyebrows; pixels outside it are
background.

Synthesised faces are placed as dlib's chip alignment expects
(``facelin.faces.face_chips`` with padding 0.25): each synthesised image *is* its own
aligned chip, so chips of synthesised faces come from the returned landmarks without any
detection.

Images are float in [0, 1] or uint8, shaped ``(N, H, W)`` (grey) or ``(N, H, W, 3)``
(RGB), or a list of such arrays of different sizes; landmarks are ``(N, 68, 2)`` arrays
of ``(x, y)`` pixel positions, pixel centres at integer coordinates (dlib's convention).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cache
from ._validation import (
    image_list,
    landmark_array,
    param_array,
    positive_int,
    whole_number,
)
from .appearance import AppearanceModel
from .cache import cache_dir
from .normalize import BlockNormalizer
from .shape import ShapeModel, chip_landmarks, generalized_procrustes
from .warp import PiecewiseAffineWarp

__all__ = ["FaceSpace", "FaceSpaceVersionError", "default_space", "cache_dir",
           "chip_landmarks", "generalized_procrustes", "reconstruction_errors",
           "FORMAT_VERSION"]

#: Version of the file written by `FaceSpace.save`; `FaceSpace.load` refuses any other.
FORMAT_VERSION = 1

# The warp's mesh: a Delaunay triangulation of the mean shape without the inner lip
# points (60..67: on a closed mouth they coincide with the outer lips and their
# triangles fold over), restricted to the face outline (jaw line, then the eyebrows), so
# that no sliver triangle spans the concave gap between the brows.
_WARP_POINTS = np.array([i for i in range(68) if not 60 <= i <= 67])
_FACE_OUTLINE = np.array(list(range(17)) + list(range(26, 16, -1)))


class FaceSpaceVersionError(ValueError):
    """A face-space file written by another version of the file format."""


def _part(part: str, name: str) -> property:
    """A fitted attribute of the space that one of its parts holds."""
    return property(lambda self: getattr(getattr(self, part), name))


class FaceSpace:
    """Chang & Tsao's shape-appearance space: ``n_shape`` + ``n_appearance`` PCs.

    The space composes a `facelin.shape.ShapeModel` (Procrustes + shape PCA, attribute
    ``shape_model_``), a `facelin.warp.PiecewiseAffineWarp` between images and the
    texture frame of the mean shape (``warp_``), a `facelin.appearance.AppearanceModel`
    (PCA of the shape-free textures, ``appearance_model_``) and a
    `facelin.normalize.BlockNormalizer` for Chang & Tsao's normalisation.

    Parameters
    ----------
    n_shape, n_appearance : number of shape and appearance principal components kept
        (25 and 25 in Chang & Tsao 2017).
    texture_size : side, in pixels, of the square on which the shape-free textures live
        (the mean shape, upright, fills it up to a 2-pixel border).
    background : grey level in [0, 1] of the pixels outside the face region in
        synthesised images.

    Attributes (after `fit`), read from the parts
    ----------------------------------------------
    mean_shape_ (68, 2), shape_mean_ (136,), shape_components_ (n_shape, 136),
    shape_eigenvalues_, shape_explained_variance_ratio_ (n_shape,): the shape model;
    triangles_ (T, 3) landmark indices, mask_ (texture_size, texture_size) bool,
    mean_texture_points_ (68, 2): the warp's mesh and frame; mean_texture_ (D, C),
    appearance_components_ (n_appearance, D * C), appearance_eigenvalues_,
    appearance_explained_variance_ratio_ (n_appearance,): the appearance model.
    """

    mean_shape_ = _part("shape_model_", "mean_shape_")
    shape_mean_ = _part("shape_model_", "mean_")
    shape_components_ = _part("shape_model_", "components_")
    shape_eigenvalues_ = _part("shape_model_", "eigenvalues_")
    shape_explained_variance_ratio_ = _part("shape_model_", "explained_variance_ratio_")
    triangles_ = _part("warp_", "triangles")
    mask_ = _part("warp_", "mask")
    mean_texture_points_ = _part("warp_", "reference")
    mean_texture_ = _part("appearance_model_", "mean_texture_")
    appearance_components_ = _part("appearance_model_", "components_")
    appearance_eigenvalues_ = _part("appearance_model_", "eigenvalues_")
    appearance_explained_variance_ratio_ = _part("appearance_model_",
                                                 "explained_variance_ratio_")

    def __init__(self, n_shape: int = 25, n_appearance: int = 25,
                 texture_size: int = 150, background: float = 0.5):
        self.n_shape = positive_int(n_shape, "n_shape")
        self.n_appearance = positive_int(n_appearance, "n_appearance")
        self.texture_size = whole_number(texture_size, "texture_size", minimum=16)
        if not 0 <= background <= 1:
            raise ValueError(f"background: expected a grey level in [0, 1], got "
                             f"{background}")
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
        if not hasattr(self, "warp_"):
            raise RuntimeError("this FaceSpace is not fitted yet: call fit(images, "
                               "landmarks) or FaceSpace.load(path)")

    def _setup_warp(self):
        """The texture frame: the mean shape, upright as in a chip, scaled so that its
        whole face region fits the frame with a 2-pixel border (dlib's chips cut the
        chin), meshed without the inner lips and inside the face outline."""
        points = self.shape_model_.chip_mean_shape(self.texture_size)
        self.warp_ = PiecewiseAffineWarp.in_frame(
            points, self.texture_size, _WARP_POINTS, _FACE_OUTLINE, border=2
        )

    # ---------------------------------------------------------------- fit / transform
    def fit(self, images, landmarks) -> "FaceSpace":
        """Build the space from face images and their 68-point landmarks.

        Generalised Procrustes alignment of the landmark sets, PCA of the aligned
        shapes, each face warped (piecewise affine) to the mean shape and masked to the
        face region, PCA of those shape-free textures. Needs more faces than components.
        """
        images = image_list(images)
        points = landmark_array(landmarks, len(images))
        n_faces = len(images)
        if n_faces <= max(self.n_shape, self.n_appearance):
            raise ValueError(
                f"fit: {n_faces} faces cannot give {self.n_shape} shape and "
                f"{self.n_appearance} appearance components; need more faces than "
                "components")
        channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
        if len(channels) > 1:
            raise ValueError("images: mix of grey and RGB images; convert them to one "
                             "kind")
        self.shape_model_ = ShapeModel(self.n_shape).fit(points)
        self._setup_warp()
        textures = self.warp_.sample(images, points, channels.pop())  # (N, D, C)
        self.appearance_model_ = AppearanceModel(self.n_appearance).fit(textures)
        return self

    def shape_params(self, landmarks) -> np.ndarray:
        """Shape parameters (N, n_shape) of landmark sets in any position, size and
        angle."""
        self._check_fitted()
        return self.shape_model_.params(landmarks)

    def textures(self, images, landmarks) -> np.ndarray:
        """Shape-free textures (N, D, C) of images: each warped to the mean shape."""
        self._check_fitted()
        images = image_list(images)
        points = landmark_array(landmarks, len(images))
        return self.warp_.sample(images, points, self.n_channels)

    def transform(self, images, landmarks) -> np.ndarray:
        """The (N, n_shape + n_appearance) parameters of face images with their
        landmarks: shape from the aligned landmarks, appearance from the shape-free
        texture."""
        self._check_fitted()
        images = image_list(images)
        points = landmark_array(landmarks, len(images))
        textures = self.warp_.sample(images, points, self.n_channels)
        return np.concatenate([self.shape_model_.params(points),
                               self.appearance_model_.params(textures)], axis=1)

    # ---------------------------------------------------------------- synthesis
    def shape_landmarks(self, shape_params, size: int = 150) -> np.ndarray:
        """Landmarks (N, 68, 2) of shape parameters, each set placed as dlib's alignment
        places a face in a ``size`` chip (its own chip is the identity)."""
        self._check_fitted()
        return self.shape_model_.landmarks(shape_params, size)

    def texture_vectors(self, appearance_params) -> np.ndarray:
        """Shape-free textures (N, D, C) of appearance parameters (not clipped)."""
        self._check_fitted()
        return self.appearance_model_.textures(appearance_params)

    def texture_images(self, textures) -> np.ndarray:
        """Shape-free textures (N, D, C) laid out as (N, T, T, C) images, background
        outside the face region."""
        self._check_fitted()
        return self.warp_.texture_images(textures, self.background)

    def synthesize(
        self,
        params,
        size: int = 150,
        margin: int = 0,
        batch_size: int = 256,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Faces from parameters: ``(images, landmarks)``.

        Each face is placed as dlib aligns a face in a ``size`` chip with padding 0.25
        (the input of dlib's face-recognition network at size 150): with ``margin=0``
        each image *is* its own aligned chip, ``facelin.faces.face_chips(images,
        landmarks, size)`` returns the images themselves (up to dlib's rounding). dlib's
        chips are tight and cut the chin of many faces; ``margin`` adds that many pixels
        on every side (the chip is then the central ``size`` square), e.g. to fit the
        whole face back with `transform`. Batches of ``batch_size`` faces are rasterised
        on worker threads.

        Returns
        -------
        images : (N, S, S) float32 in [0, 1] for a grey space, (N, S, S, 3) for an RGB
            one, S = size + 2 * margin; background outside the face region.
        landmarks : (N, 68, 2) the exact (x, y) positions of the landmarks in those
            images.
        """
        self._check_fitted()
        params = param_array(params, self.n_params)
        size = whole_number(size, "size", minimum=8)
        margin = whole_number(margin, "margin")
        batch_size = positive_int(batch_size, "batch_size")
        landmarks = self.shape_landmarks(params[:, :self.n_shape], size) + margin
        textures = self.appearance_model_.texture_batches(params[:, self.n_shape:])
        images = self.warp_.render(textures, landmarks, size + 2 * margin,
                                   self.background, batch_size, progress)
        if self.n_channels == 1:
            images = images[..., 0]
        return images, landmarks

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Chang & Tsao's stimuli: (n, n_params) parameters, each dimension drawn
        independently from a normal distribution with mean 0 and standard deviation
        sqrt(eigenvalue) of its principal component."""
        self._check_fitted()
        n = positive_int(n, "n")
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, self.n_params)) * np.sqrt(self.eigenvalues_)

    def reconstruct(self, params, n_shape: int | None = None,
                    n_appearance: int | None = None) -> np.ndarray:
        """Parameters with all but the first n_shape / n_appearance of each block zeroed
        (a reconstruction from fewer components)."""
        params = param_array(params, self.n_params).copy()
        n_shape = self.n_shape if n_shape is None else n_shape
        n_appearance = self.n_appearance if n_appearance is None else n_appearance
        params[:, n_shape:self.n_shape] = 0
        params[:, self.n_shape + n_appearance:] = 0
        return params

    # ---------------------------------------------------------------- normalisation
    def normalizer(self, reference="model") -> BlockNormalizer:
        """The `BlockNormalizer` of the shape and appearance blocks fitted on
        ``reference``: an (M, n_params) array of parameters or ``"model"`` (mean 0 and
        the space's eigenvalues)."""
        normalizer = BlockNormalizer((self.n_shape, self.n_appearance))
        if isinstance(reference, str):
            if reference != "model":
                raise ValueError(f"reference: expected None, 'model' or an array of "
                                 f"parameters, got {reference!r}")
            self._check_fitted()
            return normalizer.fit_moments(0.0, self.eigenvalues_)
        return normalizer.fit(reference)

    def normalize(self, params, reference=None) -> np.ndarray:
        """Chang & Tsao's analysis normalisation: centre each dimension, divide the
        shape block by the root of the sum of its dimensions' variances and the
        appearance block likewise, then divide the whole vector by sqrt(2) (so the
        normalised vectors have unit mean squared norm).

        reference : where the means and variances come from: None (the params
            themselves, as Chang & Tsao did), another (M, n_params) array, or
            ``"model"`` (mean 0 and the space's eigenvalues).
        """
        params = param_array(params, self.n_params)
        reference = params if reference is None else reference
        return self.normalizer(reference).transform(params)

    def denormalize(self, normalized, reference) -> np.ndarray:
        """The inverse of `normalize` with the same ``reference`` (an array of
        parameters, e.g. the un-normalised stimuli, or ``"model"``)."""
        return self.normalizer(reference).inverse_transform(normalized)

    # ---------------------------------------------------------------- persistence
    def save(self, path) -> Path:
        """Write the fitted space to an ``.npz`` file (format version `FORMAT_VERSION`):
        the settings, the Procrustes mean and shape PCs, the mean texture and appearance
        PCs with their eigenvalues. The mesh and mask are rebuilt on load."""
        self._check_fitted()
        return _write_space_file(path, self)

    @classmethod
    def load(cls, path) -> "FaceSpace":
        """Read a space written by `save`; raises `FaceSpaceVersionError` for a file of
        another format version and ValueError for a file that is not a face space."""
        data = _read_space_file(path, _SHAPE_ARRAYS + _APPEARANCE_ARRAYS)
        n_shape, n_appearance, texture_size = (int(v) for v in data["settings"])
        space = cls(n_shape, n_appearance, texture_size, float(data["background"]))
        space.shape_model_ = ShapeModel.from_arrays(*(data[n] for n in _SHAPE_ARRAYS))
        space.appearance_model_ = AppearanceModel.from_arrays(
            *(data[n] for n in _APPEARANCE_ARRAYS))
        space._setup_warp()
        return space


# What a face-space file holds besides its settings (the mesh and mask are rebuilt)
_SHAPE_ARRAYS = ("mean_shape_", "shape_mean_", "shape_components_", "shape_eigenvalues_",
                 "shape_explained_variance_ratio_")
_APPEARANCE_ARRAYS = ("mean_texture_", "appearance_components_", "appearance_eigenvalues_",
                      "appearance_explained_variance_ratio_")


def _write_space_file(path, space: FaceSpace) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(space, name)
              for name in _SHAPE_ARRAYS + _APPEARANCE_ARRAYS}
    settings = [space.n_shape, space.n_appearance, space.texture_size]
    with open(path, "wb") as handle:
        np.savez_compressed(handle, facelin_facespace_version=np.array(FORMAT_VERSION),
                            settings=np.array(settings),
                            background=np.array(space.background), **arrays)
    return path


def _read_space_file(path, names) -> dict:
    """The arrays of a face-space file, after checking its kind, version and
    contents."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no face-space file at {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # zip/npz errors come in many types
        raise ValueError(
            f"{path}: not a readable .npz face-space file ({error})"
        ) from None
    with data:
        if "facelin_facespace_version" not in data:
            raise ValueError(f"{path}: not a facelin face-space file")
        version = int(data["facelin_facespace_version"])
        if version != FORMAT_VERSION:
            raise FaceSpaceVersionError(
                f"{path}: face-space file format version {version}, but this facelin "
                f"reads version {FORMAT_VERSION}; rebuild the space with FaceSpace.fit")
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"{path}: truncated face-space file, missing {missing}")
        try:
            return {name: data[name] for name in ("settings", "background") + names}
        except Exception as error:  # a member cut short
            raise ValueError(f"{path}: damaged face-space file ({error})") from None

def reconstruction_errors(space: FaceSpace, images, landmarks,
                          n_components) -> tuple[np.ndarray, np.ndarray]:
    """How well the first k components of ``space`` describe faces, for each k of
    ``n_components`` (each at most the space's number of components per block).

    Returns ``(landmark_rmse, texture_rmse)``, each (len(n_components),): the root mean
    square distance, in pixels of a 150x150 dlib chip, between the faces' landmarks and
    those of their first k shape parameters; the root mean square difference, in grey
    levels (0-255) over the face region, between their shape-free textures and those of
    their first k appearance parameters.
    """
    params = space.transform(images, landmarks)
    true_points = chip_landmarks(landmarks)
    textures = space.textures(images, landmarks)
    landmark_rmse, texture_rmse = [], []
    for k in n_components:
        kept = space.reconstruct(params, n_shape=k, n_appearance=k)
        fitted = space.shape_landmarks(kept[:, :space.n_shape])
        landmark_rmse.append(np.sqrt(((fitted - true_points) ** 2).sum(-1).mean()))
        fitted = space.texture_vectors(kept[:, space.n_shape:])
        texture_rmse.append(255 * np.sqrt(((fitted - textures) ** 2).mean()))
    return np.array(landmark_rmse), np.array(texture_rmse)


def default_space(n_shape: int = 25, n_appearance: int = 25, texture_size: int = 150,
                  refresh: bool = False) -> FaceSpace:
    """The space built from the embedded faces (`facelin.datasets.lfw_subset`), loaded
    from the cache (`facelin.cache`) when it was built before with the same settings and
    format version."""
    digest = cache.key("lfw_subset", n_shape, n_appearance, texture_size,
                       f"v{FORMAT_VERSION}")
    path = cache.path("facespace-lfw_subset", digest, ".npz")
    if path.is_file() and not refresh:
        try:
            return FaceSpace.load(path)
        except ValueError:
            pass  # a damaged or outdated cache entry is rebuilt below
    from .datasets import lfw_subset  # read only when the space must be built
    faces = lfw_subset()
    space = FaceSpace(n_shape, n_appearance, texture_size).fit(
        faces.images, faces.landmarks
    )
    with cache.atomic_write(path) as temporary:
        space.save(temporary)
    return space
