"""Face data: loaders on generated folders in the real layouts, the LFW subset, identity
sets and their nuisance model."""
import numpy as np
import pytest
from skimage import io

from facelin.datasets import (Nuisance, identity_set, lfw_subset, load_face_folder,
                              load_faces, load_lfw)
from facelin.facespace import FaceSpace

PEOPLE = {"Ada_Lovelace": 3, "Alan_Turing": 2, "Grace_Hopper": 1}


def write_image(path, seed, rgb=True):
    rng = np.random.default_rng(seed)
    shape = (40, 30, 3) if rgb else (40, 30)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.imsave(path, rng.integers(0, 256, shape, dtype=np.uint8), check_contrast=False)


def write_lfw_people(folder):
    """<folder>/<Name>/<Name>_0001.jpg ... as in LFW."""
    seed = 0
    for name, count in PEOPLE.items():
        for k in range(1, count + 1):
            write_image(folder / name / f"{name}_{k:04d}.jpg", seed)
            seed += 1


def write_pairs(path, folds=2):
    """pairs.txt: header 'folds n', then per fold n same-person and n different pairs."""
    lines = [f"{folds} 2"]
    for _ in range(folds):
        lines += ["Ada_Lovelace 1 2", "Alan_Turing 1 2",
                  "Ada_Lovelace 3 Grace_Hopper 1", "Alan_Turing 2 Grace_Hopper 1"]
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------- folders

def test_face_folder_reads_identities_and_reports_bad_files(tmp_path):
    write_image(tmp_path / "alice" / "a.png", 0)
    write_image(tmp_path / "alice" / "b.jpg", 1, rgb=False)
    write_image(tmp_path / "bob" / "c.png", 2)
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    (tmp_path / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 no jpeg here")
    good = (tmp_path / "alice" / "a.png").read_bytes()
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "cut.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "dave").mkdir()
    write_image(tmp_path / "stray.png", 3)

    folder = load_face_folder(tmp_path)
    assert folder.names == ["alice", "bob"]
    assert folder.labels.tolist() == [0, 0, 1]
    assert [p.name for p in folder.paths] == ["a.png", "b.jpg", "c.png"]
    assert folder.images[0].shape == (40, 30, 3) and folder.images[0].dtype == np.uint8
    assert folder.images[1].shape == (40, 30)
    problems = {path.split("/")[-1]: reason for path, reason in folder.problems}
    assert problems["broken.jpg"].startswith("unreadable image")
    assert problems["cut.png"].startswith("unreadable image")
    assert problems["carol"] == "identity folder with no readable image"
    assert problems["dave"] == "identity folder with no readable image"
    assert problems["stray.png"] == "image outside any identity folder"
    assert "notes.txt" not in problems


def test_face_folder_without_images_raises_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_face_folder(tmp_path / "missing")
    (tmp_path / "empty_person").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"no readable face image.*x\.jpg: unreadable"):
        load_face_folder(tmp_path)


# ----------------------------------------------------------------- LFW

def check_lfw(lfw, pairs_name="pairs.txt"):
    assert lfw.faces.names == list(PEOPLE)
    assert len(lfw.faces) == sum(PEOPLE.values())
    assert lfw.pairs_file.name == pairs_name
    assert lfw.pairs.shape == (8, 2)
    assert lfw.same.tolist() == [True, True, False, False] * 2
    assert lfw.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    paths = lfw.faces.paths
    first, second = lfw.pairs[2]
    assert (paths[first].name, paths[second].name) == ("Ada_Lovelace_0003.jpg",
                                                       "Grace_Hopper_0001.jpg")


def test_lfw_standard_layout(tmp_path):
    write_lfw_people(tmp_path / "lfw")
    write_pairs(tmp_path / "pairs.txt")
    check_lfw(load_lfw(tmp_path))
    check_lfw(load_lfw(tmp_path / "lfw"))  # pairs.txt one folder up


