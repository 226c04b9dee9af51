"""Face data: the embedded LFW subset, folder and LFW loaders, synthetic identity sets.

- `lfw_subset`: the 100 real LFW faces that ship with scikit-image, upsampled and
  landmarked with dlib's 68-point predictor (the default source of the face space).
- `load_face_folder`: any folder with one sub-folder of images per identity (FEI, a
  private set, ...).
- `load_lfw`: Labeled Faces in the Wild in its standard layout
  (``<Name>/<Name>_0001.jpg`` with ``pairs.txt``) or in scikit-learn's cache
  (``lfw_home/lfw_funneled``).
- `identity_set`: identities drawn in a `FaceSpace`, several images each, with an
  explicit nuisance model (`Nuisance`).

Loaders never crash on a bad file: unreadable files, empty identity folders and pairs
that name missing images are listed in the result's ``problems``; a folder with no
usable image at all raises an error that lists what went wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from ._validation import positive_int
from .faces import landmarks as dlib_landmarks
from .faces import upsampled_lfw
from .progress import progress as progress_bar
from .shape import align_shapes, generalized_procrustes

__all__ = [
    "FaceSet",
    "FaceFolder",
    "LFWPairs",
    "Nuisance",
    "IdentitySet",
    "lfw_subset",
    "load_faces",
    "load_face_folder",
    "load_lfw",
    "identity_set",
    "IMAGE_EXTENSIONS",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


# --------------------------------------------------------------------------------------
# The embedded default: LFW faces from scikit-image
# --------------------------------------------------------------------------------------

@dataclass
class FaceSet:
    """Landmarked face images.

    images : (N, H, W) or (N, H, W, 3) uint8 (a list of arrays when sizes differ).
    landmarks : (N, 68, 2) float64 (x, y) pixel positions.
    indices : (N,) position of each face in its source.
    rejected : one ``{"index": i, "reason": ...}`` per source face left out.
    source : a short description of where the faces come from.
    """
    images: np.ndarray
    landmarks: np.ndarray
    indices: np.ndarray
    rejected: list = field(default_factory=list)
    source: str = ""

    def __len__(self):
        return len(self.images)


def lfw_subset(factor: int = 6, max_outside: float = 0.15,
               max_shape_distance: float = 5.0) -> FaceSet:
    """The 100 real LFW faces shipped with scikit-image, landmarked by dlib.

    ``skimage.data.lfw_subset()`` holds 200 grey 25x25 crops: the first 100 are faces
    (tight, roughly aligned, no identity labels), the rest are not. Each face is
    upsampled ``factor`` times (`facelin.faces.upsampled_lfw`: cubic spline; 6 gives 150
    px) and dlib's 68-point predictor is run with a box covering the whole crop (its HOG
    detector misses many faces this small).

    A face is rejected, and recorded in ``rejected`` with the reason, when more than
    ``max_outside`` of its landmarks fall outside the image by more than 5% of its side,
    or when its Procrustes distance to the mean face exceeds the median distance by
    more than ``max_shape_distance`` robust standard deviations (a predictor failure).
    """
    images = np.stack(upsampled_lfw(range(100), factor))
    size = images.shape[1]
    boxes = np.tile([0, 0, size - 1, size - 1], (len(images), 1))
    points = dlib_landmarks(images, n_points=68, boxes=boxes)
    rejected = []
    slack = 0.05 * size
    outside = ((points < -slack) | (points > size - 1 + slack)).any(axis=2).mean(axis=1)
    for index in np.flatnonzero(outside > max_outside):
        rejected.append({"index": int(index), "reason": f"{outside[index]:.0%} of the "
                         "landmarks lie outside the image"})
    mean, _ = generalized_procrustes(points)
    aligned = align_shapes(points, mean)
    distance = np.linalg.norm(aligned - mean, axis=(1, 2))
    median = np.median(distance)
    robust_sd = stats.median_abs_deviation(distance, scale="normal")
    for index in np.flatnonzero(distance > median + max_shape_distance * robust_sd):
        if not any(r["index"] == index for r in rejected):
            rejected.append(
                {
                    "index": int(index),
                    "reason": "landmarks far from the other faces' "
                    f"(Procrustes distance to the mean {distance[index]:.3f}, median "
                    f"{median:.3f})",
                }
            )
    keep = np.setdiff1d(np.arange(len(images)), [r["index"] for r in rejected])
    return FaceSet(
        images[keep],
        points[keep],
        keep,
        sorted(rejected, key=lambda r: r["index"]),
        f"skimage.data.lfw_subset() faces, upsampled 25 -> {size} px, "
        "dlib's 68 landmarks",
    )


# --------------------------------------------------------------------------------------
# Folders of face images
# --------------------------------------------------------------------------------------

@dataclass
class FaceFolder:
    """Face images grouped by identity.

    images : list of (H, W) or (H, W, 3) uint8 arrays (sizes may differ).
    labels : (N,) int identity of each image, an index into ``names``.
    names : identity names (the sub-folder names).
    paths : the file of each image.
    problems : ``(path, reason)`` for every file or folder that gave no image.
    """
    images: list
    labels: np.ndarray
    names: list
    paths: list
    problems: list = field(default_factory=list)

    def __len__(self):
        return len(self.images)


def _read_image(path: Path) -> np.ndarray:
    """An (H, W) grey or (H, W, 3) RGB uint8 image; Pillow raises on truncated files."""
    from PIL import Image
    with Image.open(path) as image:
        image.load()
        if image.mode not in ("L", "RGB"):
            grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
            image = image.convert("L" if grey else "RGB")
        pixels = np.asarray(image)
    if min(pixels.shape[:2]) < 2:
        raise ValueError(f"image of shape {pixels.shape} is too small")
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def load_face_folder(
    root, extensions=IMAGE_EXTENSIONS, progress: bool = True
) -> FaceFolder:
    """Load ``root/<identity>/<image files>``: one sub-folder per identity.

    Files with other extensions are ignored. An unreadable image, an identity folder
    with no readable image, and an image directly in ``root`` are reported in
    ``problems``; a ``root`` that is missing or yields no image raises an error listing
    them.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"face folder {root} does not exist or is not a folder")
    extensions = tuple(e.lower() for e in extensions)
    problems = [
        (str(p), "image outside any identity folder")
        for p in sorted(root.iterdir())
        if p.is_file() and p.suffix.lower() in extensions
    ]
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    files = [(folder, path) for folder in folders for path in sorted(folder.iterdir())
             if path.is_file() and path.suffix.lower() in extensions]
    files = progress_bar(files, desc=f"reading {root.name}", unit="image",
                         enabled=progress and len(files) > 200)
    images, labels, names, paths = [], [], [], []
    label_of = {}
    for folder, path in files:
        try:
            image = _read_image(path)
        except Exception as error:  # every decoder raises its own types
            problems.append((str(path), f"unreadable image: {error}"))
            continue
        if folder.name not in label_of:
            label_of[folder.name] = len(names)
            names.append(folder.name)
        images.append(image)
        labels.append(label_of[folder.name])
        paths.append(path)
    for folder in folders:
        if folder.name not in label_of:
            problems.append((str(folder), "identity folder with no readable image"))
    if not images:
        listed = "; ".join(f"{p}: {r}" for p, r in problems[:5]) or "no sub-folders"
        raise ValueError(
            f"no readable face image in {root} (expected one sub-folder of "
            f"{'/'.join(extensions)} images per identity); {listed}"
        )
    return FaceFolder(images, np.array(labels, dtype=np.int64), names, paths, problems)


