"""The comparison of claim 2: synthetic identity sets under two landmark conditions
(recorded once and cached), the routes from image to features, each scored with
bootstrap intervals against the CNN, the nuisance sweep and agreement on real faces."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..progress import progress as progress_bar
from .metrics import STATISTICS, distance_agreement, gallery_mask, split_identities
from .resample import bootstrap, metric_table
from .verdict import CONDITIONS, IMAGE_ROUTES

__all__ = ["MARGIN", "PIXEL_STEP", "IdentityFeatures", "identity_features",
           "recognition_routes", "Comparison", "compare_routes", "score_routes",
           "nuisance_sweep", "best_route", "real_face_agreement", "chip_landmarks",
           "detected_landmarks"]


def detected_landmarks(images, fallback_box) -> tuple[np.ndarray, np.ndarray]:
    """dlib's 68 landmarks ``(N, 68, 2)`` of every image from one detector pass, and the
    indices where the detector found no face: there the predictor starts from
    ``fallback_box`` ((4,) left, top, right, bottom) instead."""
    from ..faces import landmarks

    found = landmarks(images, on_missing="skip")
    points = np.empty((len(images), 68, 2))
    points[found.indices] = found.points
    if len(found.missing):
        boxes = np.tile(np.asarray(fallback_box, dtype=np.float64),
                        (len(found.missing), 1))
        points[found.missing] = landmarks([images[i] for i in found.missing],
                                          boxes=boxes)
    return points, found.missing


def chip_landmarks(landmarks, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Image landmarks (N, 68, 2) carried into the dlib chips that
    `facelin.faces.face_chips` cuts with them: dlib's ``extract_image_chip`` maps chip
    pixel (u, v) to ``origin + u * along_x + v * along_y``; this inverts it."""
    from ..faces import chip_transforms

    points = np.asarray(landmarks, dtype=np.float64)
    rects, angles = chip_transforms(points, size, padding)
    centre = (rects[:, :2] + rects[:, 2:]) / 2
    c, s = np.cos(angles), np.sin(angles)
    rotation = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    origin = centre + np.einsum("nij,nj->ni", rotation, rects[:, :2] - centre)
    extent = (rects[:, 2:] - rects[:, :2]) / (size - 1)
    to_image = rotation * extent[:, None, :]  # columns: along_x, along_y
    return np.einsum("nij,npj->npi", np.linalg.inv(to_image), points - origin[:, None])


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

    from .. import experiment, extract
    from ..datasets import Nuisance, identity_set
    from ..faces import face_chips

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
            points, undetected = detected_landmarks(ids.images, box)
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
        data = experiment.cached("identity-geometry", {**key, "condition": condition},
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
                x = experiment.inputs(chips(condition, points), chip_landmarks(points),
                                      name)
                recorded = extract.record(model, x, {layer: "all"}, batch_size=50,
                                          progress=progress)
                return {"values": recorded.values}

            response_key = {**key, "condition": condition, "network": name,
                            "pretrained": bool(pretrained), "layer": layer}
            if name != "dlib-resnet":  # how its chips are filled beyond the dlib chip
                response_key["border"] = experiment.INPUT_BORDER
            data = experiment.cached("identity-responses", response_key, record)
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

    from ..encoding import LinearDecoder, LinearEncoder

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
    routes = recognition_routes(features, fitting, space, network, condition)
    return score_routes(routes, features.labels, fitting, statistics, n_resamples,
                        seed)


def score_routes(routes: dict, labels, fitting, statistics: Sequence[str] = STATISTICS,
                 n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Each route's distance chosen on the fitting identities (:func:`metric_table`),
    and every route scored on the evaluation identities with bootstrap intervals and
    paired differences from the ``CNN`` route (:func:`bootstrap`).

    routes : name -> (fitting rows (n_f, d), evaluation rows (n_e, d)), as
        :func:`recognition_routes` gives them, one of them ``CNN``; labels : (n,)
        identity of every image; fitting : (n,) bool, True for the n_f fitting images.
    """
    labels = np.asarray(labels)
    fitting = np.asarray(fitting, dtype=bool)
    if fitting.shape != labels.shape:
        raise ValueError(f"fitting {fitting.shape} must mark the labels {labels.shape}")
    table, chosen = metric_table(routes, labels[fitting], labels[~fitting])
    evaluation = labels[~fitting]
    results = bootstrap({name: (x, metric) for name, (x, metric, _) in chosen.items()},
                        evaluation, n_resamples=n_resamples, seed=seed,
                        statistics=statistics)
    results.insert(0, "distance", [chosen[name][2] for name in results.index])
    return Comparison(distances=table, chosen=chosen, labels=evaluation,
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
    from ..datasets import Nuisance

    kinds = {"image": lambda s: Nuisance.at(image=s, jitter=0.0),
             "jitter": lambda s: Nuisance.at(image=0.0, jitter=s),
             "both": lambda s: Nuisance.at(image=s, jitter=s)}
    runs = progress_bar([(kind, float(s)) for kind in kinds for s in strengths],
                        desc="nuisance sweep", enabled=progress)
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
    from .. import experiment, extract
    from ..encoding import LinearEncoder
    from ..faces import face_chips

    fitting = np.asarray(fitting, dtype=bool)
    import torch

    chips = face_chips(faces.images, faces.landmarks).to(torch.uint8)
    model = experiment.network(network, True)
    layer = experiment.descriptor_layer(network)
    inputs = experiment.inputs(chips, chip_landmarks(faces.landmarks), network)
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
