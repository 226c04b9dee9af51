"""The shape-appearance space: Procrustes, PCA, warps, synthesis, normalisation, files."""
import numpy as np
import pytest
from skimage import util

from facelin import faces
from facelin.datasets import lfw_subset
from facelin.facespace import (FaceSpace, FaceSpaceVersionError, default_space,
                               generalized_procrustes)


@pytest.fixture(scope="module")
def lfw():
    return lfw_subset()


@pytest.fixture(scope="module")
def space(lfw):
    """A space fitted on 80 real faces; the other 20 are held out."""
    return FaceSpace().fit(lfw.images[:80], lfw.landmarks[:80])


def similarity(points, angle, scale, shift):
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + shift


# ----------------------------------------------------------------- Procrustes and PCA

def test_procrustes_mean_is_centred_unit_and_aligned_shapes_are_similarity_free(lfw):
    mean, aligned = generalized_procrustes(lfw.landmarks)
    assert np.allclose(mean.mean(axis=0), 0, atol=1e-12)
    assert np.isclose(np.linalg.norm(mean), 1)
    moved = similarity(lfw.landmarks, 0.4, 3.0, np.array([20.0, -7.0]))
    mean_moved, aligned_moved = generalized_procrustes(moved)
    # the mean takes the first shape's orientation: equal up to that one rotation
    assert np.allclose(np.linalg.norm(aligned - mean, axis=(1, 2)),
                       np.linalg.norm(aligned_moved - mean_moved, axis=(1, 2)), atol=1e-9)
    turn = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
    assert np.allclose(aligned @ turn.T, aligned_moved, atol=1e-9)
    # tangent space: every aligned shape projects onto the mean with length 1
    assert np.allclose(np.einsum("npj,pj->n", aligned, mean), 1)


def test_shape_params_ignore_position_size_and_angle(space, lfw):
    moved = similarity(lfw.landmarks[80:], -0.3, 0.5, np.array([3.0, 40.0]))
    assert np.allclose(space.shape_params(moved), space.shape_params(lfw.landmarks[80:]),
                       atol=1e-9)


def test_pca_components_are_orthonormal_and_training_parameters_have_eigenvalue_variance(
        space, lfw):
    for components in (space.shape_components_, space.appearance_components_):
        assert np.allclose(components @ components.T, np.eye(25), atol=1e-8)
    params = space.transform(lfw.images[:80], lfw.landmarks[:80])
    assert np.allclose(params.mean(axis=0), 0, atol=1e-6 * np.sqrt(space.eigenvalues_).max())
    assert np.allclose(params.var(axis=0, ddof=1), space.eigenvalues_, rtol=1e-6)
    for eigenvalues in (space.shape_eigenvalues_, space.appearance_eigenvalues_):
        assert (np.diff(eigenvalues) <= 0).all()
    ratios = space.shape_explained_variance_ratio_
    assert 0 < ratios.sum() <= 1 and (ratios > 0).all()


# ----------------------------------------------------------------- synthesis and round trip

def test_synthesize_then_transform_recovers_parameters(space):
    """Stated tolerance, for Chang & Tsao's stimuli (each dimension N(0, sqrt(eigenvalue))):
    shape parameters exactly (the landmarks are exact), appearance parameters to 0.08 SD
    rms over all faces and dimensions (two bilinear resamplings blur the texture; a few
    faces fold a triangle over)."""
    params = space.sample(60, seed=3)
    images, landmarks = space.synthesize(params, margin=40)
    recovered = space.transform(images, landmarks)
    error = (recovered - params) / np.sqrt(space.eigenvalues_)
    assert np.abs(error[:, :25]).max() < 1e-8
    assert np.sqrt((error[:, 25:] ** 2).mean()) < 0.08
    assert np.median(np.sqrt((error[:, 25:] ** 2).mean(axis=1))) < 0.06


