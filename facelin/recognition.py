"""Face identification and verification on equal terms, with bootstrap intervals.

All metric functions take plain feature matrices (one row per image), so any
representation is scored the same way: a CNN's descriptors, parameters decoded from its
units, responses predicted from face parameters, the parameters themselves, or pixels.

- Metrics: rank-1 identification against a gallery of one image per identity; the
  verification ROC of all pairs (scikit-learn's ``roc_curve``), its AUC, equal error
  rate (EER) and true-accept rate (TAR) at fixed false-accept rates (FAR).
- :func:`bootstrap`: intervals by resampling evaluation identities, and paired intervals
  of every route's difference from a reference route on the same resamples.
- :func:`metric_table`: every distance (Euclidean, cosine, each raw and whitened) for
  every route, the one reported chosen on the fitting identities.
- :func:`claim2_verdict`: the chapter's decision rule, from the paired intervals.
- :func:`identity_features` / :func:`recognition_routes`: synthetic identities under two
  landmark conditions, recorded once and cached; :func:`nuisance_sweep`.
- :func:`lfw_pairs_protocol`: LFW's standard 10-fold protocol for any extractor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import cdist
from sklearn import metrics as skm

__all__ = [
    "METRICS", "METRIC_OPTIONS", "STATISTICS", "CONDITIONS", "VERDICTS", "IMAGE_ROUTES",
    "GIVEN_PARAMETER_ROUTES", "MARGINS", "MARGIN", "distances", "Identification",
    "identify", "roc_curve", "verification_metrics", "Verification", "verify",
    "all_pairs", "split_identities", "gallery_mask", "Whitener", "metric_table",
    "bootstrap", "claim2_verdict", "distance_agreement", "DescriptorExtractor",
    "LFWResult", "lfw_pairs_protocol", "IdentityFeatures", "identity_features",
    "recognition_routes", "Comparison", "compare_routes", "nuisance_sweep",
    "non_inferior", "best_route", "real_face_agreement", "VERDICT_RULE",
]

METRICS = ("euclidean", "cosine")
# every distance a route is scored with: (metric, whitened); the fitting identities pick
METRIC_OPTIONS = tuple((metric, whitened) for whitened in (False, True)
                       for metric in METRICS)
FARS = (1e-2, 1e-3)
STATISTICS = ("rank1", "auc", "eer", "tar@far=0.01", "tar@far=0.001")
CONDITIONS = ("given", "detected")


def _as_features(x, name: str) -> np.ndarray:
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


def _as_labels(labels, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have one label per row ({n}), got shape "
                         f"{labels.shape}")
    return labels


def distances(a, b=None, metric: str = "cosine") -> np.ndarray:
    """Pairwise distances (len(a), len(b)) between the rows of ``a`` and ``b`` (``b=a``
    when omitted): ``cosine`` is 1 - cosine similarity, ``euclidean`` the L2
    distance."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a = _as_features(a, "a")
    b = a if b is None else _as_features(b, "b")
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
    gallery = _as_features(gallery, "gallery")
    probes = _as_features(probes, "probes")
    gallery_labels = _as_labels(gallery_labels, len(gallery), "gallery_labels")
    probe_labels = _as_labels(probe_labels, len(probes), "probe_labels")
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
    features = _as_features(features, "features")
    n = len(features)
    if (labels is None) == (pairs is None):
        raise ValueError("give exactly one of labels or pairs")
    if labels is not None:
        pairs, same = all_pairs(_as_labels(labels, n, "labels"))
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
        x = _as_features(features, "features")
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
        x = _as_features(features, "features")
        if x.shape[1] != len(self.mean_):
            raise ValueError(f"expected {len(self.mean_)} features, got {x.shape[1]}")
        return (x - self.mean_) @ self.components_


# --------------------------------------------------------------------------------------
# Bootstrap over identities


