"""dlib's face-recognition ResNet in PyTorch, checked against dlib on real faces."""
import dlib
import numpy as np
import pytest
import torch
from skimage import data

from facelin import faces
from facelin.models import DlibFormatError, load_dlib_resnet, read_dlib_network
from facelin.models.dlib_resnet import DEFAULT_WEIGHTS

LFW_FACES = [0, 1, 2, 3, 5, 6]


@pytest.fixture(scope="module")
def weights_path():
    return faces.model_file(DEFAULT_WEIGHTS)


@pytest.fixture(scope="module")
def weights(weights_path):
    return weights_path.read_bytes()


@pytest.fixture(scope="module")
def model():
    return load_dlib_resnet()


@pytest.fixture(scope="module")
def face_images():
    return [data.astronaut()] + faces.upsampled_lfw(LFW_FACES)


@pytest.fixture(scope="module")
def face_points(face_images):
    return faces.landmarks(face_images)


@pytest.fixture(scope="module")
def chips(face_images, face_points):
    return faces.face_chips(face_images, face_points)


@pytest.fixture(scope="module")
def dlib_descriptors(face_images, face_points, weights_path):
    """dlib's compute_face_descriptor on the whole image and dlib's own landmarks."""
    recogniser = dlib.face_recognition_model_v1(str(weights_path))
    predictor = dlib.shape_predictor(str(faces.model_file(
        "shape_predictor_68_face_landmarks.dat")))
    detector = dlib.get_frontal_face_detector()
    out = []
    for image, points in zip(face_images, face_points):
        rgb = np.ascontiguousarray(image if image.ndim == 3 else np.stack([image] * 3, -1))
        shape = predictor(rgb, max(detector(rgb, 1), key=lambda r: r.area()))
        np.testing.assert_array_equal([(p.x, p.y) for p in shape.parts()], points)
        out.append(np.array(recogniser.compute_face_descriptor(rgb, shape)))
    return np.array(out)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-4), (torch.float64, 1e-6)])
def test_descriptors_match_dlib(chips, dlib_descriptors, dtype, tolerance):
    model = load_dlib_resnet(dtype=dtype)
    ours = model(chips.to(dtype)).numpy()
    assert ours.shape == (len(chips), 128)
    assert np.abs(ours - dlib_descriptors).max() <= tolerance


def test_mirror_is_closer_than_another_person(model, face_images):
    astronaut = face_images[0]
    images = [astronaut, np.ascontiguousarray(astronaut[:, ::-1])] + face_images[1:]
    descriptors = model(faces.face_chips(images, faces.landmarks(images)))
    distances = torch.cdist(descriptors, descriptors)
    assert distances[0, 1] < 0.6
    assert distances[0, 1] < distances[0, 2:].min()
    assert distances[0, 2:].min() > 0.6


def test_layer_names_cover_every_stage_in_forward_order(model, chips):
    names = model.layer_names()
    assert len(names) == len(set(names))
    kinds = [type(model.get_submodule(n)).__name__ for n in names]
    counts = {kind: kinds.count(kind) for kind in set(kinds)}
    assert counts == {"Conv2d": 29, "Affine": 29, "ReLU": 29, "ZeroPadAdd": 14,
                      "AvgPool2d": 4, "MaxPool2d": 1, "GlobalAveragePool": 1, "Linear": 1}
    assert sum(p.numel() for p in model.parameters()) == 5_614_592
    fired = []
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: fired.append((n, tuple(o.shape)))) for n in names]
    try:
        model(chips[:2])
    finally:
        for hook in hooks:
            hook.remove()
    assert [n for n, _ in fired] == names
    shapes = dict(fired)
    assert shapes["stem.conv"] == (2, 32, 72, 72)
    assert shapes["stem.max_pool"] == (2, 32, 35, 35)
    assert shapes["stage4.block1.conv2"] == (2, 256, 3, 3)
    assert shapes["stage4.block1.add"] == (2, 256, 4, 4)
    assert shapes["stage5.block1.relu"] == (2, 256, 2, 2)
    assert shapes["pool"] == (2, 256) and shapes["descriptor"] == (2, 128)
    assert model.unit_counts()["stage2.block1.shortcut"] == (32, 17, 17)


def test_stop_at_returns_the_stage_output(model, chips):
    captured = {}
    handle = model.get_submodule("stage3.block2.add").register_forward_hook(
        lambda m, i, o: captured.setdefault("add", o))
    try:
        model(chips[:2])
    finally:
        handle.remove()
    assert torch.equal(model(chips[:2], stop_at="stage3.block2.add"), captured["add"])
    pooled = model(chips[:2], stop_at="pool")
    assert torch.allclose(model.descriptor(pooled), model(chips[:2]))
    with pytest.raises(KeyError, match="stop_at"):
        model(chips[:2], stop_at="stage9.block1.conv1")