def test_mean_face_round_trip_is_nearly_exact(space):
    images, landmarks = space.synthesize(np.zeros((1, 50)))
    recovered = space.transform(images, landmarks)
    assert np.abs(recovered / np.sqrt(space.eigenvalues_)).max() < 0.1


def test_synthesized_faces_are_their_own_dlib_chips(space):
    images, landmarks = space.synthesize(space.sample(4, seed=1), size=150)
    assert images.shape == (4, 150, 150) and images.dtype == np.float32
    assert landmarks.shape == (4, 68, 2)
    pixels = util.img_as_ubyte(images)
    chips = faces.face_chips(pixels, landmarks, 150, quantize=False).numpy()[:, 0]
    # dlib's sampler gives 0 where its 2x2 neighbourhood leaves the image: the outer ring
    interior = (slice(None), slice(1, -1), slice(1, -1))
    assert np.abs(chips[interior] - pixels[interior]).max() <= 1.0  # grey levels
    rects, angles = faces.chip_transforms(landmarks, 150)
    assert np.allclose(angles, 0, atol=1e-9)
    assert np.allclose(rects, [0, 0, 149, 149], atol=1e-9)


def test_synthesis_draws_the_landmarks_where_the_face_is(space):
    images, landmarks = space.synthesize(space.sample(3, seed=2), size=120, margin=10)
    assert images.shape == (3, 140, 140)
    for image, points in zip(images, landmarks):
        assert np.allclose(image[:5, :5], space.background)  # far from the face
        centre = points[30].round().astype(int)  # the nose tip is face, not background
        assert not np.isclose(image[centre[1], centre[0]], space.background, atol=1e-3)


def test_sample_draws_sqrt_eigenvalue_standard_deviations(space):
    params = space.sample(20000, seed=0)
    assert params.shape == (20000, 50)
    ratio = params.std(axis=0) / np.sqrt(space.eigenvalues_)
    assert np.abs(ratio - 1).max() < 0.03
    assert np.array_equal(space.sample(5, seed=7), space.sample(5, seed=7))
    assert not np.array_equal(space.sample(5, seed=7), space.sample(5, seed=8))


def test_reconstruct_keeps_the_first_components(space):
    params = space.sample(3, seed=0)
    kept = space.reconstruct(params, n_shape=5, n_appearance=10)
    assert np.array_equal(kept[:, :5], params[:, :5]) and (kept[:, 5:25] == 0).all()
    assert np.array_equal(kept[:, 25:35], params[:, 25:35]) and (kept[:, 35:] == 0).all()


def test_rgb_images_enter_a_grey_space_by_luminance(space, lfw):
    grey = lfw.images[80:83]
    rgb = np.repeat(grey[..., None], 3, axis=3)
    assert np.allclose(space.transform(rgb, lfw.landmarks[80:83]),
                       space.transform(grey, lfw.landmarks[80:83]), atol=1e-3)


def test_transform_takes_images_of_different_sizes(space, lfw):
    from skimage.transform import rescale
    small = lfw.images[80]
    large = (rescale(small / 255.0, 2, order=1) * 255).round().astype(np.uint8)
    points = np.stack([lfw.landmarks[80], lfw.landmarks[80] * 2 + 0.5])
    params = space.transform([small, large], points)
    assert np.allclose(params[0, :25], params[1, :25], atol=1e-9)
    scale = np.sqrt(space.eigenvalues_[25:])
    assert np.abs((params[0, 25:] - params[1, 25:]) / scale).max() < 0.2


def test_an_rgb_space_synthesizes_rgb(lfw):
    rgb = np.repeat(lfw.images[:30, :, :, None], 3, axis=3).copy()
    rgb[..., 0] = rgb[..., 0] // 2
    space = FaceSpace(5, 5, texture_size=64).fit(rgb, lfw.landmarks[:30])
    images, _ = space.synthesize(space.sample(2, seed=0), size=64)
    assert images.shape == (2, 64, 64, 3)
    assert images[..., 0].mean() < images[..., 1].mean()


