"""Identification and verification metrics, bootstrap intervals and the claim-2 rule,
against scikit-learn and hand-made cases."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from facelin import recognition as rec
from facelin.verdicts import VERDICTS


def clustered(n_ids=30, per_id=4, dim=8, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    labels = np.repeat(np.arange(n_ids), per_id)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_distances_match_definitions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    eu = np.linalg.norm(a[:, None] - b[None], axis=2)
    cos = 1 - (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(rec.distances(a, b, "euclidean"), eu, atol=1e-12)
    np.testing.assert_allclose(rec.distances(a, b, "cosine"), cos, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_verification_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + same, 1)  # rounding makes ties
    m = rec.verification_metrics(scores, same)
    assert m["auc"] == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    far, tar, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    # EER: where the staircase ROC crosses FAR = 1 - TAR, found by brute force
    grid = np.linspace(0, 1, 20001)
    staircase_tar = np.array([tar[far <= x].max() for x in grid])
    crossing = grid[np.argmin(np.abs(grid - (1 - staircase_tar)))]
    assert m["eer"] == pytest.approx(crossing, abs=2e-3)


def test_extreme_rocs():
    same = np.r_[np.ones(5, bool), np.zeros(5, bool)]
    # Perfect separation: EER 0, AUC 1, every TAR 1.
    v = rec.verification_metrics(np.r_[np.ones(5), np.zeros(5)], same)
    assert v["eer"] == 0 and v["auc"] == 1 and v["tar@far=0.01"] == 1
    # Swapped labels: EER 1, AUC 0.
    v = rec.verification_metrics(np.r_[np.zeros(5), np.ones(5)], same)
    assert v["eer"] == 1 and v["auc"] == 0


def test_eer_of_symmetric_overlap():
    # Genuine uniform on [0.5, 1.5], impostor on [0, 1]: EER = 0.25 exactly.
    g = np.linspace(0.5, 1.5, 4001)
    i = np.linspace(0.0, 1.0, 4001)
    same = np.r_[np.ones(4001, bool), np.zeros(4001, bool)]
    f, t, _ = rec.roc_curve(np.r_[g, i], same)
    assert rec.metrics._eer(f, t) == pytest.approx(0.25, abs=1e-3)


def test_tar_at_far_is_highest_tar_within_far():
    far = np.array([0, 0.001, 0.005, 0.02, 1])
    tar = np.array([0, 0.4, 0.6, 0.9, 1])
    assert rec.metrics._tar_at_far(far, tar, 1e-2) == 0.6
    assert rec.metrics._tar_at_far(far, tar, 1e-3) == 0.4


def test_identify_rank1_and_cmc():
    x, labels = clustered(spread=0.05)
    gallery = np.arange(len(labels)) % 4 == 0
    result = rec.identify(x[gallery], labels[gallery], x[~gallery], labels[~gallery])
    assert result.rank1 == 1.0 and result.n_identities == 30
    noisy, labels = clustered(spread=3.0)
    result = rec.identify(noisy[gallery], labels[gallery], noisy[~gallery],
                          labels[~gallery], metric="euclidean")
    assert result.rank1 < 0.6
    assert np.all(np.diff(result.cmc) >= 0) and result.cmc[-1] == 1.0
    assert result.rank(5) >= result.rank1


def test_identify_brute_force():
    rng = np.random.default_rng(3)
    g, gl = rng.normal(size=(12, 4)), np.repeat(np.arange(4), 3)
    p, pl = rng.normal(size=(9, 4)), np.tile(np.arange(3), 3)
    d = np.linalg.norm(p[:, None] - g[None], axis=2)
    nearest_id = gl[np.argmin(d, axis=1)]
    result = rec.identify(g, gl, p, pl, metric="euclidean")
    assert result.rank1 == pytest.approx((nearest_id == pl).mean())


def test_verify_pools_every_pair():
    x, labels = clustered(n_ids=40, spread=0.8)
    v = rec.verify(x, labels=labels)
    assert 0.5 < v.auc <= 1 and 0 <= v.eer < 0.5
    pairs, same = rec.all_pairs(labels)
    assert len(same) == len(labels) * (len(labels) - 1) // 2
    scores = -np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1)
    assert rec.verify(x, labels=labels, metric="euclidean").auc == pytest.approx(
        roc_auc_score(same, scores))
    clean = rec.verify(*clustered(n_ids=40, spread=0.05))
    assert clean.auc > v.auc and clean.eer < v.eer
    assert clean.tar_at_far[1e-3] == pytest.approx(1.0)


ONE = {"a": (np.eye(4), "cosine")}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rec.verify(np.ones((4, 2)), labels=[0, 0, 1, 1], pairs=[[0, 1]]),
         "exactly one"),
        (lambda: rec.verify(np.full((4, 2), np.nan), labels=[0, 0, 1, 1]), "NaN"),
        (lambda: rec.verify(np.ones((4, 2)), labels=[0, 1]), "one label per row"),
        (lambda: rec.verify(np.ones(4), labels=[0, 0, 1, 1]), "2-d"),
        (lambda: rec.identify(np.eye(2), [0, 1], np.eye(2), [0, 2]),
         "missing from the gallery"),
        (lambda: rec.distances(np.zeros((2, 2)), metric="cosine"), "all-zero"),
        (lambda: rec.distances(np.eye(2), metric="manhattan"), "metric must be"),
        (lambda: rec.roc_curve([1.0, 2.0], [True, True]), "both same and different"),
        (lambda: rec.bootstrap(ONE, [0, 0, 1, 1], reference="b"), "reference"),
        (lambda: rec.bootstrap(ONE, [0, 0, 1, 1], reference=None, n_resamples=1),
         "n_resamples"),
        (lambda: rec.bootstrap(ONE, [0, 0, 1, 1], reference=None,
                               statistics=("rank2",)), "unknown statistics"),
        (lambda: rec.bootstrap(ONE, [0, 1, 2, 2], reference=None), "single image"),
    ],
)
def test_bad_input_is_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def write_lfw_fixture(root, n_people=6, per_person=3, per_class=2, n_folds=10, seed=0):
    """A small data set in LFW's layout: <root>/<Name>/<Name>_0001.jpg and pairs.txt."""
    from skimage import io

    rng = np.random.default_rng(seed)
    people = [f"Person_{chr(65 + k)}" for k in range(n_people)]
    for k, name in enumerate(people):
        (root / name).mkdir(parents=True)
        for i in range(1, per_person + 1):
            img = np.full((16, 16, 3), 20 * k + 10, np.uint8) + rng.integers(
                0, 3, (16, 16, 3), dtype=np.uint8)
            io.imsave(root / name / f"{name}_{i:04d}.jpg", img, check_contrast=False)
    lines = [f"{n_folds} {per_class}"]
    for _ in range(n_folds):
        for _ in range(per_class):
            name = people[rng.integers(n_people)]
            i, j = rng.choice(np.arange(1, per_person + 1), 2, replace=False)
            lines.append(f"{name} {i} {j}")
        for _ in range(per_class):
            a, b = rng.choice(n_people, 2, replace=False)
            lines.append(f"{people[a]} {rng.integers(1, per_person + 1)} "
                         f"{people[b]} {rng.integers(1, per_person + 1)}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")


