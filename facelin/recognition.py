"""Face identification and verification metrics, and the LFW pairs protocol.

All functions take plain feature matrices (one row per image), so any representation can
be scored the same way: a CNN's descriptors, parameters decoded from its units, responses
predicted from face parameters, or the parameters themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import stats

METRICS = ("cosine", "euclidean")


def _as_features(x, name: str) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (images x features), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        bad = np.unique(np.nonzero(~np.isfinite(x))[0])
        raise ValueError(f"{name} holds NaN or Inf in rows {bad[:10].tolist()}")
    return x


def _as_labels(labels, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have one label per row ({n}), got shape {labels.shape}")
    return labels


def distances(a, b=None, metric: str = "cosine") -> np.ndarray:
    """Pairwise distances between the rows of ``a`` and ``b`` (``b=a`` when omitted).

    ``cosine`` is 1 - cosine similarity; ``euclidean`` is the L2 distance.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a = _as_features(a, "a")
    b = a if b is None else _as_features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have {a.shape[1]} and {b.shape[1]} features")
    if metric == "cosine":
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        if (na == 0).any() or (nb == 0).any():
            raise ValueError("cosine distance is undefined for an all-zero feature vector")
        return 1.0 - (a / na[:, None]) @ (b / nb[:, None]).T
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


@dataclass
class Identification:
    """Closed-set identification: ``cmc[k-1]`` is the fraction of probes whose identity is
    among the ``k`` nearest gallery identities."""

    cmc: np.ndarray
    n_probes: int
    n_identities: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        return float(self.cmc[min(k, len(self.cmc)) - 1])


def identify(gallery, gallery_labels, probes, probe_labels, metric: str = "cosine"
             ) -> Identification:
    """Rank-k identification of ``probes`` against a labelled ``gallery``.

    A probe's distance to an identity is its distance to the nearest gallery image of that
    identity; the probe's rank is the position of its true identity in that ordering.
    Every probe identity must be in the gallery (closed set).
    """
    gallery = _as_features(gallery, "gallery")
    probes = _as_features(probes, "probes")
    gallery_labels = _as_labels(gallery_labels, len(gallery), "gallery_labels")
    probe_labels = _as_labels(probe_labels, len(probes), "probe_labels")
    identities, gallery_codes = np.unique(gallery_labels, return_inverse=True)
    missing = set(np.unique(probe_labels).tolist()) - set(identities.tolist())
    if missing:
        raise ValueError(f"probe identities missing from the gallery: {sorted(missing)[:10]}")
    d = distances(probes, gallery, metric)
    per_identity = np.full((len(probes), len(identities)), np.inf)
    for code in range(len(identities)):
        per_identity[:, code] = d[:, gallery_codes == code].min(axis=1)
    true_code = np.searchsorted(identities, probe_labels)
    true_distance = per_identity[np.arange(len(probes)), true_code]
    # Ties count against the probe: rank = number of identities at least as close.
    rank = (per_identity < true_distance[:, None]).sum(1) + 1
    cmc = np.array([(rank <= k).mean() for k in range(1, len(identities) + 1)])
    return Identification(cmc=cmc, n_probes=len(probes), n_identities=len(identities))


def roc_curve(scores, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of similarity ``scores`` for pairs labelled ``same`` (True = same identity).

    Returns false-accept rates, true-accept rates and thresholds, thresholds decreasing,
    one point per distinct score plus the origin (as scikit-learn's ``roc_curve`` with
    ``drop_intermediate=False``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(f"scores and same must be 1-d of equal length, got {scores.shape} "
                         f"and {same.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or Inf")
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both same and different pairs, got {n_pos} and {n_neg}")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order]
    last_of_value = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last_of_value]
    fps = (last_of_value + 1) - tps
    tar = np.r_[0.0, tps / n_pos]
    far = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s[last_of_value]]
    return far, tar, thresholds


def _auc(far, tar) -> float:
    return float(np.trapezoid(tar, far)) if hasattr(np, "trapezoid") else float(np.trapz(tar, far))