# ----------------------------------------------------------------- normalisation

def test_normalize_follows_chang_and_tsao_and_inverts(space):
    params = space.sample(500, seed=4) + 1.0
    normalized = space.normalize(params)
    assert np.allclose(normalized.mean(axis=0), 0, atol=1e-12)
    variances = normalized.var(axis=0, ddof=1)
    assert np.isclose(variances[:25].sum(), 0.5) and np.isclose(variances[25:].sum(), 0.5)
    assert np.allclose(space.denormalize(normalized, params), params)
    by_model = space.normalize(params, reference="model")
    assert np.allclose(space.denormalize(by_model, "model"), params)
    other = space.sample(10, seed=5)
    assert np.allclose(space.denormalize(space.normalize(other, params), params), other)


# ----------------------------------------------------------------- files

def test_save_and_load_give_the_same_space(space, tmp_path):
    path = space.save(tmp_path / "space.npz")
    loaded = FaceSpace.load(path)
    params = space.sample(3, seed=9)
    assert np.array_equal(loaded.synthesize(params)[0], space.synthesize(params)[0])
    assert np.array_equal(loaded.eigenvalues_, space.eigenvalues_)


def test_load_rejects_other_versions_and_other_files(space, tmp_path):
    path = space.save(tmp_path / "space.npz")
    contents = dict(np.load(path))
    contents["facelin_facespace_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **contents)
    with pytest.raises(FaceSpaceVersionError, match="version 99"):
        FaceSpace.load(tmp_path / "future.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a facelin face-space file"):
        FaceSpace.load(tmp_path / "other.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.npz"):
        FaceSpace.load(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError):
        FaceSpace.load(tmp_path / "missing.npz")


def test_default_space_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    first = default_space(n_shape=5, n_appearance=5, texture_size=48)
    files = list(tmp_path.glob("facespace-lfw_subset-*.npz"))
    assert len(files) == 1
    second = default_space(n_shape=5, n_appearance=5, texture_size=48)
    assert np.array_equal(first.appearance_components_, second.appearance_components_)
    files[0].write_bytes(b"damaged")
    third = default_space(n_shape=5, n_appearance=5, texture_size=48)
    assert np.allclose(third.eigenvalues_, first.eigenvalues_)


# ----------------------------------------------------------------- bad input

def test_bad_input_gives_clear_errors(space, lfw):
    images, points = lfw.images[80:82], lfw.landmarks[80:82]
    with pytest.raises(RuntimeError, match="not fitted"):
        FaceSpace().synthesize(np.zeros((1, 50)))
    bad = points.copy()
    bad[1, 5, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf.*\[1\]"):
        space.transform(images, bad)
    with pytest.raises(ValueError, match="2 landmark sets for 1 images"):
        space.transform(images[:1], points)
    with pytest.raises(ValueError, match=r"this space has 68 points"):
        space.shape_params(points[:, :5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        space.transform(images.astype(np.float32), points)
    with pytest.raises(TypeError, match="uint8 or float"):
        space.transform(images.astype(np.int32), points)
    with pytest.raises(ValueError, match=r"params: expected shape \(N, 50\)"):
        space.synthesize(np.zeros((2, 49)))
    params = np.zeros((2, 50))
    params[1, 3] = np.inf
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        space.synthesize(params)
    with pytest.raises(ValueError, match="need more faces than components"):
        FaceSpace().fit(lfw.images[:20], lfw.landmarks[:20])
    with pytest.raises(ValueError, match="n_shape"):
        FaceSpace(n_shape=0)
    with pytest.raises(ValueError, match="reference"):
        space.normalize(np.zeros((3, 50)), reference="bogus")
    with pytest.raises(ValueError, match="zero variance"):
        space.normalize(np.zeros((3, 50)))