def mean_colour(images):
    return np.array([np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(0)
                     for image in images])


def test_lfw_protocol_on_fixture(tmp_path):
    write_lfw_fixture(tmp_path)
    # The fixture's identities differ in brightness, so mean colour separates them.
    result = rec.lfw_pairs_protocol(tmp_path, mean_colour, progress=False)
    assert len(result.verification.far) > 2 and len(result.fold_accuracy) == 10
    assert result.accuracy == 1.0 and result.verification.auc == 1.0
    assert all(p.name.startswith(p.parent.name + "_") for p in result.paths)
    # The extractor sees only the images the pairs name, once each.
    seen = []
    rec.lfw_pairs_protocol(tmp_path, lambda images: seen.append(len(images)) or
                           mean_colour(images), progress=False)
    assert seen[0] == len(result.paths) <= 18
    # A feature that ignores the image cannot do better than chance.
    blind = rec.lfw_pairs_protocol(tmp_path, lambda images: np.ones((len(images), 1)),
                                   progress=False)
    assert blind.accuracy <= 0.75


def test_descriptor_extractor_falls_back_to_the_image_centre(tmp_path):
    from facelin import experiment

    write_lfw_fixture(tmp_path, n_people=3, per_person=2, per_class=1, n_folds=2)
    extractor = rec.DescriptorExtractor(experiment.network("dlib-resnet"),
                                        progress=False)
    result = rec.lfw_pairs_protocol(tmp_path, extractor, progress=False)
    # flat 16x16 squares hold no face: every image went through the fallback box
    assert extractor.n_undetected == len(result.paths) > 0
    assert len(result.fold_accuracy) == 2