def _eer(far, tar) -> float:
    """Equal error rate: where the false-accept rate equals the false-reject rate,
    interpolated linearly between ROC points."""
    frr = 1.0 - tar
    diff = far - frr  # increases along the curve from -1 to +1
    i = int(np.nonzero(diff >= 0)[0][0])
    if i == 0 or diff[i] == 0:
        return float(far[i])
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def _tar_at_far(far, tar, target: float) -> float:
    """Highest true-accept rate whose false-accept rate does not exceed ``target``."""
    return float(tar[far <= target].max())


@dataclass
class Verification:
    """Verification metrics: pooled over all pairs, and per fold with a 95% interval."""

    far: np.ndarray
    tar: np.ndarray
    auc: float
    eer: float
    tar_at_far: dict
    folds: dict = field(default_factory=dict)  # metric name -> per-fold values

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float, float]:
        """Mean over folds and its ``level`` t-interval for a metric ('auc', 'eer',
        'tar@far=0.01', ...)."""
        values = np.asarray(self.folds[name], dtype=np.float64)
        mean = float(values.mean())
        if len(values) < 2:
            return mean, float("nan"), float("nan")
        half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(
            len(values))
        return mean, mean - half, mean + half

    def summary(self) -> dict:
        out = {"auc": self.auc, "eer": self.eer}
        out.update({f"tar@far={f:g}": v for f, v in self.tar_at_far.items()})
        return out


def _metrics(scores, same, fars) -> dict:
    far, tar, _ = roc_curve(scores, same)
    out = {"auc": _auc(far, tar), "eer": _eer(far, tar)}
    out.update({f"tar@far={f:g}": _tar_at_far(far, tar, f) for f in fars})
    return out


def all_pairs(labels) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of rows, and whether its two images share an identity."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    return np.stack([i, j], axis=1), labels[i] == labels[j]


def verify(features, labels=None, pairs=None, same=None, folds=None, metric: str = "cosine",
           n_folds: int = 10, fars: Sequence[float] = (1e-2, 1e-3), seed: int = 0
           ) -> Verification:
    """Verification ROC, AUC, EER and true-accept rates at fixed false-accept rates.

    Give either ``labels`` (one identity per row: every pair of rows is scored, and the
    identities are split into ``n_folds`` folds so that no identity is in two folds; a
    fold's pairs are those whose two images both belong to it) or ``pairs`` ((m, 2) row
    indices) with ``same`` (m booleans) and optionally ``folds`` (m fold ids). The pooled
    metrics use every pair; the per-fold values give the confidence intervals.
    """
    features = _as_features(features, "features")
    n = len(features)
    if (labels is None) == (pairs is None):
        raise ValueError("give exactly one of labels or pairs")
    if labels is not None:
        labels = _as_labels(labels, n, "labels")
        pairs, same = all_pairs(labels)
        identities = np.unique(labels)
        if len(identities) < n_folds:
            raise ValueError(f"{len(identities)} identities cannot be split into {n_folds} folds")
        rng = np.random.default_rng(seed)
        identity_fold = dict(zip(rng.permutation(identities).tolist(),
                                 np.arange(len(identities)) % n_folds))
        fold_of_row = np.array([identity_fold[x] for x in labels.tolist()])
        fa, fb = fold_of_row[pairs[:, 0]], fold_of_row[pairs[:, 1]]
        folds = np.where(fa == fb, fa, -1)  # cross-fold pairs count only in the pooled ROC
    else:
        pairs = np.asarray(pairs, dtype=np.int64)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (m, 2), got {pairs.shape}")
        if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"pairs index rows outside [0, {n})")
        if same is None:
            raise ValueError("pairs need same (one boolean per pair)")
        same = np.asarray(same, dtype=bool)
        folds = np.zeros(len(pairs), dtype=np.int64) if folds is None else np.asarray(folds)
    d = distances(features, metric=metric)
    scores = -d[pairs[:, 0], pairs[:, 1]]
    pooled = _metrics(scores, same, fars)
    per_fold: dict = {}
    for f in np.unique(folds[folds >= 0]):
        mask = folds == f
        if same[mask].all() or not same[mask].any():
            continue
        for name, value in _metrics(scores[mask], same[mask], fars).items():
            per_fold.setdefault(name, []).append(value)
    far, tar, _ = roc_curve(scores, same)
    return Verification(far=far, tar=tar, auc=pooled["auc"], eer=pooled["eer"],
                        tar_at_far={f: pooled[f"tar@far={f:g}"] for f in fars}, folds=per_fold)


