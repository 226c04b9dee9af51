"""LFW's standard 10-fold verification protocol, for any feature extractor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._validation import feature_matrix
from .metrics import Verification, distances, verify

__all__ = ["DescriptorExtractor", "LFWResult", "lfw_pairs_protocol"]


class DescriptorExtractor:
    """An ``extractor`` for :func:`lfw_pairs_protocol`: dlib's detector and 68-point
    predictor place the landmarks, `facelin.faces.face_chips` aligns the face, and
    ``model`` (e.g. `facelin.experiment.network`) gives the responses of ``layer``.
    Where the detector finds no face, the predictor is given the central half of the
    image (LFW's images are centred on the face); ``n_undetected`` counts them."""

    def __init__(self, model, layer: str = "descriptor", batch_size: int = 50,
                 progress: bool = True):
        self.model, self.layer = model, layer
        self.batch_size, self.progress = batch_size, progress
        self.n_undetected = 0

    def __call__(self, images) -> np.ndarray:
        from .. import extract
        from ..faces import face_chips, landmarks

        images = [image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
                  for image in images]
        found = landmarks(images, on_missing="box")  # the box: the image's central half
        self.n_undetected += len(found.missing)
        chips = face_chips(images, found.points)
        return extract.record(self.model, chips, {self.layer: "all"},
                              batch_size=self.batch_size,
                              progress=self.progress).values.double().numpy()


@dataclass
class LFWResult:
    """Per-fold accuracy with the threshold chosen on the other nine folds, and the
    pooled verification metrics."""

    fold_accuracy: np.ndarray
    verification: Verification
    paths: list = field(default_factory=list)  # the images scored, in feature-row order

    @property
    def accuracy(self) -> float:
        return float(self.fold_accuracy.mean())

    @property
    def accuracy_std(self) -> float:
        return float(self.fold_accuracy.std(ddof=1))


def _best_threshold(scores, same) -> float:
    candidates = np.unique(scores)
    accuracy = [((scores >= t) == same).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def lfw_pairs_protocol(root, extractor: Callable, metric: str = "euclidean",
                       pairs_file: str = "pairs.txt", progress: bool = True
                       ) -> LFWResult:
    """LFW's 10-fold verification protocol for any feature extractor.

    ``root`` is an LFW folder as :func:`facelin.datasets.load_lfw` reads it (the
    standard layout or scikit-learn's cache). ``extractor`` maps a list of images
    ((H, W) or (H, W, 3) uint8 arrays: those the pairs name, in the order of
    ``LFWResult.paths``) to an (n, d) feature array. For each fold the accept threshold
    is the one that maximises accuracy on the nine other folds; the reported accuracy is
    the mean over folds (the figure dlib's 99.38% refers to). Every pair must be usable:
    a missing pairs file, or a pair naming a missing or unreadable image, raises an
    error naming it.
    """
    from ..datasets import load_lfw

    lfw = load_lfw(root, pairs_file=pairs_file, progress=progress)
    if lfw.pairs_file is None:
        raise FileNotFoundError(f"no {pairs_file} found with the LFW images under "
                                f"{root}")
    broken = [reason for path, reason in lfw.problems if path == str(lfw.pairs_file)]
    if broken:
        raise FileNotFoundError(f"{lfw.pairs_file}: {len(broken)} pairs cannot be "
                                f"scored, e.g. {broken[0]}")
    used, pairs = np.unique(lfw.pairs, return_inverse=True)
    pairs = pairs.reshape(lfw.pairs.shape)
    features = feature_matrix(extractor([lfw.faces.images[i] for i in used]),
                            "extractor output")
    if len(features) != len(used):
        raise ValueError(f"extractor returned {len(features)} rows for {len(used)} "
                         "images")
    d = distances(features, metric=metric)
    scores = -d[pairs[:, 0], pairs[:, 1]]
    accuracy = []
    for f in np.unique(lfw.folds):
        test = lfw.folds == f
        threshold = _best_threshold(scores[~test], lfw.same[~test])
        accuracy.append(((scores[test] >= threshold) == lfw.same[test]).mean())
    verification = verify(features, pairs=pairs, same=lfw.same, metric=metric)
    return LFWResult(fold_accuracy=np.array(accuracy), verification=verification,
                     paths=[lfw.faces.paths[i] for i in used])