def test_lfw_protocol_errors(tmp_path):
    write_lfw_fixture(tmp_path)
    pairs_text = (tmp_path / "pairs.txt").read_text()
    (tmp_path / "pairs.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no pairs.txt"):
        rec.lfw_pairs_protocol(tmp_path, mean_colour, progress=False)
    lines = pairs_text.splitlines()
    (tmp_path / "pairs.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="announces 40 pairs, the file has 39"):
        rec.lfw_pairs_protocol(tmp_path, mean_colour, progress=False)
    (tmp_path / "pairs.txt").write_text(pairs_text)
    with pytest.raises(ValueError, match="returned 1 rows"):
        rec.lfw_pairs_protocol(tmp_path, lambda images: np.ones((1, 3)), progress=False)
    for path in tmp_path.glob("Person_A/*.jpg"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="cannot be scored"):
        rec.lfw_pairs_protocol(tmp_path, mean_colour, progress=False)


def test_split_identities_and_gallery():
    labels = np.repeat(np.arange(10), 3)
    fitting = rec.split_identities(labels, 0.4, seed=1)
    assert len(np.unique(labels[fitting])) == 4
    assert not set(labels[fitting]) & set(labels[~fitting])
    gallery = rec.gallery_mask(labels)
    assert gallery.sum() == 10 and np.all(labels[gallery] == np.arange(10))
    with pytest.raises(ValueError, match="single image"):
        rec.gallery_mask([0, 0, 1])
    with pytest.raises(ValueError, match="leaves one side empty"):
        rec.split_identities(labels, 1.0)


def test_whitener_whitens_the_fitting_set_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) @ np.array([[3.0, 0, 0], [1, 0.5, 0], [0, 0, 0.1]])
    w = rec.Whitener().fit(x)
    np.testing.assert_allclose(np.cov(w.transform(x), rowvar=False), np.eye(3),
                               atol=1e-10)
    # More features than rows: the null directions are dropped, not inverted.
    wide = rec.Whitener().fit(rng.normal(size=(5, 8)))
    assert wide.transform(rng.normal(size=(2, 8))).shape == (2, 4)
    with pytest.raises(ValueError, match="expected 8 features"):
        wide.transform(np.ones((2, 3)))


def test_metric_table_chooses_on_fitting_identities():
    # Six clean identity dimensions of small variance beside a large, pure-noise one:
    # raw distances hear only the noise, whitening lets the clean ones speak. The choice
    # must come from the fitting identities alone.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), 3)
    clean = rng.normal(size=(60, 6))[labels] * 0.1 + 0.005 * rng.normal(size=(180, 6))
    x = np.c_[clean, 10 * rng.normal(size=(180, 1))]
    fitting = rec.split_identities(labels, 0.5, seed=0)
    table, chosen = rec.metric_table({"good": (x[fitting], x[~fitting])},
                                     labels[fitting], labels[~fitting])
    assert len(table) == len(rec.METRIC_OPTIONS) and table.chosen.sum() == 1
    best = table[table.chosen].iloc[0]
    assert "whitened" in best.distance and best.rank1 > 0.8
    raw = table[table.distance == "euclidean"].iloc[0]
    assert raw.rank1 < 0.3 and raw.auc < best.auc
    features, metric, name = chosen["good"]
    assert name == best.distance and features.shape[0] == (~fitting).sum()
    scored = rec.bootstrap({"good": (features, metric)}, labels[~fitting],
                           reference=None, n_resamples=10)
    assert scored.loc["good", "rank1"] == pytest.approx(best.rank1)
    # Evaluation identities that the choice would prefer otherwise change nothing.
    flipped = x.copy()
    flipped[~fitting, :6] = rng.normal(size=((~fitting).sum(), 6))
    table2, _ = rec.metric_table({"good": (flipped[fitting], flipped[~fitting])},
                                 labels[fitting], labels[~fitting])
    assert table2[table2.chosen].distance.iloc[0] == best.distance
    with pytest.raises(ValueError, match="in both the fitting and the evaluation"):
        rec.metric_table({"good": (x, x)}, labels, labels)