# --------------------------------------------------------------------------------------
# LFW
# --------------------------------------------------------------------------------------

@dataclass
class LFWPairs:
    """LFW's images and its verification pairs.

    faces : the images, grouped by person (`FaceFolder`).
    pairs : (P, 2) indices into ``faces.images``; same : (P,) bool, same person or not;
    folds : (P,) the fold of each pair (10 folds of 600 in ``pairs.txt``).
    pairs_file : the pairs file read, or None when none was found.
    problems : unreadable images and pairs that name missing images.
    """
    faces: FaceFolder
    pairs: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    pairs_file: Path | None
    problems: list = field(default_factory=list)


_LFW_IMAGE_DIRS = (
    "",
    "lfw",
    "lfw_funneled",
    "lfw-deepfunneled",
    "lfw_home/lfw_funneled",
    "lfw_home/lfw",
    "lfw_home/lfw-deepfunneled",
)


def _looks_like_lfw_images(folder: Path) -> bool:
    for person in folder.iterdir():
        if person.is_dir() and any(p.name.startswith(person.name + "_") and _is_image(p)
                                   for p in person.iterdir()):
            return True
    return False


def _parse_pairs(path: Path):
    """Read pairs.txt (header "folds pairs_per_fold") or pairsDevTrain/Test.txt
    (header "pairs"): lines "name i j" (same person) and "name1 i name2 j"."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines or not all(token.isdigit() for token in lines[0]):
        raise ValueError(f"{path}: the first line must give the number of pairs "
                         "(e.g. '10 300' or '1100')")
    header = [int(token) for token in lines[0]]
    per_fold = 2 * header[-1]
    entries = []
    for number, tokens in enumerate(lines[1:], start=2):
        if len(tokens) == 3 and tokens[1].isdigit() and tokens[2].isdigit():
            entries.append(
                ((tokens[0], int(tokens[1])), (tokens[0], int(tokens[2])), True)
            )
        elif len(tokens) == 4 and tokens[1].isdigit() and tokens[3].isdigit():
            entries.append(
                ((tokens[0], int(tokens[1])), (tokens[2], int(tokens[3])), False)
            )
        else:
            raise ValueError(f"{path}, line {number}: expected 'name i j' or "
                             f"'name1 i name2 j', got {' '.join(tokens)!r}")
    expected = per_fold * (header[0] if len(header) == 2 else 1)
    if len(entries) != expected:
        raise ValueError(f"{path}: the header announces {expected} pairs, the file has "
                         f"{len(entries)} (truncated?)")
    return entries, per_fold


def load_lfw(root, pairs_file: str = "pairs.txt", progress: bool = True) -> LFWPairs:
    """Load LFW from ``root``: the standard layout (``root/<Name>/<Name>_0001.jpg``, or
    ``root/lfw/...``, with ``pairs.txt`` beside the images or one folder up) or
    scikit-learn's cache (``root`` = its data home or ``lfw_home``, images in
    ``lfw_home/lfw_funneled``, ``pairs.txt`` in ``lfw_home``). ``pairs_file`` may name
    ``pairsDevTrain.txt`` or ``pairsDevTest.txt`` instead."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LFW folder {root} does not exist or is not a folder")
    image_dir = next(
        (
            root / sub
            for sub in _LFW_IMAGE_DIRS
            if (root / sub).is_dir() and _looks_like_lfw_images(root / sub)
        ),
        None,
    )
    if image_dir is None:
        raise FileNotFoundError(
            f"no LFW images under {root}: expected <Name>/<Name>_0001.jpg folders in "
            f"it or in one of {', '.join(s for s in _LFW_IMAGE_DIRS if s)}"
        )
    faces = load_face_folder(image_dir, progress=progress)
    problems = list(faces.problems)
    pairs_path = next(
        (
            p
            for p in (
                image_dir / pairs_file,
                image_dir.parent / pairs_file,
                root / pairs_file,
            )
            if p.is_file()
        ),
        None,
    )
    if pairs_path is None:
        problems.append((str(image_dir), f"no {pairs_file} beside or above the images: "
                         "no verification pairs"))
        empty = np.zeros((0, 2), dtype=np.int64)
        return LFWPairs(faces, empty, np.zeros(0, bool), np.zeros(0, np.int64), None,
                        problems)
    index_of = {}
    number = re.compile(r"_(\d+)$")
    for i, path in enumerate(faces.paths):
        match = number.search(path.stem)
        if match:
            index_of[(path.parent.name, int(match.group(1)))] = i
    entries, per_fold = _parse_pairs(pairs_path)
    pairs, same, folds = [], [], []
    for position, (first, second, is_same) in enumerate(entries):
        missing = [f"{name}_{k:04d}" for name, k in (first, second) if (name, k) not in
                   index_of]
        if missing:
            problems.append((str(pairs_path), f"pair {position + 1} names missing or "
                             f"unreadable image(s) {', '.join(missing)}"))
            continue
        pairs.append((index_of[first], index_of[second]))
        same.append(is_same)
        folds.append(position // per_fold)
    return LFWPairs(
        faces,
        np.array(pairs, dtype=np.int64).reshape(-1, 2),
        np.array(same, dtype=bool),
        np.array(folds, dtype=np.int64),
        pairs_path,
        problems,
    )


def load_faces(source="lfw_subset", max_images: int | None = None, seed=0) -> FaceSet:
    """Landmarked faces from a source the book's chapters can be pointed at.

    source : ``"lfw_subset"`` (the embedded default, `lfw_subset`), or a folder: LFW in
        either layout (`load_lfw`) or one sub-folder per identity (`load_face_folder`),
        e.g. FEI. Folder images are landmarked by dlib's detector and 68-point
        predictor; images in which it finds no face are recorded in ``rejected``, as are
        unreadable files (with ``index`` -1 and their path in the reason).
    max_images : keep at most this many folder images, drawn at random with ``seed``
        (LFW holds 13,233).
    """
    if isinstance(source, str) and source == "lfw_subset":
        return lfw_subset()
    root = Path(source)
    try:
        folder = load_lfw(root, progress=True).faces
    except FileNotFoundError:
        folder = load_face_folder(root)
    rejected = [{"index": -1, "reason": f"{path}: {reason}"} for path, reason in
                folder.problems]
    keep = np.arange(len(folder))
    if max_images is not None and len(keep) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_images,
                                                          replace=False))
    images = [folder.images[i] for i in keep]
    if any(image.ndim == 3 for image in images):  # one kind: grey images become RGB
        images = [image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
                  for image in images]
    found = dlib_landmarks(images, on_missing="skip")
    for position in found.missing:
        rejected.append({"index": int(keep[position]), "reason": "dlib's detector "
                         f"found no face in {folder.paths[keep[position]]}"})
    if len(found.indices) == 0:
        raise ValueError(f"dlib's detector found no face in any image of {root}")
    keep, images, points = keep[found.indices], [images[i] for i in found.indices], \
        found.points
    same_size = len({image.shape for image in images}) == 1
    return FaceSet(np.stack(images) if same_size else images, points, keep, rejected,
                   f"{root}: {len(keep)} faces, dlib's 68 landmarks")