class _RouteScores:
    """What the statistics of one route need, computed once from its distance matrix.

    Identification: each probe (every image but its identity's first) against the
    gallery of every identity's first image; ``correct`` says whether the probe's own
    identity is strictly nearest. Verification: every pair, genuine and impostor scores
    sorted once, so a resample only reweighs them.
    """

    def __init__(self, features, labels, metric: str, statistics=STATISTICS):
        x = _as_features(features, "features")
        labels = _as_labels(labels, len(x), "labels")
        unknown = set(statistics) - set(STATISTICS)
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)}; known: "
                             f"{STATISTICS}")
        self.statistics = tuple(statistics)
        self.identities, first, codes = np.unique(labels, return_index=True,
                                                  return_inverse=True)
        gallery = gallery_mask(labels)
        d = distances(x, metric=metric)
        probes = np.flatnonzero(~gallery)
        to_gallery = d[np.ix_(probes, first)]
        rows = np.arange(len(probes))
        own = to_gallery[rows, codes[probes]].copy()
        to_gallery[rows, codes[probes]] = np.inf
        self.correct = own < to_gallery.min(1)  # ties count against the probe
        self.probe_codes = codes[probes]
        self.n_probes = len(probes)
        self.verifies = any(s != "rank1" for s in self.statistics)
        if not self.verifies:
            return
        i, j = np.triu_indices(len(x), k=1)
        scores, same = -d[i, j], codes[i] == codes[j]
        if same.all() or not same.any():
            raise ValueError("verification needs both genuine and impostor pairs")
        self.scores, self.same = scores, same
        genuine = np.argsort(-scores[same], kind="stable")
        impostor = np.argsort(-scores[~same], kind="stable")
        g_scores, i_scores = scores[same][genuine], scores[~same][impostor]
        self.g_codes = codes[i[same]][genuine]
        i_a, i_b = codes[i[~same]][impostor], codes[j[~same]][impostor]
        # per genuine pair: impostors scoring >= and > it, genuine pairs scoring >= it
        i_ge = np.searchsorted(-i_scores, -g_scores, side="right")
        i_gt = np.searchsorted(-i_scores, -g_scores, side="left")
        self.g_ge = np.searchsorted(-g_scores, -g_scores, side="right")
        # impostors are summed in the runs between these positions, and within a run
        # the pairs of one pair of identities share a weight: merge them
        bounds = np.unique(np.r_[0, i_ge, i_gt])
        bounds = bounds[bounds < len(i_scores)]
        self.ge_at = np.searchsorted(bounds, i_ge)
        self.gt_at = np.searchsorted(bounds, i_gt)
        n = len(self.identities)
        run = np.repeat(np.arange(len(bounds)), np.diff(np.r_[bounds, len(i_scores)]))
        merged, self.i_pairs = np.unique((run * n + i_a) * n + i_b, return_counts=True)
        self.i_a, self.i_b = (merged // n) % n, merged % n
        self.run_starts = np.searchsorted(merged // (n * n), np.arange(len(bounds)))
        self.n_genuine, self.n_impostor = len(g_scores), len(i_scores)

    def point(self) -> dict:
        """The statistics on all data, by the reference implementations (scikit-learn's
        ROC)."""
        out = {"rank1": float(self.correct.mean())}
        if self.verifies:
            out.update(verification_metrics(self.scores, self.same))
        return {s: out[s] for s in self.statistics}

    def resampled(self, counts: np.ndarray) -> dict:
        """The statistics of each resample: ``counts`` (n_identities, B) says how often
        each identity was drawn. A pair's weight is its multiplicity in the resample (an
        identity drawn twice contributes its genuine pairs twice; an impostor pair, the
        product of its identities' counts; pairs between copies of one identity are not
        formed). Hand-written, not scikit-learn's ``roc_curve`` with ``sample_weight``:
        sorting once and summing weights between genuine scores is about 100 times
        faster for 1000 resamples; the tests check that the two agree."""
        out = {}
        probe_weight = counts[self.probe_codes]
        hits = (probe_weight * self.correct[:, None]).sum(0)
        out["rank1"] = hits / probe_weight.sum(0)
        if not self.verifies:
            return {s: out[s] for s in self.statistics}
        wg = counts[self.g_codes]  # (genuine pairs, B), by decreasing score
        cum_g = np.cumsum(wg, axis=0)
        total_g = cum_g[-1].astype(np.float64)
        # impostor weight summed between consecutive genuine scores, then accumulated
        weights = np.multiply(counts[self.i_a] * counts[self.i_b],
                              self.i_pairs[:, None], dtype=np.int64)
        between = np.add.reduceat(weights, self.run_starts, axis=0)
        cum_i = np.concatenate([np.zeros((1, counts.shape[1]), between.dtype),
                                np.cumsum(between, axis=0)])
        total_i = cum_i[-1].astype(np.float64)
        # impostors scoring >= and > each genuine pair
        ge, gt = cum_i[self.ge_at], cum_i[self.gt_at]
        far = ge / total_i
        tar = cum_g[self.g_ge - 1] / total_g
        below = total_i - (ge + gt) / 2.0  # impostors below, ties counted half
        out["auc"] = (wg * below).sum(0) / (total_g * total_i)
        out["eer"] = np.minimum(np.maximum(far, 1.0 - tar).min(0), 1.0)
        for f in FARS:
            out[f"tar@far={f:g}"] = np.where(far <= f, tar, 0.0).max(0)
        return {s: out[s] for s in self.statistics}


def _identity_counts(n_identities: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_identities, n_resamples) int32 counts of identities drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_identities, (n_resamples, n_identities))
    offsets = n_identities * np.arange(n_resamples)[:, None]
    counts = np.bincount((draws + offsets).ravel(),
                         minlength=n_resamples * n_identities)
    # int16 keeps the gathers fast; a product of two counts is below n_identities ** 2
    dtype = np.int16 if n_identities ** 2 <= np.iinfo(np.int16).max else np.int32
    return np.ascontiguousarray(counts.reshape(n_resamples, n_identities).T, dtype)


def bootstrap(routes: dict, labels, reference: str | None = "CNN",
              n_resamples: int = 1000, level: float = 0.95, seed: int = 0,
              statistics: Sequence[str] = STATISTICS, chunk: int = 50) -> pd.DataFrame:
    """Statistics of several routes on the same evaluation images, with percentile
    intervals from resampling identities, and paired intervals of each route's
    difference from ``reference``.

    routes : name -> (features (n, d), metric); every route scores the same n images,
        whose identities are ``labels`` (n,).
    A resample draws as many identities as there are, with replacement; every route is
    scored on the same resamples, so ``<stat>_diff`` = reference minus route has a
    paired interval. Rank-1 is against the gallery of every evaluation identity (its
    first image; ``gallery`` gives the size); only the probes are resampled, so the
    gallery size, which rank-1 depends on, stays fixed. The point estimate is the
    statistic on all data.

    Returns one row per route: ``<stat>``, ``<stat>_low``, ``<stat>_high`` for each of
    ``statistics``, ``<stat>_diff`` (and its bounds) when ``reference`` is given, and
    ``gallery``, ``probes``, ``genuine_pairs``, ``impostor_pairs``.
    """
    if not routes:
        raise ValueError("give at least one route")
    if reference is not None and reference not in routes:
        raise ValueError(f"reference {reference!r} is not among the routes "
                         f"{list(routes)}")
    if n_resamples < 2 or not 0 < level < 1:
        raise ValueError(f"need n_resamples >= 2 and 0 < level < 1, got {n_resamples}, "
                         f"{level}")
    labels = np.asarray(labels)
    scored = {name: _RouteScores(x, labels, metric, statistics)
              for name, (x, metric) in routes.items()}
    counts = _identity_counts(len(np.unique(labels)), n_resamples, seed)
    samples = {name: {s: [] for s in statistics} for name in routes}
    for start in range(0, n_resamples, chunk):
        block = np.ascontiguousarray(counts[:, start:start + chunk])
        for name, route in scored.items():
            for s, values in route.resampled(block).items():
                samples[name][s].append(values)
    tails = [(1 - level) / 2, (1 + level) / 2]
    rows = {}
    for name, route in scored.items():
        point, row = route.point(), {}
        for s in statistics:
            values = np.concatenate(samples[name][s])
            row[s] = point[s]
            row[f"{s}_low"], row[f"{s}_high"] = np.quantile(values, tails)
            if reference is not None:
                paired = np.concatenate(samples[reference][s]) - values
                row[f"{s}_diff"] = scored[reference].point()[s] - point[s]
                row[f"{s}_diff_low"], row[f"{s}_diff_high"] = np.quantile(paired, tails)
        row.update(gallery=len(route.identities), probes=route.n_probes,
                   genuine_pairs=getattr(route, "n_genuine", 0),
                   impostor_pairs=getattr(route, "n_impostor", 0))
        rows[name] = row
    return pd.DataFrame(rows).T.infer_objects()


# --------------------------------------------------------------------------------------
# Every distance for every route, the reported one chosen on the fitting identities


TWO = ("rank1", "auc")  # what the choice of distance looks at


def _distance_name(metric: str, whitened: bool) -> str:
    return f"{metric}, whitened" if whitened else metric


def metric_table(routes: dict, fitting_labels, evaluation_labels,
                 options: Sequence[tuple] = METRIC_OPTIONS
                 ) -> tuple[pd.DataFrame, dict]:
    """Rank-1 and AUC of every route with every distance, on the fitting and on the
    evaluation identities, and the distance each route reports.

    routes : name -> (fitting (n_f, d), evaluation (n_e, d)) features; the fitting rows
        of a linear route should be its cross-validated predictions, so that a choice is
        made on images the map did not see.
    options : (metric, whitened) pairs; whitening (`Whitener`) is fitted on the fitting
        rows. Each route reports the option with the best fitting rank-1 (ties: the
        best fitting AUC); the evaluation identities play no part in the choice.

    Returns ``(table, chosen)``: the table has one row per route and option (columns
    ``route``, ``distance``, ``fitting_rank1``, ``fitting_auc``, ``rank1``, ``auc``,
    ``chosen``); ``chosen`` maps each route to (evaluation features as scored, metric,
    distance name).
    """
    fitting_labels = np.asarray(fitting_labels)
    evaluation_labels = np.asarray(evaluation_labels)
    shared = np.intersect1d(fitting_labels, evaluation_labels)
    if len(shared):
        raise ValueError(f"identities {shared[:10].tolist()} are in both the fitting "
                         "and the evaluation set")
    if not options:
        raise ValueError("give at least one (metric, whitened) option")
    rows, chosen = [], {}
    for name, (fitting, evaluation) in routes.items():
        fitting = _as_features(fitting, f"{name} fitting rows")
        evaluation = _as_features(evaluation, f"{name} evaluation rows")
        _as_labels(fitting_labels, len(fitting), f"{name}: fitting_labels")
        _as_labels(evaluation_labels, len(evaluation), f"{name}: evaluation_labels")
        if fitting.shape[1] != evaluation.shape[1]:
            raise ValueError(f"{name}: fitting and evaluation rows have "
                             f"{fitting.shape[1]} and {evaluation.shape[1]} features")
        whitener = Whitener().fit(fitting) if any(w for _, w in options) else None
        best, route_rows = None, []
        for metric, whitened in options:
            fit_x = whitener.transform(fitting) if whitened else fitting
            ev_x = whitener.transform(evaluation) if whitened else evaluation
            fit_point = _RouteScores(fit_x, fitting_labels, metric, TWO).point()
            ev_point = _RouteScores(ev_x, evaluation_labels, metric, TWO).point()
            row = {"route": name, "distance": _distance_name(metric, whitened),
                   "fitting_rank1": fit_point["rank1"], "fitting_auc": fit_point["auc"],
                   "rank1": ev_point["rank1"], "auc": ev_point["auc"], "chosen": False}
            route_rows.append(row)
            key = (fit_point["rank1"], fit_point["auc"])
            if best is None or key > best[0]:
                best = (key, row, (ev_x, metric, row["distance"]))
        best[1]["chosen"] = True
        chosen[name] = best[2]
        rows.extend(route_rows)
    return pd.DataFrame(rows), chosen


# --------------------------------------------------------------------------------------
# The decision rule


VERDICTS = ("holds", "partly holds", "does not hold")
# routes that start from the image: parameters fitted to it, or responses predicted
# linearly from those parameters
IMAGE_ROUTES = ("fitted params", "encoded (fitted-param fit)",
                "encoded (true-param fit)")
# routes handed the parameters the faces were generated from
GIVEN_PARAMETER_ROUTES = ("true params", "encoded (true params)")
# non-inferiority margins: how much worse than the CNN a route may be and still count
MARGINS = {"rank1": 0.05, "tar@far=0.01": 0.05}


VERDICT_RULE = (
    "A route is non-inferior to the CNN when the upper bound of the 95% paired "
    "bootstrap interval (over evaluation identities) of CNN minus route is below "
    + " and ".join(f"{v:g} for {k}" for k, v in MARGINS.items())
    + ". 'holds': a route that starts from the image (" + ", ".join(IMAGE_ROUTES)
    + ") is non-inferior in both landmark conditions (given and detected); 'partly "
    "holds': an image route is non-inferior in one condition only, or a route handed "
    "the generating parameters (" + ", ".join(GIVEN_PARAMETER_ROUTES) + ") is "
    "non-inferior with given landmarks; 'does not hold': none of these.")


def non_inferior(table: pd.DataFrame, margins: dict = MARGINS) -> pd.Series:
    """True for each route (row of a :func:`bootstrap` table against the CNN) whose
    paired interval of CNN-minus-route lies below the margin for every statistic in
    ``margins``: the route is at most that much worse than the CNN, at 95%
    confidence."""
    missing = [f"{s}_diff_high" for s in margins if f"{s}_diff_high" not in table]
    if missing:
        raise KeyError(f"the table lacks the paired bounds {missing}")
    return pd.concat([table[f"{s}_diff_high"] < m for s, m in margins.items()],
                     axis=1).all(axis=1)


def claim2_verdict(tables: dict, margins: dict = MARGINS,
                   image_routes: Sequence[str] = IMAGE_ROUTES,
                   given_parameter_routes: Sequence[str] = GIVEN_PARAMETER_ROUTES
                   ) -> tuple[str, str]:
    """Claim 2 for one network, from its :func:`bootstrap` tables against the CNN in the
    two landmark conditions (``tables = {"given": ..., "detected": ...}``).

    - "holds": one route that starts from the image (``image_routes``) is non-inferior
      to the CNN (:func:`non_inferior`) in both conditions;
    - "partly holds": otherwise, an image route is non-inferior in one condition only,
      or a route handed the generating parameters (``given_parameter_routes``) is
      non-inferior to the CNN with given landmarks;
    - "does not hold": none of these.

    Returns ``(verdict, reason)``.
    """
    missing = [c for c in CONDITIONS if c not in tables]
    if missing:
        raise KeyError(f"tables lack the conditions {missing}")
    ok = {}
    for condition in CONDITIONS:
        table = tables[condition]
        absent = [r for r in (*image_routes, *given_parameter_routes)
                  if r not in table.index]
        if absent:
            raise KeyError(f"the {condition} table lacks the routes {absent}")
        passed = non_inferior(table, margins)
        ok[condition] = [r for r in passed.index[passed]]
    both = [r for r in image_routes if r in ok["given"] and r in ok["detected"]]
    if both:
        return VERDICTS[0], (f"{both[0]} is within the margins of the CNN in both "
                             "conditions")
    one = [(r, c) for c in CONDITIONS for r in image_routes if r in ok[c]]
    given = [r for r in given_parameter_routes if r in ok["given"]]
    if one:
        route, condition = one[0]
        return VERDICTS[1], (f"{route} is within the margins of the CNN with "
                             f"{condition} landmarks only")
    if given:
        return VERDICTS[1], (f"only {given[0]} (the generating parameters) comes "
                             "within the margins of the CNN; no route from the image "
                             "does")
    return VERDICTS[2], "no route comes within the margins of the CNN"


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
    a, b = _as_features(a, "a"), _as_features(b, "b")
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


# --------------------------------------------------------------------------------------
# Landmarks


def _detected_landmarks(images, fallback_box) -> tuple[np.ndarray, np.ndarray]:
    """dlib's 68 landmarks ``(N, 68, 2)`` of every image from one detector pass, and the
    indices where the detector found no face: there the predictor starts from
    ``fallback_box`` ((4,) left, top, right, bottom) instead."""
    from .faces import landmarks

    found = landmarks(images, on_missing="skip")
    points = np.empty((len(images), 68, 2))
    points[found.indices] = found.points
    if len(found.missing):
        boxes = np.tile(np.asarray(fallback_box, dtype=np.float64),
                        (len(found.missing), 1))
        points[found.missing] = landmarks([images[i] for i in found.missing],
                                          boxes=boxes)
    return points, found.missing


def _chip_landmarks(landmarks, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Image landmarks (N, 68, 2) carried into the dlib chips that
    `facelin.faces.face_chips` cuts with them: dlib's ``extract_image_chip`` maps chip
    pixel (u, v) to ``origin + u * along_x + v * along_y``; this inverts it."""
    from .faces import chip_transforms

    points = np.asarray(landmarks, dtype=np.float64)
    rects, angles = chip_transforms(points, size, padding)
    centre = (rects[:, :2] + rects[:, 2:]) / 2
    c, s = np.cos(angles), np.sin(angles)
    rotation = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    origin = centre + np.einsum("nij,nj->ni", rotation, rects[:, :2] - centre)
    extent = (rects[:, 2:] - rects[:, :2]) / (size - 1)
    to_image = rotation * extent[:, None, :]  # columns: along_x, along_y
    return np.einsum("nij,npj->npi", np.linalg.inv(to_image), points - origin[:, None])


# --------------------------------------------------------------------------------------
# LFW's standard verification protocol


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
        from . import extract
        from .faces import face_chips, landmarks

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
    from .datasets import load_lfw

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
    features = _as_features(extractor([lfw.faces.images[i] for i in used]),
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


# --------------------------------------------------------------------------------------
# Identity sets under two landmark conditions, recorded once and cached


MARGIN = 10  # pixels around each synthetic chip, so that the whole face can be fitted
PIXEL_STEP = 2  # the pixel route sees the grey chips at half resolution (75 x 75)


@dataclass
class IdentityFeatures:
    """What each image of a synthetic identity set gives the comparison.

    labels : (n,) identity; params : (n, P) generating parameters;
    undetected : images where dlib's detector found no face (in the ``detected``
        condition the predictor starts there from the mean face's box);
    fitted : condition -> (n, P) parameters fitted (``FaceSpace.transform``) with that
        condition's landmarks: ``given`` (the generator's) or ``detected`` (dlib's);
    pixels : condition -> (n, 75 * 75) grey chips at half resolution;
    responses : (network, pretrained, condition) -> (n, d) descriptors of the network's
        input chips cut with that condition's landmarks.
    """

    labels: np.ndarray
    params: np.ndarray
    undetected: np.ndarray
    fitted: dict
    pixels: dict
    responses: dict


def identity_features(space, n_identities: int, n_per_identity: int, nuisance=1.0,
                      seed: int = 0,
                      networks: Sequence[tuple] = (("dlib-resnet", True),),
                      conditions: Sequence[str] = CONDITIONS, margin: int = MARGIN,
                      progress: bool = False) -> IdentityFeatures:
    """Landmarks, fitted parameters, pixels and network descriptors of a
    `facelin.datasets.identity_set`, in each landmark condition.

    ``given``: the CNN's chips and the parameter fit both use the generator's exact
    landmarks. ``detected``: both use the landmarks dlib finds in the rendered image
    (one detector pass; where it finds no face, the predictor starts from the box of the
    mean face where the generator centres faces, for every route alike). Each network
    in ``networks`` ((name, pretrained) pairs) sees ``experiment.inputs`` of the dlib
    chips.
    Everything is cached (`facelin.experiment`) under the set's description, so a set
    is rendered and recorded once.
    """
    import torch

    from . import experiment, extract
    from .datasets import Nuisance, identity_set
    from .faces import face_chips

    unknown = set(conditions) - set(CONDITIONS)
    if unknown or not conditions:
        raise ValueError(f"conditions must be among {CONDITIONS}, got {conditions}")
    if not isinstance(nuisance, Nuisance):
        nuisance = Nuisance.at(float(nuisance))
    key = {"space": experiment.space_fingerprint(space),
           "n_identities": int(n_identities), "n_per_identity": int(n_per_identity),
           "nuisance": asdict(nuisance), "seed": int(seed), "margin": int(margin)}
    made = {}

    def rendered():
        if "ids" not in made:
            made["ids"] = identity_set(space, n_identities, n_per_identity, nuisance,
                                       seed=seed, margin=margin)
        return made["ids"]

    def chips(condition, points):  # dlib's uint8 chips (its values are whole numbers)
        if condition not in made:
            made[condition] = face_chips(rendered().images, points).to(torch.uint8)
        return made[condition]

    def geometry(condition):
        ids = rendered()
        undetected = np.zeros(0, dtype=np.int64)
        points = ids.landmarks
        if condition == "detected":
            mean_face = space.shape_landmarks(np.zeros((1, space.n_shape)))[0] + margin
            box = np.r_[mean_face.min(0), mean_face.max(0)]
            points, undetected = _detected_landmarks(ids.images, box)
        grey = chips(condition, points).float().mean(1)
        side = grey.shape[-1] // PIXEL_STEP * PIXEL_STEP
        cells = side // PIXEL_STEP
        small = grey[:, :side, :side].reshape(len(grey), cells, PIXEL_STEP, cells,
                                              PIXEL_STEP).mean((2, 4))
        return {"labels": torch.from_numpy(ids.labels),
                "params": torch.from_numpy(ids.params),
                "landmarks": torch.from_numpy(points),
                "undetected": torch.from_numpy(undetected),
                "fitted": torch.from_numpy(space.transform(ids.images, points)),
                "pixels": small.round().to(torch.uint8).flatten(1)}

    out = IdentityFeatures(labels=np.zeros(0), params=np.zeros(0),
                           undetected=np.zeros(0, np.int64), fitted={}, pixels={},
                           responses={})
    for condition in conditions:
        data = experiment._cached("identity-geometry", {**key, "condition": condition},
                                  lambda: geometry(condition))
        out.labels, out.params = data["labels"].numpy(), data["params"].numpy()
        out.fitted[condition] = data["fitted"].numpy()
        out.pixels[condition] = data["pixels"].numpy().astype(np.float64)
        if condition == "detected":
            out.undetected = data["undetected"].numpy()
        points = data["landmarks"].numpy()
        for name, pretrained in networks:
            layer = experiment.descriptor_layer(name)

            def record():
                model = experiment.network(name, pretrained)
                x = experiment.inputs(chips(condition, points), _chip_landmarks(points),
                                      name)
                recorded = extract.record(model, x, {layer: "all"}, batch_size=50,
                                          progress=progress)
                return {"values": recorded.values}

            response_key = {**key, "condition": condition, "network": name,
                            "pretrained": bool(pretrained), "layer": layer}
            if name != "dlib-resnet":  # how its chips are filled beyond the dlib chip
                response_key["border"] = experiment.INPUT_BORDER
            data = experiment._cached("identity-responses", response_key, record)
            values = data["values"].double().numpy()
            out.responses[(name, bool(pretrained), condition)] = values
    return out


def recognition_routes(features: IdentityFeatures, fitting: np.ndarray, space,
                       network: str = "dlib-resnet", condition: str = "given",
                       n_pixel_components: int = 50) -> dict:
    """The routes of the comparison in one landmark condition, every linear map and PCA
    fitted on the ``fitting`` rows. Returns name -> (fitting rows, evaluation rows):

    - ``CNN``: the trained network's descriptors; ``untrained CNN`` (the control, when
      recorded): the same architecture with random weights;
    - ``pixels (PCA)``: the first ``n_pixel_components`` principal components of the
      grey chips (at most one fewer than the fitting images; the baseline any
      representation must beat);
    - ``decoded params``: the generating parameters decoded linearly (ridge) from the
      CNN's descriptors;
    - ``fitted params``: the parameters fitted to the image with the condition's
      landmarks;
    - ``encoded (fitted-param fit)`` / ``encoded (true-param fit)``: the descriptors
      predicted linearly from the fitted parameters, by an encoder fitted on fitted or
      on generating parameters;
    - ``true params``, ``encoded (true params)``: the generating parameters and the
      descriptors predicted from them, the linear model's best case.

    Parameters are normalised with Chang & Tsao's normalisation referred to the fitting
    rows. The fitting rows of a linear route are its cross-validated predictions (10
    folds of contiguous rows, so of whole identities when an identity's images are
    adjacent and 10 divides the identities), so choices made on them are made on images
    the map did not see.
    """
    from sklearn.decomposition import PCA

    from .encoding import LinearDecoder, LinearEncoder

    fitting = np.asarray(fitting, dtype=bool)
    if fitting.shape != features.labels.shape or fitting.all() or not fitting.any():
        raise ValueError("fitting must mark some, not all, rows of the features")
    if (network, True, condition) not in features.responses:
        raise KeyError(f"no responses of {network} in the {condition} condition; "
                       f"recorded: {sorted(features.responses)}")
    fit, ev = fitting, ~fitting
    responses = features.responses[(network, True, condition)]
    true = space.normalize(features.params, reference=features.params[fit])
    fitted_params = features.fitted[condition]
    fitted = space.normalize(fitted_params, reference=fitted_params[fit])
    # the true-parameter encoder meets fitted parameters in its own units
    fitted_as_true = space.normalize(fitted_params, reference=features.params[fit])
    decoder = LinearDecoder(cv=10).fit(responses[fit], true[fit])
    encoder_true = LinearEncoder().fit(true[fit], responses[fit])
    encoder_fitted = LinearEncoder().fit(fitted[fit], responses[fit])
    n_components = min(n_pixel_components, int(fit.sum()) - 1)  # a small fitting set
    pca = PCA(n_components, svd_solver="randomized", random_state=0).fit(
        features.pixels[condition][fit])

    def numpy(t):
        return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)

    routes = {"CNN": (responses[fit], responses[ev])}
    untrained = features.responses.get((network, False, condition))
    if untrained is not None:
        routes["untrained CNN"] = (untrained[fit], untrained[ev])
    routes.update({
        "pixels (PCA)": (pca.transform(features.pixels[condition][fit]),
                         pca.transform(features.pixels[condition][ev])),
        "decoded params": (numpy(decoder.cv_predictions_),
                           numpy(decoder.predict(responses[ev]))),
        "fitted params": (fitted[fit], fitted[ev]),
        "encoded (fitted-param fit)": (numpy(encoder_fitted.cv_predictions_),
                                       numpy(encoder_fitted.predict(fitted[ev]))),
        "encoded (true-param fit)": (numpy(encoder_true.predict(fitted_as_true[fit])),
                                     numpy(encoder_true.predict(fitted_as_true[ev]))),
        "true params": (true[fit], true[ev]),
        "encoded (true params)": (numpy(encoder_true.cv_predictions_),
                                  numpy(encoder_true.predict(true[ev]))),
    })
    return routes


@dataclass
class Comparison:
    """Every route of one network in one landmark condition on the evaluation
    identities.

    distances : :func:`metric_table` (every route x distance, the reported one chosen
        on the fitting identities); chosen : route -> (evaluation features as scored,
        metric, distance name); labels : the evaluation labels; rows : their row indices
        in the identity set; results : :func:`bootstrap` against the CNN.
    """

    distances: pd.DataFrame
    chosen: dict
    labels: np.ndarray
    rows: np.ndarray
    results: pd.DataFrame

    def on(self, keep: np.ndarray, **bootstrap_options) -> pd.DataFrame:
        """:func:`bootstrap` on the evaluation images where ``keep`` (a mask over the
        identity set's rows) is True; identities left with fewer than two images
        drop."""
        keep = np.asarray(keep, dtype=bool)[self.rows]
        labels, counts = np.unique(self.labels[keep], return_counts=True)
        keep &= np.isin(self.labels, labels[counts >= 2])
        routes = {name: (x[keep], metric)
                  for name, (x, metric, _) in self.chosen.items()}
        results = bootstrap(routes, self.labels[keep], **bootstrap_options)
        results.insert(0, "distance", [self.chosen[name][2] for name in results.index])
        return results


def compare_routes(features: IdentityFeatures, fitting: np.ndarray, space,
                   network: str = "dlib-resnet", condition: str = "given",
                   statistics: Sequence[str] = STATISTICS, n_resamples: int = 1000,
                   seed: int = 0) -> Comparison:
    """:func:`recognition_routes`, each route's distance chosen on the fitting
    identities (:func:`metric_table`), and every route scored on the evaluation
    identities with bootstrap intervals and paired differences from the CNN
    (:func:`bootstrap`)."""
    fitting = np.asarray(fitting, dtype=bool)
    routes = recognition_routes(features, fitting, space, network, condition)
    table, chosen = metric_table(routes, features.labels[fitting],
                                 features.labels[~fitting])
    labels = features.labels[~fitting]
    results = bootstrap({name: (x, metric) for name, (x, metric, _) in chosen.items()},
                        labels, n_resamples=n_resamples, seed=seed,
                        statistics=statistics)
    results.insert(0, "distance", [chosen[name][2] for name in results.index])
    return Comparison(distances=table, chosen=chosen, labels=labels,
                      rows=np.flatnonzero(~fitting), results=results)


def nuisance_sweep(space, network: str, strengths: Sequence[float], n_identities: int,
                   n_per_identity: int, conditions: Sequence[str] = CONDITIONS,
                   fitting_fraction: float = 0.5, seed: int = 1,
                   n_resamples: int = 1000, margin: int = MARGIN, progress: bool = False
                   ) -> pd.DataFrame:
    """Rank-1 (with its bootstrap interval over evaluation identities) and AUC of every
    route as the nuisance grows, three ways: image nuisance alone (illumination, pose,
    noise; no parameter jitter), parameter jitter alone, and both (``Nuisance.at``). The
    same identities and random draws serve every strength, and every map is refitted on
    each set's fitting identities. Returns a long table with columns ``nuisance``,
    ``strength``, ``condition``, ``route``, ``rank1``, ``rank1_low``, ``rank1_high``,
    ``auc``, ``gallery``, ``undetected``."""
    from .datasets import Nuisance

    kinds = {"image": lambda s: Nuisance.at(image=s, jitter=0.0),
             "jitter": lambda s: Nuisance.at(image=0.0, jitter=s),
             "both": lambda s: Nuisance.at(image=s, jitter=s)}
    runs = [(kind, float(s)) for kind in kinds for s in strengths]
    if progress:
        from tqdm.auto import tqdm
        runs = tqdm(runs, desc="nuisance sweep")
    rows, done = [], {}
    for kind, strength in runs:
        nuisance = kinds[kind](strength)
        if nuisance not in done:  # strength 0 is the same set for every kind
            features = identity_features(space, n_identities, n_per_identity, nuisance,
                                         seed=seed, networks=((network, True),),
                                         conditions=conditions, margin=margin)
            fitting = split_identities(features.labels, fitting_fraction, seed)
            done[nuisance] = []
            for condition in conditions:
                comparison = compare_routes(features, fitting, space, network,
                                            condition, statistics=("rank1",),
                                            n_resamples=n_resamples, seed=seed)
                table = comparison.distances
                auc = table[table.chosen].set_index("route")
                for route, row in comparison.results.iterrows():
                    done[nuisance].append({
                        "condition": condition, "route": route, "rank1": row["rank1"],
                        "rank1_low": row["rank1_low"], "rank1_high": row["rank1_high"],
                        "auc": auc.loc[route, "auc"], "gallery": row["gallery"],
                        "undetected": len(features.undetected)
                        if condition == "detected" else 0})
        rows += [{"nuisance": kind, "strength": strength, **row}
                 for row in done[nuisance]]
    return pd.DataFrame(rows)


def best_route(comparison: Comparison, routes: Sequence[str] = IMAGE_ROUTES) -> str:
    """Of ``routes``, the one with the best rank-1 (ties: AUC) on the fitting
    identities, each with its chosen distance: picked without the evaluation
    identities, so reporting it selects nothing on them."""
    chosen = comparison.distances[comparison.distances.chosen].set_index("route")
    chosen = chosen.loc[[r for r in routes if r in chosen.index]]
    if chosen.empty:
        raise KeyError(f"none of {list(routes)} is in the comparison")
    return max(chosen.index, key=lambda r: (chosen.loc[r, "fitting_rank1"],
                                            chosen.loc[r, "fitting_auc"]))


def real_face_agreement(space, features: IdentityFeatures, fitting: np.ndarray,
                        network: str, faces, metric: str = "euclidean",
                        condition: str = "detected", n_resamples: int = 1000,
                        n_synthetic: int = 100, seed: int = 0) -> dict:
    """How well the linear route agrees with the CNN on which real faces are alike.

    ``faces`` is a `facelin.datasets.FaceSet` of real photographs (their landmarks from
    dlib). Each face's parameters are fitted from its landmarks and texture, and the
    encoder fitted on the ``fitting`` identities' fitted parameters (``condition``)
    predicts its descriptor. Returns name -> (rho, low, high),
    :func:`distance_agreement` with an interval from resampling faces, for the
    predicted and the fitted-parameter routes against the network's own descriptors,
    and the same on ``n_synthetic`` evaluation images (one per identity) as the
    reference.
    """
    from . import experiment, extract
    from .encoding import LinearEncoder
    from .faces import face_chips

    fitting = np.asarray(fitting, dtype=bool)
    import torch

    chips = face_chips(faces.images, faces.landmarks).to(torch.uint8)
    model = experiment.network(network, True)
    layer = experiment.descriptor_layer(network)
    inputs = experiment.inputs(chips, _chip_landmarks(faces.landmarks), network)
    descriptors = extract.record(model, inputs, {layer: "all"}, batch_size=50,
                                 progress=False).values.double().numpy()
    reference = features.fitted[condition][fitting]
    responses = features.responses[(network, True, condition)]
    encoder = LinearEncoder().fit(space.normalize(reference, reference=reference),
                                  responses[fitting])
    real = space.normalize(space.transform(faces.images, faces.landmarks),
                           reference=reference)
    predicted = encoder.predict(real).numpy()
    evaluation = np.flatnonzero(~fitting & gallery_mask(features.labels))[:n_synthetic]
    synthetic = space.normalize(features.fitted[condition][evaluation],
                                reference=reference)

    def agreement(a, b, metric_a):
        return distance_agreement(a, b, metric_a, metric, n_resamples=n_resamples,
                                  seed=seed)

    return {
        "real faces, predicted descriptors": agreement(predicted, descriptors, metric),
        "real faces, fitted parameters": agreement(real, descriptors, "euclidean"),
        "synthetic faces, predicted descriptors": agreement(
            encoder.predict(synthetic).numpy(), responses[evaluation], metric),
    }