@pytest.mark.parametrize("seed", range(3))
def test_resampled_statistics_match_scikit_learn_with_weights(seed):
    x, labels = clustered(n_ids=25, per_id=3, spread=1.0, seed=seed)
    x = np.round(x, 1)  # ties between pairs
    route = rec.RouteScores(x, labels, "euclidean")
    counts = rec.resample._identity_counts(25, 4, seed)
    resampled = route.resampled(counts)
    codes = np.unique(labels, return_inverse=True)[1]
    i, j = np.triu_indices(len(labels), 1)
    for b in range(counts.shape[1]):
        c = counts[:, b].astype(float)
        weight = np.where(codes[i] == codes[j], c[codes[i]], c[codes[i]] * c[codes[j]])
        far, tar, _ = sk_roc_curve(route.same, route.scores, sample_weight=weight,
                                   drop_intermediate=False)
        assert resampled["auc"][b] == pytest.approx(sk_auc(far, tar), abs=1e-12)
        assert resampled["eer"][b] == pytest.approx(rec.metrics._eer(far, tar), abs=1e-12)
        for f in (1e-2, 1e-3):
            assert resampled[f"tar@far={f:g}"][b] == pytest.approx(
                rec.metrics._tar_at_far(far, tar, f), abs=1e-12)
        # rank-1: each probe counted as often as its identity was drawn
        gallery = rec.gallery_mask(labels)
        ident = rec.identify(x[gallery], labels[gallery], x[~gallery], labels[~gallery],
                             "euclidean")
        probe_weight = c[codes[~gallery]]
        assert resampled["rank1"][b] == pytest.approx(
            (probe_weight * (ident.ranks == 1)).sum() / probe_weight.sum())
    # all identities once: the statistics on all data
    ones = route.resampled(np.ones((25, 1), dtype=np.int16))
    for name, value in route.point().items():
        assert ones[name][0] == pytest.approx(value, abs=1e-12), name


def test_bootstrap_intervals_cover_the_statistic_and_pair_the_routes():
    x, labels = clustered(n_ids=60, per_id=4, spread=0.9, seed=4)
    rng = np.random.default_rng(5)
    routes = {"CNN": (x, "euclidean"),
              "same, shifted": (x + 3.0, "euclidean"),  # the same distances
              "noisier": (x + 0.6 * rng.normal(size=x.shape), "euclidean")}
    table = rec.bootstrap(routes, labels, n_resamples=300)
    for stat in rec.STATISTICS:
        assert (table[f"{stat}_low"] <= table[stat]).all(), stat
        assert (table[stat] <= table[f"{stat}_high"]).all(), stat
        # the same distances: a paired difference of exactly 0, every resample
        row = table.loc["same, shifted"]
        assert (row[f"{stat}_diff"] == row[f"{stat}_diff_low"]
                == row[f"{stat}_diff_high"] == 0)
    noisy = table.loc["noisier"]
    assert noisy["auc_diff_low"] > 0 and noisy["rank1_diff_low"] > 0  # clearly worse
    # pairing: the paired interval is narrower than the two marginal ones side by side
    assert (noisy["auc_diff_high"] - noisy["auc_diff_low"]
            < (table.loc["CNN", "auc_high"] - noisy["auc_low"]))
    assert table.loc["CNN", "gallery"] == 60 and table.loc["CNN", "probes"] == 180
    assert table.loc["CNN", "genuine_pairs"] == 60 * 6
    # the same seed gives the same intervals
    again = rec.bootstrap(routes, labels, n_resamples=300)
    pd.testing.assert_frame_equal(table, again)


def test_bootstrap_known_answer():
    # Half of the identities are always recognised, the other half never: rank-1 is 0.5,
    # and resampling identities gives a binomial proportion over n identities, whose
    # 95% interval is about 0.5 +- 1.96 * sqrt(0.25 / n).
    n = 200
    labels = np.repeat(np.arange(n), 2)
    centres = np.eye(n) * 10
    x = centres[labels].copy()
    easy = np.arange(n) < n // 2
    for k in np.flatnonzero(~easy):  # a hard identity's probe sits on its neighbour
        x[2 * k + 1] = centres[(k + 1) % n] + 0.01 * (np.arange(n) == k)
    table = rec.bootstrap({"CNN": (x, "euclidean")}, labels, n_resamples=2000,
                          statistics=("rank1",))
    row = table.loc["CNN"]
    assert row["rank1"] == 0.5
    half = 1.96 * np.sqrt(0.25 / n)
    assert row["rank1_low"] == pytest.approx(0.5 - half, abs=0.015)
    assert row["rank1_high"] == pytest.approx(0.5 + half, abs=0.015)
    # perfect verification: every resample is perfect too
    clean = rec.bootstrap({"CNN": (centres[labels], "euclidean")}, labels,
                          n_resamples=50)
    assert clean.loc["CNN", "auc_low"] == clean.loc["CNN", "auc"] == 1.0
    assert clean.loc["CNN", "eer_high"] == 0.0


