"""Identification and verification metrics on plain feature matrices (one row per
image), so any representation is scored the same way: a CNN's descriptors, parameters
decoded from its units, responses predicted from face parameters, the parameters
themselves, or pixels.

Rank-1 identification against a gallery of one image per identity; the verification ROC
of all pairs (scikit-learn's ``roc_curve``), its AUC, equal error rate (EER) and
true-accept rate (TAR) at fixed false-accept rates (FAR); whitening; fitting and
evaluation identities; rank agreement of two representations' distances.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats
from scipy.spatial.distance import cdist
from sklearn import metrics as skm
from .._validation import feature_matrix, label_array

__all__ = [
    "METRICS", "METRIC_OPTIONS", "FARS", "STATISTICS", "distances", "Identification",
    "identify", "roc_curve", "verification_metrics", "Verification", "verify",
    "all_pairs", "split_identities", "gallery_mask", "Whitener", "distance_agreement",
]

METRICS = ("euclidean", "cosine")
# every distance a route is scored with: (metric, whitened); the fitting identities pick
METRIC_OPTIONS = tuple((metric, whitened) for whitened in (False, True)
                       for metric in METRICS)
FARS = (1e-2, 1e-3)
STATISTICS = ("rank1", "auc", "eer", "tar@far=0.01", "tar@far=0.001")


def distances(a, b=None, metric: str = "cosine") -> np.ndarray:
    """Pairwise distances (len(a), len(b)) between the rows of ``a`` and ``b`` (``b=a``
    when omitted): ``cosine`` is 1 - cosine similarity, ``euclidean`` the L2
    distance."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a = feature_matrix(a, "a")
    b = a if b is None else feature_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have {a.shape[1]} and {b.shape[1]} features")
    if metric == "cosine" and ((~a.any(1)).any() or (~b.any(1)).any()):
        raise ValueError("cosine distance is undefined for an all-zero feature vector")
    return cdist(a, b, metric)


@dataclass
class Identification:
    """Closed-set identification: ``cmc[k-1]`` is the fraction of probes whose identity
    is among the ``k`` nearest gallery identities; ``ranks`` each probe's rank (1 =
    nearest)."""

    cmc: np.ndarray
    n_probes: int
    n_identities: int
    ranks: np.ndarray

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        return float(self.cmc[min(k, len(self.cmc)) - 1])


def identify(gallery, gallery_labels, probes, probe_labels, metric: str = "cosine"
             ) -> Identification:
    """Rank-k identification of ``probes`` against a labelled ``gallery``.

    A probe's distance to an identity is its distance to the nearest gallery image of
    that identity; its rank is one plus the number of other identities at least as close
    (ties count against the probe). Every probe identity must be in the gallery (closed
    set).
    """
    gallery = feature_matrix(gallery, "gallery")
    probes = feature_matrix(probes, "probes")
    gallery_labels = label_array(gallery_labels, len(gallery), "gallery_labels")
    probe_labels = label_array(probe_labels, len(probes), "probe_labels")
    identities, gallery_codes = np.unique(gallery_labels, return_inverse=True)
    missing = set(np.unique(probe_labels).tolist()) - set(identities.tolist())
    if missing:
        raise ValueError("probe identities missing from the gallery: "
                         f"{sorted(missing)[:10]}")
    d = distances(probes, gallery, metric)
    per_identity = np.full((len(probes), len(identities)), np.inf)
    for code in range(len(identities)):
        per_identity[:, code] = d[:, gallery_codes == code].min(axis=1)
    true_code = np.searchsorted(identities, probe_labels)
    true_distance = per_identity[np.arange(len(probes)), true_code]
    # counts the true identity too
    rank = (per_identity <= true_distance[:, None]).sum(1)
    cmc = np.array([(rank <= k).mean() for k in range(1, len(identities) + 1)])
    return Identification(cmc=cmc, n_probes=len(probes), n_identities=len(identities),
                          ranks=rank)


def roc_curve(scores, same, sample_weight=None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of similarity ``scores`` for pairs labelled ``same`` (True = same identity):
    scikit-learn's ``roc_curve`` with every threshold kept. Returns false-accept rates,
    true-accept rates and thresholds (decreasing)."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError("scores and same must be 1-d of equal length, got "
                         f"{scores.shape} and {same.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or Inf")
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both same and different pairs, got {n_pos} and {n_neg}")
    return skm.roc_curve(same, scores, sample_weight=sample_weight,
                         drop_intermediate=False)


def _eer(far, tar) -> float:
    """Equal error rate: where the ROC staircase crosses FAR = 1 - TAR, i.e. the
    smallest, over ROC points, of the larger of the two error rates (on a staircase the
    crossing is the corner that minimises it)."""
    return float(np.minimum(np.maximum(far, 1.0 - tar).min(), 1.0))


def _tar_at_far(far, tar, target: float) -> float:
    """Highest true-accept rate whose false-accept rate does not exceed ``target``."""
    return float(tar[far <= target].max())


def verification_metrics(scores, same, fars: Sequence[float] = FARS) -> dict:
    """AUC, EER and TAR at each of ``fars`` of similarity ``scores`` for pairs
    ``same``."""
    far, tar, _ = roc_curve(scores, same)
    out = {"auc": float(skm.auc(far, tar)), "eer": _eer(far, tar)}
    out.update({f"tar@far={f:g}": _tar_at_far(far, tar, f) for f in fars})
    return out


@dataclass
class Verification:
    """Pooled verification metrics of a set of pairs."""

    far: np.ndarray
    tar: np.ndarray
    auc: float
    eer: float
    tar_at_far: dict

    def summary(self) -> dict:
        out = {"auc": self.auc, "eer": self.eer}
        out.update({f"tar@far={f:g}": v for f, v in self.tar_at_far.items()})
        return out


