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
from facelin.models import checks
from facelin.models.networks import (architecture, block_table, layer_table,
                                     mirror_distances, mirror_verdict)

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


def test_block_table_sums_dlib_stages_per_block():
    model = _load("dlib-resnet")
    table = block_table(model)
    assert table.index[0] == "stem" and table.index[-1] == "descriptor"
    assert sum(name.endswith(".block1") for name in table.index) == 5
    assert len(table) == 1 + 14 + 2  # stem, fourteen blocks, pool, descriptor
    assert table["stages"].sum() == len(model.layer_names())
    assert table.loc["stage1.block1", "output_shape"] == "(32, 35, 35)"
    assert table.loc["descriptor", "units"] == 128


def test_layer_table_lists_the_studied_layers(network):
    table = layer_table(network)
    assert table.index.tolist() == network.analysis_layers()
    assert table.columns.tolist() == ["kind", "output shape", "units"]
    assert table["units"].iloc[-1] == DESCRIPTOR_SIZES[network.name]


# --------------------------------------------------------------------------------------
# facelin.models.checks


def test_dlib_agreement_tells_the_port_from_another_network():
    from skimage import data

    images = [data.astronaut()]
    points = facelin.faces.landmarks(images)
    port = checks.dlib_agreement(images, points, _load("dlib-resnet"))
    assert port["faces_compared"] == 1 and port["chip_mean_abs_diff"] < 1
    assert port["descriptor_max_abs_diff"] < 1e-4
    assert port["descriptor_max_abs_diff_float64"] < 1e-6
    assert 0 < port["max_relative_difference"] < port["descriptor_max_abs_diff"] * 100
    # the control: untrained weights are far from dlib's descriptors
    untrained = _load("dlib-resnet", pretrained=False)
    other = checks.dlib_agreement(images, points, untrained)
    assert other["descriptor_max_abs_diff"] > 1e-2
    assert other["chip_mean_abs_diff"] == port["chip_mean_abs_diff"]


def test_tfjs_agreement_compares_each_recorded_node(faces, monkeypatch):
    model = _load("mobileface")
    nodes = checks.COMPARED_NODES["mobileface"]
    chips = model.chips(faces.images[:2], faces.landmarks[:2])
    outputs = checks.node_outputs(model, chips, nodes)
    # the hooks record the named node: what facelin.extract records of that layer
    recorded = extract.record(model, chips, {model.module_name("add_8"): "all"},
                              progress=False)
    np.testing.assert_allclose(outputs["add_8"].reshape(2, -1),
                               recorded.values.numpy(), rtol=1e-6, atol=1e-6)
    assert outputs["batchnorm0/add_1"].shape == (2, 256)
    shift = {"add_8": 1e-3}

    def fake_reference(path, inputs, asked):
        assert path == model.source and asked == nodes
        np.testing.assert_array_equal(inputs, chips.numpy())
        return {node: outputs[node] * (1 + shift.get(node, 0)) for node in asked}

    monkeypatch.setattr(checks, "tfjs_reference", fake_reference)
    differences = checks.tfjs_agreement(model, faces.images[:2], faces.landmarks[:2])
    assert list(differences) == nodes
    assert differences["add_8"] == pytest.approx(1e-3 / 1.001, rel=1e-3)
    assert max(differences[n] for n in nodes if n != "add_8") == 0
    assert checks.agreement_verdict(differences) == "differs"
    shift.clear()
    same = checks.tfjs_agreement(model, faces.images[:2], faces.landmarks[:2])
    assert checks.agreement_verdict(same) == "reproduces TF.js"


def test_agreement_verdict_applies_the_tolerance():
    assert checks.agreement_verdict({"a": 1e-4, "b": 0.0}) == "reproduces TF.js"
    assert checks.agreement_verdict({"a": 1.1e-4, "b": 0.0}) == "differs"
    assert checks.agreement_verdict({"a": 0.01}, tolerance=0.1) == "reproduces TF.js"
    for bad in ({}, {"a": float("nan")}, {"a": -1.0}):
        with pytest.raises(ValueError, match="differences"):
            checks.agreement_verdict(bad)


class _FakeNetwork:
    """Chips are the images themselves; descriptors are the flattened chips, made
    mirror-symmetric when ``symmetric`` (so that every mirrored face finds itself)."""

    def __init__(self, symmetric):
        self.symmetric = symmetric

    def chips(self, images, landmarks):
        assert len(landmarks) == len(images)
        return torch.as_tensor(np.asarray(images), dtype=torch.float32)[:, None]

    def descriptors(self, chips):
        if self.symmetric:
            chips = chips + chips.flip(-1)
        return chips.flatten(1)