def made_up(differences: dict) -> pd.DataFrame:
    """A bootstrap-like table: route -> upper bound of CNN minus route, every
    statistic."""
    routes = ("CNN", *rec.IMAGE_ROUTES, *rec.GIVEN_PARAMETER_ROUTES, "decoded params")
    rows = {r: {f"{s}_diff_high": differences.get(r, 0.5) for s in rec.MARGINS}
            for r in routes}
    rows["CNN"] = {f"{s}_diff_high": 0.0 for s in rec.MARGINS}
    return pd.DataFrame(rows).T


@pytest.mark.parametrize("given, detected, verdict", [
    ({"fitted params": 0.01}, {"fitted params": 0.04}, "holds"),
    ({"fitted params": 0.01}, {"encoded (fitted-param fit)": 0.01}, "partly holds"),
    ({"encoded (true-param fit)": 0.0}, {}, "partly holds"),
    ({}, {"fitted params": 0.0}, "partly holds"),
    ({"true params": -0.01}, {"true params": -0.01}, "partly holds"),
    ({"decoded params": 0.0}, {"decoded params": 0.0}, "does not hold"),
    ({}, {}, "does not hold"),
    ({"fitted params": 0.05}, {"fitted params": 0.05}, "does not hold"),  # strict
])
def test_claim2_verdict_on_made_up_tables(given, detected, verdict):
    result, reason = rec.claim2_verdict({"given": made_up(given),
                                         "detected": made_up(detected)})
    assert result == verdict and result in VERDICTS and reason


def test_claim2_verdict_needs_every_statistic_within_its_margin():
    given = made_up({"fitted params": 0.0})
    given.loc["fitted params", "tar@far=0.01_diff_high"] = 0.2
    detected = given.copy()
    verdict, _ = rec.claim2_verdict({"given": given, "detected": detected})
    assert verdict == "does not hold"
    with pytest.raises(KeyError, match="conditions"):
        rec.claim2_verdict({"given": given})
    with pytest.raises(KeyError, match="routes"):
        rec.claim2_verdict({"given": given.drop("true params"), "detected": detected})
    with pytest.raises(KeyError, match="paired bounds"):
        rec.non_inferior(given.drop(columns="rank1_diff_high"))


def test_distance_agreement():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 4))
    assert rec.distance_agreement(a, 3 * a + 1) == pytest.approx(1.0)
    assert abs(rec.distance_agreement(a, rng.normal(size=(20, 4)))) < 0.2
    rho, low, high = rec.distance_agreement(a, a + 0.5 * rng.normal(size=a.shape),
                                            n_resamples=200)
    assert low <= rho <= high and 0 < low < high < 1
    with pytest.raises(ValueError, match="same rows"):
        rec.distance_agreement(a, a[:5])


def test_chip_landmarks_are_where_the_chip_puts_them():
    from facelin import faces
    from facelin.facespace import default_space

    space = default_space()
    params = space.sample(3, 0)
    for margin in (0, 10):
        images, points = space.synthesize(params, size=150, margin=margin)
        chip_points = rec.chip_landmarks(points)
        # synthesised faces sit where dlib's alignment puts them, whatever the margin
        np.testing.assert_allclose(chip_points, points - margin, atol=0.75)
    # a face moved in the image: its chip, and the landmarks in it, do not move
    shifted = np.roll(images, (7, -4), axis=(1, 2))
    moved = points + np.array([-4, 7])
    np.testing.assert_allclose(rec.chip_landmarks(moved), rec.chip_landmarks(points),
                               atol=1e-6)
    chips = faces.face_chips((shifted * 255).astype(np.uint8), moved)
    assert chips.shape == (3, 3, 150, 150)