# ---------------------------------------------------------------------------------------
# LFW's standard verification protocol


@dataclass
class LFWPairs:
    """The pairs of LFW's ``pairs.txt``: image paths, whether each pair is the same
    person, and the fold (0..9) of each pair."""

    paths: list
    pairs: np.ndarray
    same: np.ndarray
    folds: np.ndarray


def read_lfw_pairs(root) -> LFWPairs:
    """Parse ``<root>/pairs.txt`` (first line: folds and pairs per class, e.g. ``10 300``;
    then per fold the matched lines ``name i j`` and the mismatched lines
    ``name1 i name2 j``). Images are ``<root>/<name>/<name>_<i:04d>.jpg``, or under
    ``<root>/lfw/`` or ``<root>/lfw_funneled/`` when those folders hold them."""
    root = Path(root)
    pairs_file = root / "pairs.txt"
    if not pairs_file.is_file():
        raise FileNotFoundError(f"no pairs.txt in {root}")
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    try:
        n_folds, per_class = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise ValueError(f"{pairs_file}: first line must be '<folds> <pairs per class>'")
    expected = n_folds * 2 * per_class
    if len(lines) - 1 != expected:
        raise ValueError(f"{pairs_file}: header promises {expected} pairs, found {len(lines) - 1}")
    image_root = next((d for d in (root / "lfw", root / "lfw_funneled") if d.is_dir()), root)
    index: dict = {}
    pairs, same = [], []

    def image(name, number):
        path = str(image_root / name / f"{name}_{int(number):04d}.jpg")
        return index.setdefault(path, len(index))

    for k, parts in enumerate(lines[1:], start=2):
        if len(parts) == 3:
            pairs.append((image(parts[0], parts[1]), image(parts[0], parts[2])))
            same.append(True)
        elif len(parts) == 4:
            pairs.append((image(parts[0], parts[1]), image(parts[2], parts[3])))
            same.append(False)
        else:
            raise ValueError(f"{pairs_file}, line {k}: expected 3 or 4 fields, got {parts}")
    folds = np.repeat(np.arange(n_folds), 2 * per_class)
    paths = list(index)
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images named in pairs.txt are missing, "
                                f"e.g. {missing[0]}")
    return LFWPairs(paths=paths, pairs=np.array(pairs), same=np.array(same), folds=folds)


@dataclass
class LFWResult:
    """Per-fold accuracy with the threshold chosen on the other nine folds, and the
    pooled verification metrics."""

    fold_accuracy: np.ndarray
    verification: Verification

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


def lfw_pairs_protocol(root, extractor: Callable, metric: str = "euclidean") -> LFWResult:
    """LFW's 10-fold verification protocol for any feature extractor.

    ``extractor`` maps a list of image paths to an (n, d) feature array. For each fold the
    accept threshold is the one that maximises accuracy on the nine other folds; the
    reported accuracy is the mean over folds (the figure dlib's 99.38% refers to).
    """
    lfw = read_lfw_pairs(root)
    features = _as_features(extractor(lfw.paths), "extractor output")
    if len(features) != len(lfw.paths):
        raise ValueError(f"extractor returned {len(features)} rows for {len(lfw.paths)} images")
    d = distances(features, metric=metric)
    scores = -d[lfw.pairs[:, 0], lfw.pairs[:, 1]]
    accuracy = []
    for f in np.unique(lfw.folds):
        test = lfw.folds == f
        threshold = _best_threshold(scores[~test], lfw.same[~test])
        accuracy.append(((scores[test] >= threshold) == lfw.same[test]).mean())
    verification = verify(features, pairs=lfw.pairs, same=lfw.same, folds=lfw.folds,
                          metric=metric)
    return LFWResult(fold_accuracy=np.array(accuracy), verification=verification)
