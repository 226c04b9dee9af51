"""Landmarks and face chips, checked against dlib itself on real faces."""
import dlib
import numpy as np
import pytest
import torch
from skimage import data, transform

from facelin import faces

# lfw_subset faces that dlib's detector finds once enlarged six times, and two non-faces.
LFW_FACES = [0, 1, 2, 3, 5, 6, 7, 8]
LFW_NON_FACES = [150, 151]


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def lfw_faces():
    return faces.upsampled_lfw(LFW_FACES)


def dlib_chip(image, points, size=150, padding=0.25):
    """dlib.get_face_chip for an image and an (n_points, 2) landmark array."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    shape = dlib.full_object_detection(
        dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1),
        [dlib.point(int(x), int(y)) for x, y in points])
    return dlib.get_face_chip(np.ascontiguousarray(rgb), shape, size, padding)


def mean_abs_diff(ours, theirs):
    return np.abs(ours.numpy().transpose(1, 2, 0) - theirs.astype(np.float64)).mean()


def test_landmarks_on_astronaut(astronaut):
    for n_points in (68, 5):
        points = faces.landmarks([astronaut], n_points=n_points)
        assert points.shape == (1, n_points, 2)
        # the face is in the upper middle of the picture
        assert ((points[0] > [120, 40]) & (points[0] < [320, 260])).all()
    # dlib's predictor directly, on dlib's own detection
    detection = dlib.get_frontal_face_detector()(astronaut, 1)[0]
    shape = dlib.shape_predictor(str(faces.model_file(
        "shape_predictor_68_face_landmarks.dat")))(astronaut, detection)
    expected = np.array([(p.x, p.y) for p in shape.parts()])
    np.testing.assert_array_equal(faces.landmarks([astronaut])[0], expected)


def test_landmarks_with_boxes_match_detection(astronaut):
    detection = dlib.get_frontal_face_detector()(astronaut, 1)[0]
    box = [[detection.left(), detection.top(), detection.right(), detection.bottom()]]
    np.testing.assert_array_equal(faces.landmarks([astronaut], boxes=box),
                                  faces.landmarks([astronaut]))


def test_no_face_is_reported_by_index(astronaut, lfw_faces):
    non_faces = faces.upsampled_lfw(LFW_NON_FACES)
    batch = [astronaut, non_faces[0], lfw_faces[0], non_faces[1]]
    with pytest.raises(faces.FaceNotFoundError, match=r"index \[1, 3\]") as caught:
        faces.landmarks(batch)
    assert caught.value.indices == [1, 3]


def test_chips_match_dlib_on_astronaut(astronaut):
    for n_points in (68, 5):
        points = faces.landmarks([astronaut], n_points=n_points)
        chips = faces.face_chips([astronaut], points)
        assert chips.shape == (1, 3, 150, 150) and chips.dtype == torch.float32
        assert mean_abs_diff(chips[0], dlib_chip(astronaut, points[0])) < 1.0
        exact = faces.face_chips([astronaut], points, quantize=False)
        assert mean_abs_diff(exact[0], dlib_chip(astronaut, points[0])) < 1.0


def test_chips_match_dlib_on_enlarged_and_rotated_faces(astronaut):
    # three times larger: dlib samples from its image pyramid, and so must we
    large = (transform.rescale(astronaut, 3, channel_axis=2, order=1) * 255).round()
    rotated = transform.rotate(astronaut, 25, preserve_range=True).round()
    images = [large.astype(np.uint8), rotated.astype(np.uint8)]
    points = faces.landmarks(images)
    chips = faces.face_chips(images, points, size=120, padding=0.4)
    for chip, image, image_points in zip(chips, images, points):
        assert mean_abs_diff(chip, dlib_chip(image, image_points, 120, 0.4)) < 1.0


def test_chips_match_dlib_at_the_image_border(astronaut):
    # the face cut by the top-left corner: the missing part of the chip is 0 in both
    image = np.ascontiguousarray(astronaut[90:, 190:])
    points = faces.landmarks([astronaut])[0] - [190, 90]
    chip = faces.face_chips([image], points[None])[0]
    reference = dlib_chip(image, points)
    assert (reference == 0).all(axis=2).any()
    assert mean_abs_diff(chip, reference) < 1.0


def test_chips_match_dlib_on_lfw_batch(lfw_faces):
    points = faces.landmarks(lfw_faces)
    chips = faces.face_chips(lfw_faces, points)
    assert chips.shape == (len(lfw_faces), 3, 150, 150)
    # grey images are replicated to three channels
    assert torch.equal(chips[:, 0], chips[:, 1]) and torch.equal(chips[:, 0], chips[:, 2])
    for chip, image, image_points in zip(chips, lfw_faces, points):
        assert mean_abs_diff(chip, dlib_chip(image, image_points)) < 1.0


def test_chips_do_not_depend_on_the_batch(astronaut, lfw_faces):
    images = [astronaut] + lfw_faces[:2]
    points = faces.landmarks(images)
    together = faces.face_chips(images, points)
    for index in range(len(images)):
        alone = faces.face_chips([images[index]], points[index:index + 1])
        assert torch.equal(together[index], alone[0])


def test_bad_inputs_are_named(astronaut):
    points = faces.landmarks([astronaut])
    with pytest.raises(TypeError, match=r"images\[0\].*uint8"):
        faces.face_chips([astronaut / 255.0], points)
    with pytest.raises(ValueError, match=r"images\[1\].*shape"):
        faces.landmarks([astronaut, astronaut[:, :, :2]])
    with pytest.raises(ValueError, match="wrap a single image in a list"):
        faces.landmarks(astronaut[:, :, 0])
    with pytest.raises(ValueError, match=r"landmarks: expected shape \(1, 68 or 5, 2\)"):
        faces.face_chips([astronaut], points[:, :30])
    nan_points = points.copy()
    nan_points[0, 40, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf.*\[0\]"):
        faces.face_chips([astronaut], nan_points)
    with pytest.raises(ValueError, match="upsample"):
        faces.landmarks([astronaut], upsample=-1)
    with pytest.raises(ValueError, match="n_points"):
        faces.landmarks([astronaut], n_points=17)
    with pytest.raises(ValueError, match="boxes"):
        faces.landmarks([astronaut], boxes=[[10, 10, 5, 50]])
    with pytest.raises(ValueError, match="boxes"):
        faces.landmarks([astronaut, astronaut], boxes=[[10, 10, 50, 50]])


def test_missing_faces_are_skipped_or_boxed_after_one_detector_pass(
        astronaut, lfw_faces, monkeypatch):
    non_faces = faces.upsampled_lfw(LFW_NON_FACES)
    batch = [astronaut, non_faces[0], lfw_faces[0], non_faces[1]]
    expected = faces.landmarks([astronaut, lfw_faces[0]])
    detector = faces._detector()
    calls = []

    def counting(image, upsample):
        calls.append(image.shape)
        return detector(image, upsample)

    monkeypatch.setattr(faces, "_detector", lambda: counting)
    skipped = faces.landmarks(batch, on_missing="skip")
    assert len(calls) == len(batch)  # one detector pass per image, none repeated
    assert skipped.indices.tolist() == [0, 2] and skipped.missing.tolist() == [1, 3]
    np.testing.assert_array_equal(skipped.points, expected)
    boxed = faces.landmarks(batch, on_missing="box")
    assert boxed.indices.tolist() == [0, 1, 2, 3] and boxed.missing.tolist() == [1, 3]
    np.testing.assert_array_equal(boxed.points[[0, 2]], expected)
    side = non_faces[0].shape[1]
    box = [[side / 4, side / 4, 3 * side / 4, 3 * side / 4]]
    np.testing.assert_array_equal(boxed.points[1],
                                  faces.landmarks([non_faces[0]], boxes=box)[0])
    found = faces.landmarks([astronaut], on_missing="skip")
    assert found.missing.size == 0 and found.indices.tolist() == [0]
    with pytest.raises(ValueError, match="on_missing"):
        faces.landmarks([astronaut], on_missing="ignore")


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners():
    points = np.random.default_rng(0).uniform(0, 100, (2, 68, 2))
    five = faces.five_points(points)
    assert five.shape == (2, 5, 2)
    np.testing.assert_allclose(five[:, 0], points[:, 36:42].mean(1))
    np.testing.assert_allclose(five[:, 1], points[:, 42:48].mean(1))
    np.testing.assert_array_equal(five[:, 2:], points[:, [30, 48, 54]])
    with pytest.raises(ValueError, match="68, 2"):
        faces.five_points(points[:, :5])


@pytest.mark.parametrize("size", [112, 224])
def test_template_chips_match_skimage_similarity_warp(lfw_faces, size):
    """InsightFace's alignment: skimage's SimilarityTransform from the five points to
    the ArcFace template (scaled to the chip), then bilinear warping."""
    points = faces.landmarks(lfw_faces[:3])
    chips = faces.template_chips(lfw_faces[:3], points, size=size)
    assert chips.shape == (3, 3, size, size) and chips.dtype == torch.float32
    template = faces.ARCFACE_TEMPLATE * size / 112
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2)
    for image, five, chip in zip(lfw_faces, faces.five_points(points), chips):
        tform = transform.SimilarityTransform.from_estimate(five, template)
        expected = transform.warp(image.astype(np.float64), tform.inverse, order=1,
                                  output_shape=(size, size), preserve_range=True)
        # the five points land near the template
        np.testing.assert_allclose(tform(five), template, atol=0.05 * size)
        # compare where the bilinear neighbourhood lies inside the image (the border
        # conventions differ: dlib's 0 outside, skimage's partial interpolation)
        source = tform.inverse(grid)
        inside = ((source >= 1) & (source <= np.array(image.shape[::-1]) - 2)).all(1)
        assert inside.mean() > 0.5
        difference = np.abs(chip[0].numpy().reshape(-1) - expected.reshape(-1))[inside]
        assert difference.max() < 1e-3
        np.testing.assert_array_equal(chip[0], chip[1])  # grey replicated to RGB


def test_template_chips_follow_the_face(lfw_faces):
    """A face moved, turned and enlarged in the image gives the same chip."""
    image = lfw_faces[0]
    points = faces.landmarks([image])
    tform = transform.SimilarityTransform(scale=1.3, rotation=0.3,
                                          translation=(40, -10))
    moved = transform.warp(image, tform.inverse, output_shape=(260, 260), order=3)
    moved = (np.clip(moved, 0, 1) * 255).round().astype(np.uint8)
    moved_points = tform(points[0])[None]
    original = faces.template_chips([image], points)
    again = faces.template_chips([moved], moved_points)
    assert (original - again).abs()[..., 10:-10, 10:-10].mean() < 4
    other = faces.template_chips([lfw_faces[1]], faces.landmarks([lfw_faces[1]]))
    assert (original - other).abs()[..., 10:-10, 10:-10].mean() > 10


def test_template_chips_border_zero_or_replicate(lfw_faces):
    """Beyond the image, "zero" gives 0 and "replicate" the nearest edge pixel; inside,
    both are the same."""
    image = np.full((120, 120), 90, dtype=np.uint8)
    image[30:90, 30:90] = 200
    points = faces.landmarks(lfw_faces[:1]) * 0.4 - 15  # a small face at the corner
    zero = faces.template_chips([image], points, border="zero")
    replicate = faces.template_chips([image], points, border="replicate")
    outside = zero[0, 0] == 0
    assert 0.05 < outside.float().mean() < 0.95
    assert (replicate[0, 0][outside] == 90).all()
    torch.testing.assert_close(replicate[0, 0][~outside], zero[0, 0][~outside])
    with pytest.raises(ValueError, match="border"):
        faces.template_chips([image], points, border="wrap")