def test_one_detector_pass_with_the_fallback_box(monkeypatch):
    from facelin import faces
    from facelin.datasets import identity_set
    from facelin.facespace import default_space

    space = default_space()
    ids = identity_set(space, 3, 2, 0.5, seed=0, margin=rec.MARGIN)
    real, calls = faces._detect, []

    def detector_misses_two(images, upsample):
        calls.append(len(images))
        boxes, missing = real(images, upsample)
        boxes[[1, 4]] = np.nan
        return boxes, sorted(set(missing) | {1, 4})

    monkeypatch.setattr(faces, "_detect", detector_misses_two)
    box = np.array([20.0, 20.0, 150.0, 150.0])
    points, undetected = rec.detected_landmarks(ids.images, box)
    assert calls == [6] and undetected.tolist() == [1, 4]
    assert points.shape == (6, 68, 2) and np.isfinite(points).all()
    # the predictor started from the box still finds these faces
    assert np.abs(points - ids.landmarks)[[1, 4]].mean(axis=(1, 2)).max() < 4.0


@pytest.fixture(scope="module")
def small_identity_features(tmp_path_factory):
    import os

    from facelin.facespace import default_space

    space = default_space()
    previous = os.environ.get("FACELIN_CACHE")
    os.environ["FACELIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        networks = (("dlib-resnet", True), ("dlib-resnet", False))
        features = rec.identity_features(space, 20, 3, 0.5, seed=0, networks=networks)
        again = rec.identity_features(space, 20, 3, 0.5, seed=0, networks=networks)
    finally:
        if previous is None:
            del os.environ["FACELIN_CACHE"]
        else:
            os.environ["FACELIN_CACHE"] = previous
    return space, features, again


def test_identity_features_in_two_landmark_conditions(small_identity_features):
    space, features, again = small_identity_features
    n = 60
    assert features.labels.shape == (n,)
    assert features.params.shape == (n, space.n_params)
    for condition in rec.CONDITIONS:
        assert features.fitted[condition].shape == (n, space.n_params)
        assert features.pixels[condition].shape == (n, 75 * 75)
        for pretrained in (True, False):
            key = ("dlib-resnet", pretrained, condition)
            assert features.responses[key].shape == (n, 128)
        # the second call reads the cache
        np.testing.assert_array_equal(again.fitted[condition],
                                      features.fitted[condition])
    # the generator's landmarks fit the parameters better than dlib's
    def fit_error(condition):
        return np.abs(features.fitted[condition][:, 0] - features.params[:, 0]).mean()
    assert fit_error("given") < fit_error("detected")
    r = np.corrcoef(features.fitted["detected"][:, 0], features.params[:, 0])[0, 1]
    assert r > 0.8
    assert not np.array_equal(features.responses[("dlib-resnet", True, "given")],
                              features.responses[("dlib-resnet", True, "detected")])


def test_compare_routes(small_identity_features):
    space, features, _ = small_identity_features
    fitting = rec.split_identities(features.labels, 0.5, seed=0)
    comparison = rec.compare_routes(features, fitting, space, "dlib-resnet", "given",
                                    n_resamples=50)
    results = comparison.results
    assert {"CNN", "untrained CNN", "pixels (PCA)", "decoded params", *rec.IMAGE_ROUTES,
            *rec.GIVEN_PARAMETER_ROUTES} == set(results.index)
    assert (results.gallery == 10).all() and (results.probes == 20).all()
    assert len(comparison.distances) == len(results) * len(rec.METRIC_OPTIONS)
    # without parameter jitter's rival, the true parameters are the ceiling
    assert results.loc["true params", "rank1"] >= results.loc["untrained CNN", "rank1"]
    assert results.loc["CNN", "auc"] > 0.9 and results.loc["CNN", "rank1_diff"] == 0
    keep = np.ones(len(features.labels), bool)
    keep[comparison.rows[:3]] = False  # the first evaluation identity loses its images
    subset = comparison.on(keep, n_resamples=20)
    assert subset.loc["CNN", "gallery"] == 9
    assert subset.distance.equals(results.distance)
    tables = {c: rec.compare_routes(features, fitting, space, "dlib-resnet", c,
                                    n_resamples=50).results for c in rec.CONDITIONS}
    assert rec.claim2_verdict(tables)[0] in VERDICTS
    with pytest.raises(ValueError, match="some, not all"):
        rec.recognition_routes(features, np.ones(len(features.labels), bool), space)
    with pytest.raises(KeyError, match="no responses"):
        rec.recognition_routes(features, fitting, space, "other-net")


CHAPTER_ROUTES = ("CNN", "untrained CNN", "pixels (PCA)", "decoded params",
                  *rec.IMAGE_ROUTES, *rec.GIVEN_PARAMETER_ROUTES)


def made_up_comparison(spreads=None, n_ids=20, per_id=3, seed=0):
    """Every chapter route on clustered features (the same identities, each route with
    its own spread around them), scored by `score_routes`."""
    spreads = {"untrained CNN": 3.0, "pixels (PCA)": 2.0, **(spreads or {})}
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 6))
    labels = np.repeat(np.arange(n_ids), per_id)
    fitting = rec.split_identities(labels, 0.5, seed=seed)
    routes = {}
    for name in CHAPTER_ROUTES:
        x = centres[labels] + spreads.get(name, 0.3) * rng.normal(size=(len(labels), 6))
        routes[name] = (x[fitting], x[~fitting])
    return rec.score_routes(routes, labels, fitting, n_resamples=40, seed=seed), labels