def test_untrained_control_is_seeded_and_differs(model, chips):
    untrained = load_dlib_resnet(pretrained=False)
    again = load_dlib_resnet(pretrained=False)
    other_seed = load_dlib_resnet(pretrained=False, seed=1)
    assert [n for n, _ in untrained.named_parameters()] == \
        [n for n, _ in model.named_parameters()]
    out = untrained(chips[:3])
    assert torch.isfinite(out).all() and out.std() > 0
    assert torch.equal(out, again(chips[:3]))
    assert not torch.allclose(out, other_seed(chips[:3]))
    assert not torch.allclose(out, model(chips[:3]))


def test_bad_chips_are_named(model, chips):
    with pytest.raises(ValueError, match=r"chips: expected shape \(N, 3, 150, 150\)"):
        model(chips[:, :, :100])
    broken = chips[:2].clone()
    broken[1, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(broken)
    with pytest.raises(TypeError, match="float64"):
        model(chips[:2].double())


def write(tmp_path, content, name="model.dat"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("keep", [2, 40, 300, 200_000, 22_466_000])
def test_truncated_file_is_reported(tmp_path, weights, keep):
    path = write(tmp_path, weights[:keep])
    with pytest.raises(DlibFormatError, match=r"truncated.*at byte offset \d+ of " + str(keep)):
        load_dlib_resnet(path)


def test_corrupt_file_is_reported(tmp_path, weights):
    network = read_dlib_network(write(tmp_path, weights))
    conv = network.layers[0]
    relu = next(layer for layer in network.layers if layer.kind == "relu_")

    # a damaged integer control byte in the first conv's record
    corrupt = bytearray(weights)
    # (a record starts with its name: a two-byte length, then the characters)
    corrupt[conv.offset + 2 + len("con_4")] = 0x3F
    with pytest.raises(DlibFormatError, match=r"corrupt integer control byte 0x3f.*con_4"):
        load_dlib_resnet(write(tmp_path, bytes(corrupt)))

    # an unknown layer name, same length
    renamed = bytearray(weights)
    renamed[relu.offset + 2:relu.offset + 7] = b"gelu_"
    with pytest.raises(DlibFormatError,
                       match=rf"unexpected layer 'gelu_'.*at byte offset {relu.offset}"):
        load_dlib_resnet(write(tmp_path, bytes(renamed)))

    # the first conv declared with 4 input channels instead of 3
    filters_view = bytes([1, 1, 1, 32, 1, 3, 1, 7, 1, 7])
    at = weights.index(filters_view, conv.offset)
    reshaped = bytearray(weights)
    reshaped[at + 5] = 4
    with pytest.raises(DlibFormatError,
                       match=r"record #0 at byte offset \d+ \(stage 'stem.conv'\): filters "
                             r"\(32, 4, 7, 7\).*expected \(32, 3, 7, 7\)"):
        load_dlib_resnet(write(tmp_path, bytes(reshaped)))

    # a NaN among the weights
    poisoned = bytearray(weights)
    first_value = conv.offset + weights[conv.offset:conv.offset + 40].index(
        bytes([1, 1, 1, 1, 1, 1])) + 6
    poisoned[first_value:first_value + 4] = np.float32(np.nan).tobytes()
    with pytest.raises(DlibFormatError, match="NaN or Inf among the values.*con_4"):
        load_dlib_resnet(write(tmp_path, bytes(poisoned)))

    with pytest.raises(DlibFormatError, match="3 unexpected byte"):
        load_dlib_resnet(write(tmp_path, weights + b"\x00\x01\x02"))

    with pytest.raises(DlibFormatError, match="loss layer"):
        load_dlib_resnet(write(tmp_path, b"\x01\x01\x05hello" + weights[17:]))

    with pytest.raises(FileNotFoundError):
        load_dlib_resnet(tmp_path / "missing.dat")
    with pytest.raises(ValueError, match="pretrained=False"):
        load_dlib_resnet(tmp_path / "missing.dat", pretrained=False)


@pytest.mark.cuda
def test_cpu_cuda_parity(chips, monkeypatch):
    # TF32 would round the GPU's float32 convolutions to 10-bit mantissas
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    for dtype, tolerance in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        model = load_dlib_resnet(dtype=dtype)
        cpu = model(chips.to(dtype))
        gpu = model.cuda()(chips.to(dtype).cuda()).cpu()
        assert (cpu - gpu).abs().max() <= tolerance
        names = model.layer_names()
        assert torch.allclose(model(chips.to(dtype).cuda(), stop_at=names[10]).cpu(),
                              model.cpu()(chips.to(dtype), stop_at=names[10]),
                              atol=tolerance, rtol=0)
