"""Renders beyond the clean stimuli, and the responses of a network's units to them.

Claim 1's controls need faces shown more than once: every face in several nuisance
versions (shading, small rotation, scale and shift, pixel noise: the `Nuisance` model of
:mod:`facelin.datasets`), and faces rendered from decoded parameters. The renders and
the responses are cached on disk under :func:`facelin.cache.cache_dir`, the
responses keyed by a hash of the chips themselves, so a chapter re-run reuses them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from . import __version__, cache, experiment
from .datasets import Nuisance, identity_set
from .facespace import FaceSpace

__all__ = ["NuisanceRenders", "nuisance_renders", "record", "record_nuisance",
           "reconstruct", "detect", "IMAGE_NUISANCE"]

CACHE_FORMAT = 1
# Image nuisance only: the face's parameters stay fixed, so every render of a face is
# the same face seen differently.
IMAGE_NUISANCE = Nuisance(jitter=0.0)


def _cached(kind: str, key: dict, compute) -> dict:
    return cache.tensors(kind, {"format": CACHE_FORMAT, "facelin": __version__, **key},
                         compute)


@dataclass
class NuisanceRenders:
    """``n_faces`` new faces, each rendered clean once and in ``n_versions`` nuisance
    versions.

    params : (n_faces, n_params) the faces' parameters (as drawn);
    clean_chips : (n_faces, 3, 150, 150) uint8; clean_landmarks : (n_faces, 68, 2);
    chips : (n_faces * n_versions, 3, 150, 150) uint8 nuisance renders, face by face;
    landmarks : their exact landmarks; faces : (n_faces * n_versions,) face of each.
    """

    params: np.ndarray
    clean_chips: torch.Tensor
    clean_landmarks: np.ndarray
    chips: torch.Tensor
    landmarks: np.ndarray
    faces: np.ndarray


def nuisance_renders(
    space: FaceSpace,
    n_faces: int = 300,
    n_versions: int = 4,
    nuisance: Nuisance = IMAGE_NUISANCE,
    seed: int = 1,
) -> NuisanceRenders:
    """Faces drawn in ``space`` with ``seed`` (use a seed other than the stimuli's, so
    the faces are new), rendered by :func:`facelin.datasets.identity_set` with
    ``nuisance`` and without; the renders are the chips, fed to the networks without
    realignment, so rotation, scale and shift stand for alignment errors. Cached."""

    def compute():
        noisy = identity_set(space, n_faces, n_versions, nuisance=nuisance, seed=seed)
        clean = identity_set(space, n_faces, 1, nuisance=0.0, seed=seed)
        if not np.array_equal(clean.identity_params, noisy.identity_params):
            raise RuntimeError("the clean and nuisance renders drew different faces")
        return {
            "params": torch.from_numpy(noisy.identity_params),
            "clean_chips": experiment.to_chips(clean.images / 255.0),
            "clean_landmarks": torch.from_numpy(clean.landmarks),
            "chips": experiment.to_chips(noisy.images / 255.0),
            "landmarks": torch.from_numpy(noisy.landmarks),
            "faces": torch.from_numpy(noisy.labels),
        }

    key = {
        "space": experiment.space_fingerprint(space),
        "n": n_faces,
        "versions": n_versions,
        "nuisance": repr(nuisance),
        "seed": seed,
    }
    data = _cached("nuisance-renders", key, compute)
    return NuisanceRenders(
        params=data["params"].numpy(),
        clean_chips=data["clean_chips"],
        clean_landmarks=data["clean_landmarks"].numpy(),
        chips=data["chips"],
        landmarks=data["landmarks"].numpy(),
        faces=data["faces"].numpy(),
    )


def _unit_spec(model, layers, units_per_layer: int) -> dict:
    """The units :func:`facelin.experiment.population` records: all of a layer with at
    most ``units_per_layer`` units, that many sampled (with the recording seed) from a
    larger one."""
    counts = {row["stage"]: row["units"] for row in model.stage_table()}
    unknown = [name for name in layers if name not in counts]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; see model.layer_names()")
    return {
        name: "all" if counts[name] <= units_per_layer else units_per_layer
        for name in layers
    }


def record(
    chips,
    landmarks,
    layers,
    network: str = "dlib-resnet",
    pretrained: bool = True,
    units_per_layer: int = 512,
    seed: int = 0,
) -> dict:
    """Responses of the units :func:`facelin.experiment.population` records (same
    ``units_per_layer`` and ``seed``) of each of ``layers`` to new chips
    (N, 3, 150, 150) uint8 with landmarks (N, 68, 2), in one pass: ``{layer: (N, units)
    float32}``. Cached under a hash of the chips, of the network's inputs cut from the
    first two (so a change in how a network cuts its chips is a new entry), of the
    network and of the units."""
    from . import extract

    chips = torch.as_tensor(chips)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    digest = hashlib.sha1(chips.contiguous().numpy().tobytes())
    digest.update(np.ascontiguousarray(landmarks).tobytes())
    first = experiment.inputs(chips[:2], landmarks[:2], network)
    digest.update(first.contiguous().numpy().tobytes())

    def batches(size=50):  # a network's float chips, one batch at a time
        for start in range(0, len(chips), size):
            stop = start + size
            yield experiment.inputs(chips[start:stop], landmarks[start:stop], network)

    def compute():
        model = experiment.network(network, pretrained)
        spec = _unit_spec(model, layers, units_per_layer)
        recorded = extract.record(model, batches(), spec, seed=seed, progress=False)
        return {
            name: recorded.values[:, s.start : s.stop].clone()
            for name, s in recorded.layers.items()
        }

    key = {
        "chips": digest.hexdigest()[:20],
        "network": network,
        "pretrained": pretrained,
        "layers": list(layers),
        "units": units_per_layer,
        "seed": seed,
    }
    return _cached("claim1-responses", key, compute)


def record_nuisance(
    renders: NuisanceRenders, layers, network: str = "dlib-resnet",
    pretrained: bool = True
) -> dict:
    """:func:`record` of ``layers`` for the clean renders of ``renders`` and for their
    nuisance renders, the latter cut with the landmarks of the face's clean render (no
    realignment: pose changes stand for alignment errors). ``{"clean": {layer: (faces,
    units)}, "nuisance": {layer: (renders, units)}}``."""
    moved = renders.clean_landmarks[renders.faces]
    return {
        "clean": record(renders.clean_chips, renders.clean_landmarks, layers, network,
                        pretrained=pretrained),
        "nuisance": record(renders.chips, moved, layers, network,
                           pretrained=pretrained),
    }


def reconstruct(space: FaceSpace, decoded, reference_params):
    """Faces rendered from decoded normalised parameters (n, d), normalised against
    ``reference_params`` (the stimuli's raw parameters): ``(chips (n, 3, S, S) uint8,
    landmarks (n, 68, 2))``."""
    decoded = np.asarray(decoded, dtype=np.float64)
    if decoded.ndim != 2 or not np.isfinite(decoded).all():
        raise ValueError("decoded must be a finite 2-d array (faces x parameters)")
    images, marks = space.synthesize(space.denormalize(decoded, reference_params))
    return experiment.to_chips(images), marks


def detect(chips, upsample: int = 1):
    """dlib's HOG face detector and 68-point predictor on chips (N, 3, S, S) uint8:
    ``(found (N,) bool, landmarks (found.sum(), 68, 2))`` for the chips where it finds a
    face."""
    from .faces import landmarks

    images = torch.as_tensor(chips).permute(0, 2, 3, 1).contiguous().numpy()
    result = landmarks(images, upsample=upsample, on_missing="skip")
    found = np.zeros(len(images), dtype=bool)
    found[result.indices] = True
    return found, result.points