def test_score_routes_chooses_on_fitting_and_pairs_with_the_cnn():
    comparison, labels = made_up_comparison()
    results = comparison.results
    assert list(results.index) == list(CHAPTER_ROUTES)
    assert (results.gallery == 10).all() and (results.probes == 20).all()
    assert results.loc["CNN", "rank1_diff"] == 0 and len(comparison.labels) == 30
    np.testing.assert_array_equal(labels[comparison.rows], comparison.labels)
    chosen = comparison.distances[comparison.distances.chosen].set_index("route")
    assert results.distance.equals(chosen.loc[results.index, "distance"])
    # the controls are far noisier than the CNN: their paired differences are large
    assert (results.loc[["untrained CNN", "pixels (PCA)"], "rank1_diff_low"] > 0.2).all()
    with pytest.raises(ValueError, match="must mark"):
        rec.score_routes({}, labels, np.ones(3, bool))


def test_summary_and_distance_tables():
    comparison, _ = made_up_comparison()
    row = comparison.results.loc["pixels (PCA)"]
    assert rec.interval_text(row, "auc") == (
        f"{row.auc:.3f} [{row.auc_low:.3f}, {row.auc_high:.3f}]")
    assert rec.interval_text({"x": 0.5, "x_low": 0.25, "x_high": 1}, "x", 1) == (
        "0.5 [0.2, 1.0]")
    summary = rec.summary_table(comparison.results)
    assert list(summary.index) == list(CHAPTER_ROUTES)
    assert list(summary.columns[:4]) == ["distance", "gallery", "rank1",
                                         "CNN - route, rank1"]
    assert summary.shape[1] == 2 + 2 * len(rec.STATISTICS)
    assert summary.loc["CNN", "CNN - route, eer"] == "0.000 [0.000, 0.000]"
    wide = rec.rank1_by_distance(comparison)
    assert list(wide.index) == list(CHAPTER_ROUTES)
    assert wide.shape[1] == len(rec.METRIC_OPTIONS)
    for route, distance in comparison.results.distance.items():
        # exactly the chosen distance is starred, with the evaluation rank-1
        starred = [c for c in wide.columns if wide.loc[route, c].endswith(" *")]
        assert starred == [distance]
        rank1 = comparison.results.loc[route, "rank1"]
        assert wide.loc[route, distance] == f"{rank1:.3f} *"