# --------------------------------------------------------------------------------------
# Synthetic identity sets
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Nuisance:
    """What varies between images of one identity (all zero: identical images).

    jitter : within-identity parameter jitter, in units of each dimension's standard
        deviation (0.3: an image's parameters are the identity's plus N(0, 0.3 sd)).
    illumination : amplitude of a linear shading gradient in a random direction; pixels
        are multiplied by 1 + a * (distance along the direction / half the image side),
        with a uniform in [-illumination, illumination].
    rotation : in-plane rotation, standard deviation in degrees.
    scale : log-scale standard deviation (0.05: about 5% size changes).
    shift : translation standard deviation, as a fraction of the image side.
    noise : standard deviation of additive Gaussian pixel noise (grey levels / 255).

    Rotation, scale and shift move the face (and its landmarks) in the image before any
    alignment; aligning with the returned exact landmarks undoes them up to resampling,
    while landmarks re-detected by dlib carry their own errors.
    """
    jitter: float = 0.3
    illumination: float = 0.3
    rotation: float = 5.0
    scale: float = 0.05
    shift: float = 0.03
    noise: float = 0.03

    def __post_init__(self):
        for name in ("jitter", "illumination", "rotation", "scale", "shift", "noise"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(
                    f"Nuisance.{name}: expected a finite value >= 0, got {value}"
                )

    @classmethod
    def at(cls, image: float = 1.0, jitter: float | None = None) -> "Nuisance":
        """The default nuisance with its image part (illumination, pose, noise) scaled
        by ``image`` and its parameter jitter by ``jitter`` (default: also ``image``),
        so a sweep can vary one strength, or the two apart."""
        jitter = image if jitter is None else jitter
        for name, value in (("image", image), ("jitter", jitter)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(
                    f"nuisance strength {name}: expected >= 0, got {value}"
                )
        default = cls()
        return cls(jitter=default.jitter * jitter,
                   illumination=default.illumination * image,
                   rotation=default.rotation * image, scale=default.scale * image,
                   shift=default.shift * image, noise=default.noise * image)


@dataclass
class IdentitySet:
    """Synthetic identities with several images each.

    images : (N, S, S) or (N, S, S, 3) uint8; landmarks : (N, 68, 2) their exact
    landmarks; labels : (N,) identity of each image; params : (N, n_params) the
    parameters each image was rendered from; identity_params : (n_identities,
    n_params);
    nuisance : the `Nuisance` used.
    """
    images: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    params: np.ndarray
    identity_params: np.ndarray
    nuisance: Nuisance


def identity_set(space, n_identities: int, n_per_identity: int, nuisance=1.0, seed=0,
                 size: int = 150, margin: int = 0) -> IdentitySet:
    """Identities drawn in ``space`` (Chang & Tsao's N(0, sqrt(eigenvalue)) per
    dimension), ``n_per_identity`` images each, with nuisance.

    nuisance : a strength (``Nuisance.at(strength)``: 0 gives identical images per
        identity, 1 the default `Nuisance`) or a `Nuisance`.
    The random draws do not depend on the strength, so a sweep over strengths changes
    only how far each image moves, never which way.
    """
    n_identities = positive_int(n_identities, "n_identities")
    n_per_identity = positive_int(n_per_identity, "n_per_identity")
    if not isinstance(nuisance, Nuisance):
        nuisance = Nuisance.at(float(nuisance))
    rng = np.random.default_rng(seed)
    n_images = int(n_identities) * int(n_per_identity)
    identity_params = space.sample(n_identities, rng)
    labels = np.repeat(np.arange(n_identities), n_per_identity)
    draws = {  # standard draws, scaled below: the same faces at every strength
        "jitter": rng.standard_normal((n_images, space.n_params)),
        "direction": rng.uniform(0, 2 * np.pi, n_images),
        "illumination": rng.uniform(-1, 1, n_images),
        "rotation": rng.standard_normal(n_images),
        "scale": rng.standard_normal(n_images),
        "shift": rng.standard_normal((n_images, 2)),
        "noise_seed": int(rng.integers(2 ** 31)),
    }
    params = identity_params[labels] + nuisance.jitter * draws["jitter"] * np.sqrt(
        space.eigenvalues_)
    images, landmarks = space.synthesize(params, size=size, margin=margin)
    side = images.shape[1]
    grey = images.ndim == 3
    batch = torch.from_numpy(images[:, None] if grey else images.transpose(0, 3, 1, 2))
    # pose: a similarity about the image centre, applied to pixels and landmarks alike
    angle = np.deg2rad(nuisance.rotation * draws["rotation"])
    scale = np.exp(nuisance.scale * draws["scale"])
    shift = nuisance.shift * side * draws["shift"]
    centre = (side - 1) / 2
    rotation = (
        np.stack(
            [
                np.stack([np.cos(angle), -np.sin(angle)], -1),
                np.stack([np.sin(angle), np.cos(angle)], -1),
            ],
            -2,
        )
        * scale[:, None, None]
    )
    landmarks = np.einsum("nij,npj->npi", rotation, landmarks - centre) + centre + \
        shift[:, None]
    # grid_sample needs output -> input: the inverse similarity, in normalised
    # coordinates
    inverse = np.linalg.inv(rotation)
    offset = -np.einsum("nij,nj->ni", inverse, shift) / centre
    theta = torch.from_numpy(
        np.concatenate([inverse, offset[:, :, None]], axis=2)
    ).float()
    grid = F.affine_grid(theta, list(batch.shape), align_corners=True)
    background = torch.tensor(space.background, dtype=batch.dtype)
    moved = (
        F.grid_sample(
            batch - background,
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        + background
    )
    # illumination: a multiplicative linear gradient
    coords = (torch.arange(side, dtype=torch.float32) - centre) / centre
    direction = torch.from_numpy(np.stack([np.cos(draws["direction"]),
                                           np.sin(draws["direction"])], 1)).float()
    ramp = direction[:, 0, None, None] * coords[None, None, :] + \
        direction[:, 1, None, None] * coords[None, :, None]
    amplitude = torch.from_numpy(nuisance.illumination * draws["illumination"]).float()
    moved = moved * (1 + amplitude[:, None, None, None] * ramp[:, None])
    noise = torch.randn(moved.shape, generator=torch.Generator().manual_seed(
        draws["noise_seed"]))
    moved = (moved + nuisance.noise * noise).clamp(0, 1)
    out = (moved * 255 + 0.5).to(torch.uint8).numpy()
    out = out[:, 0] if grey else out.transpose(0, 2, 3, 1)
    return IdentitySet(out, landmarks, labels, params, identity_params, nuisance)