def test_lfw_scikit_learn_cache_layout(tmp_path):
    write_lfw_people(tmp_path / "lfw_home" / "lfw_funneled")
    write_pairs(tmp_path / "lfw_home" / "pairs.txt")
    (tmp_path / "lfw_home" / "pairsDevTrain.txt").write_text(
        "2\nAda_Lovelace 1 3\nAlan_Turing 1 2\nAda_Lovelace 2 Alan_Turing 1\n"
        "Grace_Hopper 1 Alan_Turing 2\n")
    check_lfw(load_lfw(tmp_path))
    check_lfw(load_lfw(tmp_path / "lfw_home"))
    dev = load_lfw(tmp_path, pairs_file="pairsDevTrain.txt")
    assert dev.same.tolist() == [True, True, False, False]
    assert dev.folds.tolist() == [0, 0, 0, 0]


def test_lfw_reports_missing_images_and_pairs(tmp_path):
    write_lfw_people(tmp_path)
    (tmp_path / "Grace_Hopper" / "Grace_Hopper_0001.jpg").unlink()
    (tmp_path / "Grace_Hopper").rmdir()
    lfw = load_lfw(tmp_path)
    assert lfw.pairs_file is None and lfw.pairs.shape == (0, 2)
    assert any("no pairs.txt" in reason for _, reason in lfw.problems)
    write_pairs(tmp_path / "pairs.txt")
    lfw = load_lfw(tmp_path)
    assert lfw.pairs.shape == (4, 2)  # the 4 pairs naming Grace_Hopper are reported
    missing = [reason for _, reason in lfw.problems if "Grace_Hopper_0001" in reason]
    assert len(missing) == 4


def test_lfw_bad_layouts_and_pairs_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no LFW images"):
        load_lfw(tmp_path)
    write_lfw_people(tmp_path)
    (tmp_path / "pairs.txt").write_text("10 300\nAda_Lovelace 1 2\n")
    with pytest.raises(ValueError, match="announces 6000 pairs.*has 1"):
        load_lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text("1 1\nAda_Lovelace 1\nAda_Lovelace 1 Alan_Turing 1\n")
    with pytest.raises(ValueError, match="line 2"):
        load_lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text("Ada_Lovelace 1 2\n")
    with pytest.raises(ValueError, match="first line"):
        load_lfw(tmp_path)


# ----------------------------------------------------------------- the embedded faces

@pytest.fixture(scope="module")
def lfw():
    return lfw_subset()


def test_lfw_subset_gives_100_landmarked_faces(lfw):
    assert lfw.images.shape == (100, 150, 150) and lfw.images.dtype == np.uint8
    assert lfw.landmarks.shape == (100, 68, 2)
    assert lfw.rejected == [] and lfw.indices.tolist() == list(range(100))
    # dlib's points are ordered: the jaw runs left to right, eyes above the mouth
    assert (lfw.landmarks[:, 16, 0] > lfw.landmarks[:, 0, 0]).all()
    assert (lfw.landmarks[:, 36:48, 1].mean(1) < lfw.landmarks[:, 48:68, 1].mean(1)).all()


def test_lfw_subset_records_rejected_faces():
    strict = lfw_subset(max_shape_distance=2.0)
    assert strict.rejected and len(strict) == 100 - len(strict.rejected)
    rejected = [r["index"] for r in strict.rejected]
    assert not set(rejected) & set(strict.indices.tolist())
    assert all("Procrustes distance" in r["reason"] for r in strict.rejected)


# ----------------------------------------------------------------- identity sets

@pytest.fixture(scope="module")
def space(lfw):
    return FaceSpace(n_shape=10, n_appearance=10, texture_size=96).fit(lfw.images,
                                                                       lfw.landmarks)


def within_identity_spread(ids):
    images = ids.images.astype(np.float64)
    return np.mean([np.abs(images[ids.labels == k] - images[ids.labels == k].mean(0)).mean()
                    for k in np.unique(ids.labels)])