def all_pairs(labels) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of rows (m, 2), and whether its two images share an
    identity."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    return np.stack([i, j], axis=1), labels[i] == labels[j]


def verify(features, labels=None, pairs=None, same=None, metric: str = "cosine",
           fars: Sequence[float] = FARS) -> Verification:
    """Verification ROC, AUC, EER and TAR at fixed FARs, pooled over pairs.

    Give either ``labels`` (one identity per row: every pair of rows is scored) or
    ``pairs`` ((m, 2) row indices) with ``same`` (m booleans). Intervals over identities
    come from :func:`bootstrap`.
    """
    features = feature_matrix(features, "features")
    n = len(features)
    if (labels is None) == (pairs is None):
        raise ValueError("give exactly one of labels or pairs")
    if labels is not None:
        pairs, same = all_pairs(label_array(labels, n, "labels"))
    else:
        pairs = np.asarray(pairs, dtype=np.int64)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (m, 2), got {pairs.shape}")
        if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"pairs index rows outside [0, {n})")
        if same is None:
            raise ValueError("pairs need same (one boolean per pair)")
        same = np.asarray(same, dtype=bool)
    d = distances(features, metric=metric)
    scores = -d[pairs[:, 0], pairs[:, 1]]
    far, tar, _ = roc_curve(scores, same)
    pooled = verification_metrics(scores, same, fars)
    return Verification(far=far, tar=tar, auc=pooled["auc"], eer=pooled["eer"],
                        tar_at_far={f: pooled[f"tar@far={f:g}"] for f in fars})


# --------------------------------------------------------------------------------------
# Fitting and evaluation identities


def split_identities(labels, fitting_fraction: float = 0.5, seed: int = 0
                     ) -> np.ndarray:
    """True for the rows of the fitting identities, False for the evaluation identities:
    a ``fitting_fraction`` of the identities drawn at random with ``seed``, so that no
    identity is on both sides."""
    labels = np.asarray(labels)
    identities = np.unique(labels)
    n_fitting = int(round(fitting_fraction * len(identities)))
    if not 0 < n_fitting < len(identities):
        raise ValueError(f"fitting_fraction {fitting_fraction} of {len(identities)} "
                         "identities leaves one side empty")
    chosen = np.random.default_rng(seed).permutation(identities)[:n_fitting]
    return np.isin(labels, chosen)


def gallery_mask(labels) -> np.ndarray:
    """True for the first image of each identity (the gallery), False for the others
    (the probes). Every identity needs at least two images."""
    labels = np.asarray(labels)
    identities, first, counts = np.unique(labels, return_index=True, return_counts=True)
    if (counts < 2).any():
        raise ValueError(f"identities {identities[counts < 2][:10].tolist()} have a "
                         "single image: identification needs a gallery image and a "
                         "probe")
    mask = np.zeros(len(labels), dtype=bool)
    mask[first] = True
    return mask


class Whitener:
    """PCA whitening fitted on one set of features and applied to any other: centre by
    the fitted mean, project on the fitted principal axes, divide each by its standard
    deviation. Axes with variance below ``tolerance`` times the largest are dropped, so
    a rank-deficient fitting set (more features than images) stays well defined."""

    def __init__(self, tolerance: float = 1e-10):
        self.tolerance = tolerance

    def fit(self, features) -> "Whitener":
        x = feature_matrix(features, "features")
        if len(x) < 2:
            raise ValueError("whitening needs at least two rows")
        self.mean_ = x.mean(0)
        covariance = np.atleast_2d(np.cov(x - self.mean_, rowvar=False))
        variances, axes = np.linalg.eigh(covariance)
        keep = variances > self.tolerance * max(variances.max(), 1e-300)
        if not keep.any():
            raise ValueError("features have no variance to whiten")
        self.components_ = axes[:, keep] / np.sqrt(variances[keep])
        return self

    def transform(self, features) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise RuntimeError("call fit before transform")
        x = feature_matrix(features, "features")
        if x.shape[1] != len(self.mean_):
            raise ValueError(f"expected {len(self.mean_)} features, got {x.shape[1]}")
        return (x - self.mean_) @ self.components_


# --------------------------------------------------------------------------------------
# Agreement of two representations on which faces are alike


def _agreement(da: np.ndarray, db: np.ndarray, items: np.ndarray) -> float:
    i, j = np.triu_indices(len(items), k=1)
    keep = items[i] != items[j]  # a face and its bootstrap copy are not a pair
    a, b = items[i[keep]], items[j[keep]]
    return float(stats.spearmanr(da[a, b], db[a, b]).statistic)


def distance_agreement(a, b, metric_a: str = "euclidean", metric_b: str = "euclidean",
                       n_resamples: int = 0, level: float = 0.95, seed: int = 0):
    """Spearman rank correlation between the pairwise distances of the same items under
    two representations (rows of ``a`` and ``b``): 1 when they order every pair alike.

    With ``n_resamples`` > 0, returns ``(rho, low, high)``: the percentile interval from
    resampling the items (pairs between copies of one item are left out)."""
    a, b = feature_matrix(a, "a"), feature_matrix(b, "b")
    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"a and b need the same rows, at least 3; got {len(a)} and "
                         f"{len(b)}")
    da, db = distances(a, metric=metric_a), distances(b, metric=metric_b)
    rho = _agreement(da, db, np.arange(len(a)))
    if not n_resamples:
        return rho
    rng = np.random.default_rng(seed)
    values = [_agreement(da, db, rng.integers(0, len(a), len(a)))
              for _ in range(n_resamples)]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return rho, float(low), float(high)
