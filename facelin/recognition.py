"""Face identification and verification metrics, and the LFW pairs protocol.

All functions take plain feature matrices (one row per image), so any representation can
be scored the same way: a CNN's descriptors, parameters decoded from its units, responses
predicted from face parameters, or the parameters themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    ranks: np.ndarray | None = None  # each probe's rank of its true identity (1 = nearest)

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
    return Identification(cmc=cmc, n_probes=len(probes), n_identities=len(identities),
                          ranks=rank)


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
        """Mean over folds and its ``level`` t-interval (clipped to [0, 1]) for a metric
        ('auc', 'eer', 'tar@far=0.01', ...)."""
        return _t_interval(self.folds[name], level)

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


def identity_folds(labels, n_folds: int = 10, seed: int = 0) -> np.ndarray:
    """The fold (0..n_folds-1) of each row, identities dealt to folds at random with
    ``seed`` so that all images of an identity share a fold."""
    labels = np.asarray(labels)
    identities = np.unique(labels)
    if len(identities) < n_folds:
        raise ValueError(f"{len(identities)} identities cannot be split into {n_folds} folds")
    rng = np.random.default_rng(seed)
    identity_fold = dict(zip(rng.permutation(identities).tolist(),
                             np.arange(len(identities)) % n_folds))
    return np.array([identity_fold[x] for x in labels.tolist()])


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
        fold_of_row = identity_folds(labels, n_folds, seed)
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
# Comparing feature sets on held-out identities


def split_identities(labels, fitting_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """True for the rows of the fitting identities, False for the evaluation identities:
    a ``fitting_fraction`` of the identities drawn at random with ``seed``, so that no
    identity is on both sides."""
    labels = np.asarray(labels)
    identities = np.unique(labels)
    n_fitting = int(round(fitting_fraction * len(identities)))
    if not 0 < n_fitting < len(identities):
        raise ValueError(f"fitting_fraction {fitting_fraction} of {len(identities)} identities "
                         "leaves one side empty")
    chosen = np.random.default_rng(seed).permutation(identities)[:n_fitting]
    return np.isin(labels, chosen)


def gallery_mask(labels) -> np.ndarray:
    """True for the first image of each identity (the gallery), False for the others (the
    probes). Every identity needs at least two images."""
    labels = np.asarray(labels)
    identities, first, counts = np.unique(labels, return_index=True, return_counts=True)
    if (counts < 2).any():
        raise ValueError(f"identities {identities[counts < 2][:10].tolist()} have a single "
                         "image: identification needs a gallery image and a probe")
    mask = np.zeros(len(labels), dtype=bool)
    mask[first] = True
    return mask


class Whitener:
    """PCA whitening fitted on one set of features and applied to any other: centre by
    the fitted mean, project on the fitted principal axes, divide each by its standard
    deviation. Axes with variance below ``tolerance`` times the largest are dropped, so a
    rank-deficient fitting set (more features than images) stays well defined."""

    def __init__(self, tolerance: float = 1e-10):
        self.tolerance = tolerance

    def fit(self, features) -> "Whitener":
        x = _as_features(features, "features")
        if len(x) < 2:
            raise ValueError("whitening needs at least two rows")
        self.mean_ = x.mean(0)
        variances, axes = np.linalg.eigh(np.cov(x - self.mean_, rowvar=False).reshape(
            x.shape[1], x.shape[1]))
        keep = variances > self.tolerance * max(variances.max(), 1e-300)
        if not keep.any():
            raise ValueError("features have no variance to whiten")
        self.components_ = axes[:, keep] / np.sqrt(variances[keep])
        return self

    def transform(self, features) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise RuntimeError("call fit before transform")
        x = _as_features(features, "features")
        if x.shape[1] != len(self.mean_):
            raise ValueError(f"expected {len(self.mean_)} features, got {x.shape[1]}")
        return (x - self.mean_) @ self.components_


def _fold_values(values, folds) -> np.ndarray:
    return np.array([values[folds == f].mean() for f in np.unique(folds)])


def _t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and ``level`` t-interval of per-fold rates, clipped to [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(
        len(values))
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


@dataclass
class Evaluation:
    """One feature set scored on the evaluation identities with the metric and whitening
    chosen on the fitting identities.

    identification : rank-k of each probe (every image but an identity's first) against
        the gallery (every identity's first image); ``rank1_folds`` its rank-1 accuracy
        over the probes of each identity fold (the interval's source).
    verification : all pairs of evaluation images, folds split by identity.
    candidates : the fitting-identity rank-1 and AUC of every metric/whitening tried.
    """

    metric: str
    whitened: bool
    identification: Identification
    rank1_folds: np.ndarray
    verification: Verification
    candidates: list

    def rank1_interval(self, level: float = 0.95) -> tuple[float, float, float]:
        """Mean rank-1 over identity folds and its ``level`` t-interval."""
        return _t_interval(self.rank1_folds, level)

    def summary(self) -> dict:
        """Headline numbers: pooled rank-1, AUC, EER, TAR at each FAR, and the 95%
        intervals over identity folds of rank-1, AUC and EER."""
        out = {"metric": self.metric + (" (whitened)" if self.whitened else ""),
               "rank1": self.identification.rank1}
        _, out["rank1_low"], out["rank1_high"] = self.rank1_interval()
        for name in ("auc", "eer"):
            out[name] = getattr(self.verification, name)
            _, out[f"{name}_low"], out[f"{name}_high"] = self.verification.interval(name)
        out.update({f"tar@far={f:g}": v for f, v in self.verification.tar_at_far.items()})
        return out


def _score(fitting, fitting_labels, metric: str) -> tuple[float, float]:
    gallery = gallery_mask(fitting_labels)
    rank1 = identify(fitting[gallery], fitting_labels[gallery], fitting[~gallery],
                     fitting_labels[~gallery], metric).rank1
    pairs, same = all_pairs(fitting_labels)
    d = distances(fitting, metric=metric)
    far, tar, _ = roc_curve(-d[pairs[:, 0], pairs[:, 1]], same)
    return rank1, _auc(far, tar)


def evaluate(fitting, fitting_labels, evaluation, evaluation_labels,
             metrics: Sequence[str] = METRICS, whiten: Sequence[bool] = (False, True),
             n_folds: int = 10, seed: int = 0) -> Evaluation:
    """Score a feature set on held-out identities, every choice made on the others.

    ``fitting`` (images of the fitting identities) picks, among ``metrics`` x ``whiten``,
    the combination with the best rank-1 identification (ties: the best verification
    AUC) on the fitting identities; whitening (`Whitener`) is fitted on ``fitting`` too.
    ``evaluation`` (images of the evaluation identities, none shared with the fitting
    ones) is then scored once with that choice: identification of each identity's later
    images against its first, and verification of all pairs, with intervals over
    ``n_folds`` folds of identities.
    """
    fitting = _as_features(fitting, "fitting")
    evaluation = _as_features(evaluation, "evaluation")
    fitting_labels = _as_labels(fitting_labels, len(fitting), "fitting_labels")
    evaluation_labels = _as_labels(evaluation_labels, len(evaluation), "evaluation_labels")
    if fitting.shape[1] != evaluation.shape[1]:
        raise ValueError(f"fitting and evaluation have {fitting.shape[1]} and "
                         f"{evaluation.shape[1]} features")
    shared = np.intersect1d(fitting_labels, evaluation_labels)
    if len(shared):
        raise ValueError(f"identities {shared[:10].tolist()} are in both the fitting and "
                         "the evaluation set")
    if not metrics or not whiten:
        raise ValueError("give at least one metric and one whitening option")
    whitener = Whitener().fit(fitting) if any(whiten) else None
    candidates = []
    for whitened in whiten:
        x = whitener.transform(fitting) if whitened else fitting
        for metric in metrics:
            rank1, auc = _score(x, fitting_labels, metric)
            candidates.append({"metric": metric, "whitened": bool(whitened),
                               "fitting_rank1": rank1, "fitting_auc": auc})
    best = max(candidates, key=lambda c: (c["fitting_rank1"], c["fitting_auc"]))
    x = whitener.transform(evaluation) if best["whitened"] else evaluation
    gallery = gallery_mask(evaluation_labels)
    identification = identify(x[gallery], evaluation_labels[gallery], x[~gallery],
                              evaluation_labels[~gallery], best["metric"])
    folds = identity_folds(evaluation_labels, n_folds, seed)
    rank1_folds = _fold_values(identification.ranks == 1, folds[~gallery])
    verification = verify(x, labels=evaluation_labels, metric=best["metric"],
                          n_folds=n_folds, seed=seed)
    return Evaluation(metric=best["metric"], whitened=best["whitened"],
                      identification=identification, rank1_folds=rank1_folds,
                      verification=verification, candidates=candidates)


def compare(feature_sets: dict, fitting_labels, evaluation_labels, options: dict | None = None,
            n_folds: int = 10, seed: int = 0):
    """`evaluate` for every entry ``name -> (fitting, evaluation)`` of ``feature_sets``;
    ``options`` may give a name its own `evaluate` keywords (e.g. a fixed metric).
    Returns a table (one row per feature set: the `Evaluation.summary` numbers) and the
    evaluations by name."""
    import pandas as pd

    options = options or {}
    unknown = set(options) - set(feature_sets)
    if unknown:
        raise ValueError(f"options name unknown feature sets {sorted(unknown)}")
    evaluations = {name: evaluate(fit, fitting_labels, ev, evaluation_labels, n_folds=n_folds,
                                  seed=seed, **options.get(name, {}))
                   for name, (fit, ev) in feature_sets.items()}
    table = pd.DataFrame({name: e.summary() for name, e in evaluations.items()}).T
    return table, evaluations


def distance_agreement(a, b, metric_a: str = "euclidean", metric_b: str = "euclidean") -> float:
    """Spearman rank correlation between the pairwise distances of the same items under
    two representations (rows of ``a`` and ``b``): 1 when they order every pair alike."""
    a, b = _as_features(a, "a"), _as_features(b, "b")
    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"a and b need the same rows, at least 3; got {len(a)} and {len(b)}")
    i, j = np.triu_indices(len(a), k=1)
    return float(stats.spearmanr(distances(a, metric=metric_a)[i, j],
                                 distances(b, metric=metric_b)[i, j]).statistic)


# ---------------------------------------------------------------------------------------
# LFW's standard verification protocol


class DescriptorExtractor:
    """An ``extractor`` for :func:`lfw_pairs_protocol`: dlib's detector and 68-point
    predictor place the landmarks, `facelin.faces.face_chips` aligns the face, and
    ``model`` (e.g. dlib's ResNet, `facelin.experiment.network`) gives the responses of
    ``layer``. Where the detector finds no face, the predictor is given the central half
    of the image (LFW's images are centred on the face); ``n_undetected`` counts them."""

    def __init__(self, model, layer: str = "descriptor", batch_size: int = 50,
                 progress: bool = True):
        self.model, self.layer, self.batch_size, self.progress = (model, layer, batch_size,
                                                                 progress)
        self.n_undetected = 0

    def __call__(self, images) -> np.ndarray:
        from . import extract
        from .faces import FaceNotFoundError, face_chips, landmarks

        images = [image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
                  for image in images]
        try:
            points = landmarks(images)
        except FaceNotFoundError as error:
            boxes = np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4] for h, w in
                              (image.shape[:2] for image in images)])
            missed = np.asarray(error.indices)
            self.n_undetected += len(missed)
            found = np.setdiff1d(np.arange(len(images)), missed)
            points = np.empty((len(images), 68, 2))
            if len(found):
                points[found] = landmarks([images[i] for i in found])
            points[missed] = landmarks([images[i] for i in missed], boxes=boxes[missed])
        chips = face_chips(images, points)
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
                       pairs_file: str = "pairs.txt", progress: bool = True) -> LFWResult:
    """LFW's 10-fold verification protocol for any feature extractor.

    ``root`` is an LFW folder as :func:`facelin.datasets.load_lfw` reads it (the standard
    layout or scikit-learn's cache). ``extractor`` maps a list of images ((H, W) or
    (H, W, 3) uint8 arrays: those the pairs name, in the order of ``LFWResult.paths``) to
    an (n, d) feature array. For each fold the accept threshold is the one that maximises
    accuracy on the nine other folds; the reported accuracy is the mean over folds (the
    figure dlib's 99.38% refers to). Every pair must be usable: a missing pairs file, or
    a pair naming a missing or unreadable image, raises an error naming it.
    """
    from .datasets import load_lfw

    lfw = load_lfw(root, pairs_file=pairs_file, progress=progress)
    if lfw.pairs_file is None:
        raise FileNotFoundError(f"no {pairs_file} found with the LFW images under {root}")
    broken = [reason for path, reason in lfw.problems if path == str(lfw.pairs_file)]
    if broken:
        raise FileNotFoundError(f"{lfw.pairs_file}: {len(broken)} pairs cannot be scored, "
                                f"e.g. {broken[0]}")
    used, pairs = np.unique(lfw.pairs, return_inverse=True)
    pairs = pairs.reshape(lfw.pairs.shape)
    features = _as_features(extractor([lfw.faces.images[i] for i in used]),
                            "extractor output")
    if len(features) != len(used):
        raise ValueError(f"extractor returned {len(features)} rows for {len(used)} images")
    d = distances(features, metric=metric)
    scores = -d[pairs[:, 0], pairs[:, 1]]
    accuracy = []
    for f in np.unique(lfw.folds):
        test = lfw.folds == f
        threshold = _best_threshold(scores[~test], lfw.same[~test])
        accuracy.append(((scores[test] >= threshold) == lfw.same[test]).mean())
    verification = verify(features, pairs=pairs, same=lfw.same, folds=lfw.folds,
                          metric=metric)
    return LFWResult(fold_accuracy=np.array(accuracy), verification=verification,
                     paths=[lfw.faces.paths[i] for i in used])


# ---------------------------------------------------------------------------------------
# Identity sets: the CNN's features and the linear model's, side by side


MARGIN = 10  # pixels around each synthetic chip, so that the whole face can be fitted


@dataclass
class IdentityFeatures:
    """What each image of an identity set gives the comparison.

    labels : (n,) identity; params : (n, P) generating parameters; fitted : (n, P)
    parameters fitted to the image by ``FaceSpace.transform`` with dlib's landmarks;
    responses : network name -> (n, d) responses of ``layer``; undetected : images where
    dlib's detector found no face (their landmarks come from the predictor started on the
    mean face's box instead).
    """

    labels: np.ndarray
    params: np.ndarray
    fitted: np.ndarray
    responses: dict
    undetected: np.ndarray


def identity_features(ids, space, models: dict, layer: str = "descriptor",
                      batch_size: int = 50, progress: bool = False) -> IdentityFeatures:
    """Network responses and fitted parameters of a `facelin.datasets.IdentitySet`.

    Each image is cut into a dlib chip with its exact landmarks (so the networks see
    aligned faces, as dlib's pipeline gives them) and recorded at ``layer`` of every
    model in ``models`` (name -> network). Its parameters are fitted with the landmarks
    dlib finds in it, not the generator's: the route a real photograph takes. Where
    dlib's detector finds no face, its 68-point predictor starts from the box of the
    mean face where the generator centres faces (as LFW's images are centred); those
    images are listed in ``undetected``.
    """
    from . import extract
    from .faces import FaceNotFoundError, face_chips, landmarks

    images = ids.images
    try:
        found = landmarks(images)
        undetected = np.zeros(0, dtype=np.int64)
    except FaceNotFoundError as error:
        undetected = np.asarray(error.indices, dtype=np.int64)
        detected = np.setdiff1d(np.arange(len(images)), undetected)
        found = np.empty((len(images), 68, 2))
        if len(detected):
            found[detected] = landmarks(images[detected])
        margin = (images.shape[1] - 150) / 2
        mean_face = space.shape_landmarks(np.zeros((1, space.n_shape)))[0] + margin
        box = np.r_[mean_face.min(0), mean_face.max(0)]
        found[undetected] = landmarks(images[undetected],
                                      boxes=np.tile(box, (len(undetected), 1)))
    fitted = space.transform(images, found)
    chips = face_chips(images, ids.landmarks)
    responses = {name: extract.record(model, chips, {layer: "all"}, batch_size=batch_size,
                                      progress=progress).values.double().numpy()
                 for name, model in models.items()}
    return IdentityFeatures(labels=ids.labels, params=ids.params, fitted=fitted,
                            responses=responses, undetected=undetected)


def linear_feature_sets(features: IdentityFeatures, fitting: np.ndarray, space,
                        network: str = "trained", floor: str | None = "untrained"):
    """The feature sets of the comparison, every linear map fitted on the ``fitting`` rows.

    Returns ``(sets, options)`` for :func:`compare`: ``sets`` maps a name to (fitting rows,
    evaluation rows) of

    - ``CNN``: the network's own responses;
    - ``decoded params``: the normalised generating parameters decoded linearly (ridge,
      penalty by cross-validation) from the responses;
    - ``encoded (true-param fit)``: responses predicted linearly from the parameters fitted
      to each image, by an encoder fitted on the generating parameters;
    - ``encoded (fitted-param fit)``: the same with an encoder fitted on fitted parameters;
    - ``fitted params``: the fitted parameters themselves (normalised);
    - ``true params, normalised`` and ``true params, whitened``: the generating
      parameters, the ceiling of the space, by Euclidean distance (fixed in ``options``);
    - ``untrained CNN`` (``floor``, when recorded): the untrained network's responses.

    Parameters are normalised with Chang & Tsao's normalisation referred to the fitting
    rows. The fitting rows of a linear route are its cross-validated predictions (folds of
    contiguous rows, so of whole identities when rows are grouped by identity), so metric
    choices are made on predictions of images the map did not see.
    """
    from .encoding import LinearDecoder, LinearEncoder

    fitting = np.asarray(fitting, dtype=bool)
    if fitting.shape != features.labels.shape or fitting.all() or not fitting.any():
        raise ValueError("fitting must mark some, not all, rows of the features")
    fit, ev = fitting, ~fitting
    responses = features.responses[network]
    true = space.normalize(features.params, reference=features.params[fit])
    fitted = space.normalize(features.fitted, reference=features.fitted[fit])
    decoder = LinearDecoder(cv=10).fit(responses[fit], true[fit])
    encoder_true = LinearEncoder().fit(true[fit], responses[fit])
    encoder_fitted = LinearEncoder().fit(fitted[fit], responses[fit])
    # the true-parameter encoder meets fitted parameters: express them in its units
    fitted_as_true = space.normalize(features.fitted, reference=features.params[fit])

    def numpy(t):
        return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)

    sets = {
        "CNN": (responses[fit], responses[ev]),
        "decoded params": (numpy(decoder.cv_predictions_), numpy(decoder.predict(
            responses[ev]))),
        "encoded (true-param fit)": (numpy(encoder_true.predict(fitted_as_true[fit])),
                                     numpy(encoder_true.predict(fitted_as_true[ev]))),
        "encoded (fitted-param fit)": (numpy(encoder_fitted.cv_predictions_),
                                       numpy(encoder_fitted.predict(fitted[ev]))),
        "fitted params": (fitted[fit], fitted[ev]),
        "true params, normalised": (true[fit], true[ev]),
        "true params, whitened": (true[fit], true[ev]),
    }
    if floor is not None and floor in features.responses:
        sets["untrained CNN"] = (features.responses[floor][fit], features.responses[floor][ev])
    options = {"true params, normalised": {"metrics": ("euclidean",), "whiten": (False,)},
               "true params, whitened": {"metrics": ("euclidean",), "whiten": (True,)}}
    return sets, options


