"""Identification and verification metrics, against scikit-learn and hand-made cases."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from facelin import recognition as rec


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


@pytest.mark.parametrize("seed", range(5))
def test_roc_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + same, 1)  # rounding makes ties
    far, tar, thr = rec.roc_curve(scores, same)
    sk_far, sk_tar, sk_thr = sk_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, sk_far)
    np.testing.assert_allclose(tar, sk_tar)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert rec._auc(far, tar) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


def test_extreme_rocs():
    # Perfect separation: EER 0, AUC 1, every TAR 1.
    v = rec._metrics(np.r_[np.ones(5), np.zeros(5)], np.r_[np.ones(5, bool), np.zeros(5, bool)],
                     (1e-2,))
    assert v["eer"] == 0 and v["auc"] == 1 and v["tar@far=0.01"] == 1
    # Swapped labels: EER 1, AUC 0.
    v = rec._metrics(np.r_[np.zeros(5), np.ones(5)], np.r_[np.ones(5, bool), np.zeros(5, bool)],
                     (1e-2,))
    assert v["eer"] == 1 and v["auc"] == 0


def test_eer_of_symmetric_overlap():
    # Genuine uniform on [0.5, 1.5], impostor on [0, 1]: EER = 0.25 exactly.
    g = np.linspace(0.5, 1.5, 4001)
    i = np.linspace(0.0, 1.0, 4001)
    f, t, _ = rec.roc_curve(np.r_[g, i], np.r_[np.ones(4001, bool), np.zeros(4001, bool)])
    assert rec._eer(f, t) == pytest.approx(0.25, abs=1e-3)


def test_tar_at_far_is_highest_tar_within_far():
    far = np.array([0, 0.001, 0.005, 0.02, 1])
    tar = np.array([0, 0.4, 0.6, 0.9, 1])
    assert rec._tar_at_far(far, tar, 1e-2) == 0.6
    assert rec._tar_at_far(far, tar, 1e-3) == 0.4


def test_identify_rank1_and_cmc():
    x, labels = clustered(spread=0.05)
    gallery = np.arange(len(labels)) % 4 == 0
    result = rec.identify(x[gallery], labels[gallery], x[~gallery], labels[~gallery])
    assert result.rank1 == 1.0 and result.n_identities == 30
    noisy, labels = clustered(spread=3.0)
    result = rec.identify(noisy[gallery], labels[gallery], noisy[~gallery], labels[~gallery],
                          metric="euclidean")
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


def test_verify_folds_split_by_identity_and_intervals():
    x, labels = clustered(n_ids=40, spread=0.8)
    v = rec.verify(x, labels=labels, n_folds=10)
    assert 0.5 < v.auc <= 1 and 0 <= v.eer < 0.5
    assert len(v.folds["auc"]) == 10
    mean, lo, hi = v.interval("auc")
    assert lo <= mean <= hi
    clean = rec.verify(*clustered(n_ids=40, spread=0.05), n_folds=10)
    assert clean.auc > v.auc and clean.eer < v.eer
    assert clean.tar_at_far[1e-3] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rec.verify(np.ones((4, 2)), labels=[0, 0, 1, 1], pairs=[[0, 1]]), "exactly one"),
        (lambda: rec.verify(np.full((4, 2), np.nan), labels=[0, 0, 1, 1]), "NaN"),
        (lambda: rec.verify(np.ones((4, 2)), labels=[0, 1]), "one label per row"),
        (lambda: rec.verify(np.ones(4), labels=[0, 0, 1, 1]), "2-d"),
        (lambda: rec.verify(np.eye(4), labels=[0, 0, 1, 1], n_folds=10), "cannot be split"),
        (lambda: rec.identify(np.eye(2), [0, 1], np.eye(2), [0, 2]), "missing from the gallery"),
        (lambda: rec.distances(np.zeros((2, 2)), metric="cosine"), "all-zero"),
        (lambda: rec.distances(np.eye(2), metric="manhattan"), "metric must be"),
        (lambda: rec.roc_curve([1.0, 2.0], [True, True]), "both same and different"),
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
            img = np.full((16, 16, 3), 20 * k + 10, np.uint8) + rng.integers(0, 3, (16, 16, 3),
                                                                               dtype=np.uint8)
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
    extractor = rec.DescriptorExtractor(experiment.network("trained"), progress=False)
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
    np.testing.assert_allclose(np.cov(w.transform(x), rowvar=False), np.eye(3), atol=1e-10)
    # More features than rows: the null directions are dropped, not inverted.
    wide = rec.Whitener().fit(rng.normal(size=(5, 8)))
    assert wide.transform(rng.normal(size=(2, 8))).shape == (2, 4)
    with pytest.raises(ValueError, match="expected 8 features"):
        wide.transform(np.ones((2, 3)))


def test_evaluate_chooses_on_fitting_identities_and_scores_held_out_ones():
    # Six clean identity dimensions of small variance beside a large, pure-noise one:
    # raw distances hear only the noise, whitening lets the clean ones speak. The choice
    # must come from the fitting identities alone.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), 3)
    clean = rng.normal(size=(60, 6))[labels] * 0.1 + 0.005 * rng.normal(size=(180, 6))
    x = np.c_[clean, 10 * rng.normal(size=(180, 1))]
    fitting = rec.split_identities(labels, 0.5, seed=0)
    e = rec.evaluate(x[fitting], labels[fitting], x[~fitting], labels[~fitting])
    assert e.whitened and e.identification.rank1 > 0.8
    assert len(e.candidates) == 4 and len(e.rank1_folds) == 10
    raw = rec.evaluate(x[fitting], labels[fitting], x[~fitting], labels[~fitting],
                       metrics=("euclidean",), whiten=(False,))
    assert not raw.whitened and raw.identification.rank1 < 0.3
    assert raw.verification.auc < e.verification.auc
    mean, low, high = e.rank1_interval()
    assert low <= mean <= high and mean == pytest.approx(e.rank1_folds.mean())
    table, evaluations = rec.compare({"good": (x[fitting], x[~fitting])}, labels[fitting],
                                     labels[~fitting])
    assert table.loc["good", "rank1"] == pytest.approx(e.identification.rank1)
    with pytest.raises(ValueError, match="in both the fitting and the evaluation"):
        rec.evaluate(x, labels, x, labels)
    with pytest.raises(ValueError, match="unknown feature sets"):
        rec.compare({"good": (x[fitting], x[~fitting])}, labels[fitting], labels[~fitting],
                    {"bad": {}})


def test_distance_agreement():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 4))
    assert rec.distance_agreement(a, 3 * a + 1) == pytest.approx(1.0)
    assert abs(rec.distance_agreement(a, rng.normal(size=(20, 4)))) < 0.2
    with pytest.raises(ValueError, match="same rows"):
        rec.distance_agreement(a, a[:5])


@pytest.fixture(scope="module")
def small_identity_features():
    from facelin import experiment
    from facelin.datasets import Nuisance, identity_set, lfw_subset
    from facelin.facespace import FaceSpace

    faces = lfw_subset()
    space = FaceSpace(n_shape=6, n_appearance=6).fit(faces.images[:60], faces.landmarks[:60])
    ids = identity_set(space, 12, 2, Nuisance.at(image=0.5, jitter=0.0), seed=0,
                       margin=rec.MARGIN)
    models = {name: experiment.network(name) for name in ("trained", "untrained")}
    return space, ids, models, rec.identity_features(ids, space, models)


def test_identity_features_and_linear_feature_sets(small_identity_features):
    space, ids, models, features = small_identity_features
    n = len(ids.labels)
    assert features.responses["trained"].shape == (n, 128)
    assert features.fitted.shape == features.params.shape == (n, 12)
    # dlib's landmarks fit parameters close to the generating ones
    assert np.corrcoef(features.fitted[:, 0], features.params[:, 0])[0, 1] > 0.8
    fitting = rec.split_identities(features.labels, 0.5, seed=0)
    sets, options = rec.linear_feature_sets(features, fitting, space)
    assert {"CNN", "decoded params", "encoded (true-param fit)", "encoded (fitted-param fit)",
            "true params, whitened", "untrained CNN"} <= set(sets)
    for name, (fit, ev) in sets.items():
        assert len(fit) == fitting.sum() and len(ev) == (~fitting).sum(), name
    table, _ = rec.compare(sets, features.labels[fitting], features.labels[~fitting], options,
                           n_folds=3)
    # without parameter jitter the images of an identity share their parameters exactly
    assert table.loc["true params, normalised", "rank1"] == 1.0
    assert table.loc["CNN", "auc"] > 0.8
    with pytest.raises(ValueError, match="some, not all"):
        rec.linear_feature_sets(features, np.ones(n, bool), space)


def test_faces_the_detector_misses_are_landmarked_from_the_mean_face_box(
        small_identity_features, monkeypatch):
    from facelin import faces

    space, ids, models, reference = small_identity_features
    real = faces.landmarks

    def detector_misses_two(images, *args, **kwargs):
        if len(images) == len(ids.images) and kwargs.get("boxes") is None:
            raise faces.FaceNotFoundError([1, 4], len(images))
        return real(images, *args, **kwargs)

    monkeypatch.setattr(faces, "landmarks", detector_misses_two)
    features = rec.identity_features(ids, space, {"trained": models["trained"]})
    assert features.undetected.tolist() == [1, 4]
    assert len(features.labels) == len(ids.labels)
    # the predictor started from the mean face's box still finds these faces
    np.testing.assert_allclose(features.fitted[[1, 4], 0], features.params[[1, 4], 0],
                               atol=0.5 * np.sqrt(space.eigenvalues_[0]))
    np.testing.assert_array_equal(features.fitted[0], reference.fitted[0])
