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


def mean_colour(paths):
    from skimage import io

    return np.array([io.imread(p).reshape(-1, 3).mean(0) for p in paths])


def test_lfw_protocol_on_fixture(tmp_path):
    write_lfw_fixture(tmp_path)
    pairs = rec.read_lfw_pairs(tmp_path)
    assert len(pairs.pairs) == 40 and pairs.same.sum() == 20
    assert set(pairs.folds.tolist()) == set(range(10))
    # The fixture's identities differ in brightness, so mean colour separates them.
    result = rec.lfw_pairs_protocol(tmp_path, mean_colour)
    assert result.accuracy == 1.0 and result.verification.auc == 1.0
    # A feature that ignores the image cannot do better than chance.
    blind = rec.lfw_pairs_protocol(tmp_path, lambda paths: np.ones((len(paths), 1)) + 0.0)
    assert blind.accuracy <= 0.75


def test_lfw_protocol_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pairs.txt"):
        rec.read_lfw_pairs(tmp_path)
    write_lfw_fixture(tmp_path)
    text = (tmp_path / "pairs.txt").read_text().splitlines()
    (tmp_path / "pairs.txt").write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(ValueError, match="header promises 40 pairs, found 39"):
        rec.read_lfw_pairs(tmp_path)
    (tmp_path / "pairs.txt").write_text("\n".join(text) + "\n")
    next(tmp_path.glob("Person_A/*.jpg")).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        rec.read_lfw_pairs(tmp_path)