def nuisance_sweep(space, models: dict, strengths: Sequence[float], n_identities: int,
                   n_per_identity: int, fitting_fraction: float = 0.5, seed: int = 0,
                   n_folds: int = 10, margin: int = MARGIN, progress: bool = True):
    """Rank-1 and AUC of every feature set as the nuisance grows, three ways: image
    nuisance alone (illumination, pose, noise; no parameter jitter), parameter jitter
    alone, and both together (``Nuisance.at``). The same identities and random draws
    serve every strength; faces are synthesised with ``margin`` pixels around the chip.
    Returns a long table with columns ``nuisance``, ``strength``,
    ``features``, ``rank1``, ``auc``, ``undetected`` (faces dlib's detector missed)."""
    import pandas as pd

    from .datasets import Nuisance, identity_set

    kinds = {"image": lambda s: Nuisance.at(image=s, jitter=0.0),
             "jitter": lambda s: Nuisance.at(image=0.0, jitter=s),
             "both": lambda s: Nuisance.at(image=s, jitter=s)}
    runs = [(kind, s) for kind in kinds for s in strengths]
    if progress:
        from tqdm.auto import tqdm
        runs = tqdm(runs, desc="nuisance sweep")
    rows, done = [], {}
    for kind, strength in runs:
        nuisance = kinds[kind](float(strength))
        if nuisance not in done:  # strength 0 is the same set for every kind
            ids = identity_set(space, n_identities, n_per_identity, nuisance, seed=seed,
                               margin=margin)
            features = identity_features(ids, space, models)
            fitting = split_identities(features.labels, fitting_fraction, seed)
            sets, options = linear_feature_sets(features, fitting, space)
            table, _ = compare(sets, features.labels[fitting], features.labels[~fitting],
                               options, n_folds=n_folds, seed=seed)
            done[nuisance] = (table, len(features.undetected))
        table, undetected = done[nuisance]
        for name, row in table.iterrows():
            rows.append({"nuisance": kind, "strength": float(strength), "features": name,
                         "rank1": row["rank1"], "auc": row["auc"], "undetected": undetected})
    return pd.DataFrame(rows)