def test_identity_set_shapes_and_labels(space):
    ids = identity_set(space, 4, 3, nuisance=1.0, seed=0, size=64)
    assert ids.images.shape == (12, 64, 64) and ids.images.dtype == np.uint8
    assert ids.landmarks.shape == (12, 68, 2)
    assert ids.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert ids.params.shape == (12, 20) and ids.identity_params.shape == (4, 20)
    assert ids.nuisance == Nuisance()
    again = identity_set(space, 4, 3, nuisance=1.0, seed=0, size=64)
    assert np.array_equal(ids.images, again.images)


def test_without_nuisance_images_of_an_identity_are_identical(space):
    ids = identity_set(space, 3, 2, nuisance=0.0, seed=1, size=64)
    assert np.array_equal(ids.images[0], ids.images[1])
    assert not np.array_equal(ids.images[0], ids.images[2])
    assert np.allclose(ids.params[0], ids.identity_params[0])


def test_nuisance_strength_spreads_images_monotonically(space):
    spreads = [within_identity_spread(identity_set(space, 4, 3, nuisance=s, seed=2, size=64))
               for s in (0.0, 0.5, 1.0, 2.0)]
    assert spreads[0] == 0
    assert all(a < b for a, b in zip(spreads, spreads[1:]))


def test_parameter_jitter_and_image_nuisance_can_be_swept_apart(space):
    only_jitter = identity_set(space, 3, 3, Nuisance.at(image=0, jitter=1), seed=3, size=64)
    only_image = identity_set(space, 3, 3, Nuisance.at(image=1, jitter=0), seed=3, size=64)
    assert only_jitter.nuisance.noise == 0 and only_jitter.nuisance.jitter == 0.3
    assert only_image.nuisance.jitter == 0 and only_image.nuisance.rotation == 5.0
    same = only_image.labels == 0
    assert np.allclose(only_image.params[same], only_image.identity_params[0])
    assert not np.allclose(only_jitter.params[same], only_jitter.identity_params[0])
    assert within_identity_spread(only_jitter) > 0 and within_identity_spread(only_image) > 0


def test_pose_nuisance_moves_the_landmarks_with_the_face(space):
    still = identity_set(space, 2, 2, Nuisance(0, 0, 0, 0, 0, 0), seed=4, size=64)
    turned = identity_set(space, 2, 2, Nuisance(0, 0, rotation=20, scale=0, shift=0,
                                                noise=0), seed=4, size=64)
    centre = 31.5
    for a, b in zip(still.landmarks, turned.landmarks):
        radii_a = np.linalg.norm(a - centre, axis=1)
        radii_b = np.linalg.norm(b - centre, axis=1)
        assert np.allclose(radii_a, radii_b)  # a rotation about the centre
    # the rotated image at a rotated landmark shows what the still one showed
    nose_still = still.landmarks[0, 30].round().astype(int)
    nose_turned = turned.landmarks[0, 30].round().astype(int)
    assert abs(int(still.images[0][nose_still[1], nose_still[0]])
               - int(turned.images[0][nose_turned[1], nose_turned[0]])) < 40


def test_identity_set_bad_input(space):
    with pytest.raises(ValueError, match="n_identities"):
        identity_set(space, 0, 3)
    with pytest.raises(ValueError, match="nuisance strength image"):
        identity_set(space, 2, 2, nuisance=-1)
    with pytest.raises(ValueError, match="Nuisance.noise"):
        Nuisance(noise=float("nan"))


def test_load_faces_landmarks_a_folder_and_records_faceless_images(tmp_path):
    from facelin.faces import upsampled_lfw
    (tmp_path / "person").mkdir()
    for k, image in enumerate(upsampled_lfw([0, 1, 2], factor=6)):
        io.imsave(tmp_path / "person" / f"face_{k}.png", image, check_contrast=False)
    write_image(tmp_path / "person" / "noise.png", 0, rgb=False)
    faces = load_faces(tmp_path)
    assert faces.landmarks.shape == (len(faces), 68, 2)
    assert any("no face" in r["reason"] and "noise.png" in r["reason"] for r in faces.rejected)
    assert len(faces) + 1 == 4
    assert load_faces("lfw_subset").landmarks.shape == (100, 68, 2)