def test_roc_figure_draws_every_route_in_every_panel():
    import matplotlib

    matplotlib.use("Agg")
    comparisons = {}
    for c in rec.CONDITIONS:
        comparisons["a", c] = made_up_comparison(seed=1)[0]
        comparisons["b", c] = made_up_comparison(seed=2)[0]
    fig = rec.roc_figure(comparisons, ["a", "b"])
    axes = fig.axes
    assert len(axes) == 4 and axes[2].get_title() == "b, given landmarks"
    palette = rec.route_palette()
    for ax in axes:
        curves = [line for line in ax.get_lines() if line.get_label()[0] != "_"]
        assert [matplotlib.colors.to_hex(line.get_color()) for line in curves] == [
            matplotlib.colors.to_hex(palette[r]) for r in rec.SHOWN_ROUTES]
    name, metric = "fitted params", comparisons["b", "given"].chosen["fitted params"][1]
    x = comparisons["b", "given"].chosen[name][0]
    auc = rec.verify(x, labels=comparisons["b", "given"].labels, metric=metric).auc
    labels = [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert f"{name} (AUC {auc:.3f})" in labels
    with pytest.raises(ValueError, match="at most 10"):
        rec.route_palette([str(i) for i in range(11)])
    matplotlib.pyplot.close("all")


def made_up_sweep():
    rows = []
    for net in ("a", "b"):
        for kind in rec.NUISANCE_KINDS:
            for strength in (0.0, 1.0, 2.0):
                for condition in rec.CONDITIONS:
                    for k, route in enumerate(("CNN", "fitted params", "true params")):
                        value = 1 - strength * (k + 1) / 10 - (net == "b") / 10
                        rows.append({"network": net, "nuisance": kind,
                                     "strength": strength, "condition": condition,
                                     "route": route, "rank1": value,
                                     "rank1_low": value - 0.05,
                                     "rank1_high": value + 0.05})
    return pd.DataFrame(rows)


def test_sweep_figure_and_table():
    import matplotlib

    matplotlib.use("Agg")
    sweep = made_up_sweep()
    routes = ["CNN", "fitted params", "true params"]
    fig = rec.sweep_figure(sweep, "b", routes)
    assert len(fig.axes) == 6 and fig.axes[4].get_title() == (
        "jitter nuisance, detected landmarks")
    line = fig.axes[0].get_lines()[1]  # fitted params, the second route
    np.testing.assert_allclose(line.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(line.get_ydata(), [0.9, 0.7, 0.5])
    # a route keeps its colour of the ROC figure
    assert matplotlib.colors.to_hex(line.get_color()) == matplotlib.colors.to_hex(
        rec.route_palette()["fitted params"])
    with pytest.raises(ValueError, match="no rows"):
        rec.sweep_figure(sweep, "c", routes)
    matplotlib.pyplot.close("all")
    at = rec.sweep_rank1_at(sweep, 2)
    assert list(at) == [(n, c) for n in ("a", "b") for c in rec.CONDITIONS]
    table = at["b", "detected"]
    assert list(table.columns) == list(rec.NUISANCE_KINDS)
    assert table.loc["true params", "jitter"] == pytest.approx(1 - 0.6 - 0.1)
    with pytest.raises(ValueError, match="no strength"):
        rec.sweep_rank1_at(sweep, 3)


def test_claim2_findings_round_trip(tmp_path):
    from facelin import findings

    comparisons, verdicts, reasons, best, detected_only = {}, {}, {}, {}, {}
    for net in ("a", "b"):
        for c in rec.CONDITIONS:
            comparisons[net, c] = made_up_comparison(seed=3)[0]
            best[net, c] = rec.best_route(comparisons[net, c])
        verdicts[net], reasons[net] = rec.claim2_verdict(
            {c: comparisons[net, c].results for c in rec.CONDITIONS})
        detected_only[net] = comparisons[net, "detected"].on(
            np.ones(60, bool), n_resamples=20)
    _, labels = made_up_comparison(seed=3)
    fitting = rec.split_identities(labels, 0.5, seed=3)
    found = rec.claim2_findings(
        labels=labels, fitting=fitting, undetected=np.array([4, 7]),
        comparisons=comparisons, swapped=comparisons, detected_only=detected_only,
        best=best, agreement={"a": {"real": (0.5, 0.4, 0.6)}},
        sweep_at_max=rec.sweep_rank1_at(made_up_sweep(), 2), verdicts=verdicts,
        reasons=reasons, n_per_identity=3, n_resamples=40)
    path = findings.save("claim2_recognition", found, folder=tmp_path)
    loaded = findings.load("claim2_recognition", folder=tmp_path)
    assert path.parent == tmp_path
    assert loaded["n_fitting_identities"] == loaded["n_evaluation_identities"] == 10
    assert loaded["undetected_by_dlib"] == 2 and loaded["n_images"] == 60
    assert set(loaded["networks"]) == {"a", "b"}
    given = loaded["networks"]["b"]["given"]["fitted params"]
    expected = comparisons["b", "given"].results.loc["fitted params", "rank1_diff_high"]
    assert given["rank1_diff_high"] == pytest.approx(expected, rel=1e-3)
    assert loaded["networks"]["a"]["best_image_route"]["given"] == best["a", "given"]
    assert loaded["verdict"] == verdicts and loaded["verdict_rule"] == rec.VERDICT_RULE
    assert loaded["sweep_rank1_at_max"]["b, given"]["image"]["CNN"] == pytest.approx(0.7)
    assert loaded["real_faces_rank_correlation"]["a"]["real"] == [0.5, 0.4, 0.6]
    with pytest.raises(ValueError, match="must mark"):
        rec.claim2_findings(labels=labels, fitting=fitting[:5], undetected=[],
                            comparisons={}, swapped={}, detected_only={}, best={},
                            agreement={}, sweep_at_max={}, verdicts={}, reasons={},
                            n_per_identity=3, n_resamples=40)