@pytest.fixture(scope="module")
def fake_mirror():
    images = np.random.default_rng(0).random((20, 6, 6))
    networks = {"a": _FakeNetwork(True), "b": _FakeNetwork(True)}
    controls = {"a": _FakeNetwork(False), "b": _FakeNetwork(False)}
    return checks.mirror_table(networks, controls, images, np.zeros((20, 68, 2)))


def test_mirror_table_rates_the_trained_network_and_its_control(fake_mirror):
    table, distances = fake_mirror
    assert table.index.tolist() == [("a", "trained"), ("a", "untrained"),
                                    ("b", "trained"), ("b", "untrained")]
    assert table.columns.tolist() == ["rank-1", "low", "high"]
    trained = table.loc[("a", "trained")]
    # the Wilson interval of 20 out of 20: n / (n + z^2)
    assert trained["rank-1"] == 1 and trained["high"] == pytest.approx(1)
    assert trained["low"] == pytest.approx(20 / (20 + 1.959964 ** 2), rel=1e-6)
    control = table.loc[("a", "untrained")]
    assert control["rank-1"] < 0.5 and control["low"] <= control["rank-1"]
    assert set(distances) == set(table.index)
    np.testing.assert_allclose(np.diag(distances["a", "trained"]), 0, atol=1e-6)
    found, _ = checks.mirror_check(_FakeNetwork(False), np.ones((3, 4, 4)) *
                                   np.arange(1, 4)[:, None, None] + np.eye(4),
                                   np.zeros((3, 68, 2)))
    assert found.dtype == bool and found.shape == (3,)


def test_mirror_separation_and_figure(fake_mirror):
    distances = np.full((4, 4), 0.8)
    np.fill_diagonal(distances, 0.2)
    assert checks.mirror_separation(distances) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="N, N"):
        checks.mirror_separation(np.ones((3, 4)))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = checks.mirror_distance_figure(fake_mirror[1], ["a", "b"])
    assert [ax.get_title() for ax in figure.axes] == ["a", "b"]
    assert len(figure.axes[0].patches) == 4  # same and different, trained and control
    plt.close(figure)


def test_activity_table_is_the_mean_absolute_response(faces):
    models = {"dlib-resnet": _load("dlib-resnet"), "mobileface": _load("mobileface")}
    controls = {name: _load(name, pretrained=False) for name in models}
    images, landmarks = faces.images[:2], faces.landmarks[:2]
    table = checks.activity_table(models, controls, images, landmarks)
    assert table.columns.tolist() == [(name, weights) for name in models
                                      for weights in ("trained", "untrained")]
    depth = {name: len(model.analysis_layers()) for name, model in models.items()}
    assert len(table) == max(depth.values()) and table.index[0] == "layer 1"
    mobileface = table["mobileface", "untrained"]
    assert mobileface.notna().sum() == depth["mobileface"]
    assert mobileface.iloc[depth["mobileface"]:].isna().all()
    model = controls["mobileface"]
    layer = model.analysis_layers()[2]
    recorded = extract.record(model, model.chips(images, landmarks), {layer: "all"},
                              progress=False)
    assert mobileface.iloc[2] == pytest.approx(recorded.values.abs().mean().item(),
                                               rel=1e-5)


def test_check_findings_gathers_every_network():
    import pandas as pd

    dlib = {"faces_compared": 8, "chip_mean_abs_diff": 0.0, "max_relative_difference":
            1e-6, "descriptor_max_abs_diff": 3e-7, "descriptor_max_abs_diff_float64":
            2e-7}
    mirror = pd.DataFrame(
        {"rank-1": [1.0, 0.2, 0.97, 0.1], "low": [0.96, 0.1, 0.9, 0.05],
         "high": [1.0, 0.3, 0.99, 0.2]},
        index=pd.MultiIndex.from_product([["dlib-resnet", "faceres"],
                                          ["trained", "untrained"]]))
    summary = checks.check_findings(
        dlib, {"faceres": {"x": 1e-6, "y": 3e-6}}, mirror,
        {"dlib-resnet": "passes", "faceres": "passes"},
        {"dlib-resnet": 0.1, "faceres": 0.2})
    assert summary["faces_compared"] == 8 and "max_relative_difference" not in summary
    dlib_row = summary["networks"]["dlib-resnet"]
    faceres = summary["networks"]["faceres"]
    assert dlib_row["reference"] == "dlib"
    assert dlib_row["max_relative_difference"] == 1e-6
    assert faceres["reference"] == "TensorFlow.js"
    assert faceres["max_relative_difference"] == 3e-6
    assert faceres["mirror_rank1"] == 0.97 and faceres["control_mirror_rank1"] == 0.1
    assert faceres["mirror_rank1_interval"] == [0.9, 0.99]
    assert faceres["mirror_to_different_distance"] == 0.2
