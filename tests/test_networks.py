"""The three face CNNs behind one interface: alignment, layers, the untrained control
and the mirror-identification check of each network's alignment and input convention."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import facelin

from facelin import extract
from facelin.datasets import lfw_subset
from facelin.models import NETWORK_NAMES, NpmError, load_network, mirror_identification
from facelin.models.networks import architecture, mirror_distances, mirror_verdict

SIZES = {"dlib-resnet": 150, "mobileface": 112, "faceres": 224}
DESCRIPTOR_SIZES = {"dlib-resnet": 128, "mobileface": 256, "faceres": 1024}


@pytest.fixture(scope="module")
def faces():
    return lfw_subset()


def _load(name, **kwargs):
    try:
        return load_network(name, **kwargs)
    except NpmError as err:
        pytest.skip(f"the TF.js model needs npm: {err}")


@pytest.fixture(scope="module", params=NETWORK_NAMES)
def network(request):
    return _load(request.param)


def test_every_network_has_the_interface(network, faces):
    name = network.name
    assert network.pretrained and network.input_size == SIZES[name]
    chips = network.chips(faces.images[:3], faces.landmarks[:3])
    assert chips.shape == (3, 3, SIZES[name], SIZES[name])
    assert chips.dtype == torch.float32
    assert 0 <= chips.min() and chips.max() <= 255
    # float images in [0, 1] and NCHW batches are aligned like uint8 images
    as_float = network.chips(faces.images[:3] / 255.0, faces.landmarks[:3])
    torch.testing.assert_close(as_float, chips)
    with torch.no_grad():
        descriptors = network(chips)
    assert descriptors.shape == (3, DESCRIPTOR_SIZES[name])
    names = network.layer_names()
    table = network.stage_table()
    assert [row["stage"] for row in table] == names
    layers = network.analysis_layers()
    assert 6 <= len(layers) <= 20 and layers[-1] == network.descriptor_layer
    assert [names.index(n) for n in layers] == sorted(names.index(n) for n in layers)
    assert set(network.deep_layers()) <= set(layers)
    assert network.deep_layers()[-1] == network.descriptor_layer
    units = {row["stage"]: row["units"] for row in table}
    assert units[network.descriptor_layer] == DESCRIPTOR_SIZES[name]
    # facelin.extract records any of the layers; the descriptor is the output
    recorded = extract.record(network, chips, {n: "all" for n in layers[-2:]},
                              progress=False)
    torch.testing.assert_close(recorded.layer(network.descriptor_layer), descriptors)


def test_bad_chips_are_named(network):
    size = network.input_size
    with pytest.raises(ValueError, match=f"expected a tensor of shape .N, 3, {size}"):
        network(torch.zeros(1, 3, size + 1, size))
    bad = torch.zeros(1, 3, size, size)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        network(bad)
    with pytest.raises(ValueError, match="lie in"):
        network.chips(np.full((1, 20, 20), 2.0), np.zeros((1, 68, 2)))
    if network.name == "dlib-resnet":
        with pytest.raises(ValueError, match="border"):
            network.chips(np.zeros((1, 20, 20)), np.zeros((1, 68, 2)),
                          border="replicate")


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_untrained_control_is_seeded_and_differs(name, faces):
    trained = _load(name)
    first, again = _load(name, pretrained=False), _load(name, pretrained=False)
    other = _load(name, pretrained=False, seed=1)
    assert not first.pretrained and first.layer_names() == trained.layer_names()
    chips = trained.chips(faces.images[:2], faces.landmarks[:2])
    with torch.no_grad():
        a, b, c, t = first(chips), again(chips), other(chips), trained(chips)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c) and not torch.allclose(a, t)
    assert torch.isfinite(a).all() and a.std() > 0


def test_unknown_network_is_named():
    with pytest.raises(ValueError, match="name must be one of"):
        load_network("alexnet")


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_mirror_image_identifies_the_face(name, faces):
    """Each of the 100 real faces, mirrored, is nearest to itself among the 100 faces:
    only with the right alignment and input scaling. The untrained control fails, which
    shows that the check can fail."""
    rates = {}
    for pretrained, n_faces in ((True, 100), (False, 40)):  # the control on fewer faces
        model = _load(name, pretrained=pretrained)
        chips = model.chips(faces.images[:n_faces], faces.landmarks[:n_faces])
        found = mirror_identification(model.descriptors(chips),
                                      model.descriptors(chips.flip(-1)))
        rates[pretrained] = found.mean()
    assert len(faces.images) == 100
    assert rates[True] >= 0.95 and rates[False] < 0.5, rates


def test_mirror_identification_counts_rank_one():
    descriptors = np.eye(4) + 0.01
    assert mirror_identification(descriptors, descriptors).all()
    swapped = descriptors[[1, 0, 2, 3]]
    found = mirror_identification(descriptors, swapped)
    assert found.tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="two .N, D. arrays"):
        mirror_identification(descriptors, descriptors[:3])


def test_mirror_distances_and_verdict():
    descriptors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) + 5  # a large constant
    distances = mirror_distances(descriptors, descriptors)
    np.testing.assert_allclose(np.diag(distances), 0, atol=1e-12)
    assert (distances[~np.eye(3, dtype=bool)] > 0.1).all()  # centring removes the 5
    assert mirror_verdict(0.97, 0.2) == "passes"
    assert mirror_verdict(0.9, 0.2) == "fails"
    assert mirror_verdict(1.0, 0.96) == "cannot tell"
    with pytest.raises(ValueError, match="trained_rate"):
        mirror_verdict(97, 0.2)


def test_architecture_counts_layers(network):
    summary = architecture(network)
    expected = {"dlib-resnet": (29, 0), "mobileface": (5, 12), "faceres": (14, 13)}
    assert (summary["convolutions"], summary["depthwise convolutions"]) == \
        expected[network.name]
    assert summary["descriptor"] == DESCRIPTOR_SIZES[network.name]
    assert summary["parameters"] > 100_000


def test_models_work_without_the_compiled_core(tmp_path):
    # a copy of the package without facelin/_C*.so: the networks import and run (they
    # use no compiled op); the first compiled op says how to build the core
    shutil.copytree(Path(facelin.__file__).parent, tmp_path / "facelin",
                    ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "__pycache__"))
    assert not list((tmp_path / "facelin").glob("_C*"))
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        # an editable install finds the package through a meta-path finder; drop it
        sys.meta_path[:] = [f for f in sys.meta_path
                            if "editable" not in repr(f).lower()]
        import torch
        import facelin
        import facelin.models
        from facelin.models import (dlib_format, dlib_resnet, networks, npm, tfjs,
                                    tfjs_ops)
        print("imported from", facelin.models.__file__)
        model = facelin.models.load_network("dlib-resnet", pretrained=False)
        print("descriptor", tuple(model(torch.zeros(1, 3, 150, 150)).shape))
        try:
            facelin.cuda_built()
        except ImportError as err:
            print(err)
        """)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True,
                         capture_output=True, text=True, cwd=tmp_path,
                         env=environment).stdout
    assert f"imported from {tmp_path / 'facelin' / 'models' / '__init__.py'}" in out
    assert "descriptor (1, 128)" in out
    assert "make build" in out and "pip install --no-build-isolation -e ." in out
