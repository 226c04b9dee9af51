"""facelin.extract: the gather op, record, record_stats and the distributed mode.

Every recorded value is compared, element for element, with a plain-PyTorch reference:
a forward hook that clones the whole layer output, flattens it and indexes it.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from facelin import _ops, extract, linalg
from facelin.units import UNIT_COLUMNS

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


class Transposed(nn.Module):
    """Returns a transposed view: an output with non-standard strides."""

    def forward(self, x):
        return x.transpose(2, 3)


class ChannelsLast(nn.Module):
    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last)


class TinyNet(nn.Module):
    """A small conv net whose layers have standard, transposed and channels-last outputs."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.turn = Transposed()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2)
        self.relu2 = nn.ReLU()
        self.nhwc = ChannelsLast()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.nhwc(self.relu2(self.conv2(self.turn(self.relu1(self.conv1(x))))))
        return self.fc(self.flat(self.pool(x)))


def images(n=23, seed=1, size=12):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def reference(model, x, selections, out_dtype):
    """Hook, clone, flatten, index: selections maps layer -> (index, pooling)."""
    outputs = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(
        lambda m, i, o, name=name: outputs.__setitem__(name, o.clone()))
        for name in selections]
    with torch.no_grad():
        model(x.to(next(model.parameters()).dtype))
    for h in handles:
        h.remove()
    blocks = []
    for name, (index, pooling) in selections.items():
        out = outputs[name]
        if pooling == "none":
            blocks.append(out.flatten(1)[:, index].to(out_dtype))
        elif pooling == "mean":
            blocks.append(out.double().mean((2, 3))[:, index].to(out_dtype))
        else:
            blocks.append(out.amax((2, 3))[:, index].to(out_dtype))
    return torch.cat(blocks, 1)


# ----------------------------------------------------------------------------------------
# The op


@pytest.mark.parametrize("in_dtype", DTYPES)
@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("pooling", ["none", "mean", "max"])
def test_gather_units_matches_indexing(device, in_dtype, out_dtype, pooling):
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(5, 7, 6, 9, generator=gen).to(in_dtype)
    layouts = {"contiguous": base, "channels_last": base.contiguous(
        memory_format=torch.channels_last), "transposed": base.transpose(2, 3),
        "sliced": torch.randn(6, 9, 8, 11, generator=gen).to(in_dtype)[1:, 1:8, 1:7, 2:11]}
    for layout, layer in layouts.items():
        layer = layer.to(device)
        flat = layer.reshape(layer.shape[0], -1)
        count = flat.shape[1] if pooling == "none" else layer.shape[1]
        index = torch.randint(0, count, (13,), generator=gen).to(device)
        out = torch.full((9, 20), -7.0, dtype=out_dtype, device=device)
        _ops.gather_units(layer, index, pooling, out, 2, 4)
        if pooling == "none":
            expected = flat[:, index].to(out_dtype)
        elif pooling == "mean":
            expected = layer.double().mean((2, 3))[:, index].to(out_dtype)
        else:
            expected = layer.amax((2, 3))[:, index].to(out_dtype)
        block = out[2:7, 4:17]
        if pooling == "mean" and out_dtype == torch.float64 and in_dtype == torch.float64:
            # Two float64 sums in different orders: equal to a few units in the last place.
            torch.testing.assert_close(block, expected, rtol=4e-16 * 64, atol=0)
        else:
            assert torch.equal(block, expected), layout
        untouched = torch.ones_like(out, dtype=torch.bool)
        untouched[2:7, 4:17] = False
        assert bool((out[untouched] == -7).all()), layout


def test_gather_units_two_dimensional_layer_and_strided_out(device):
    layer = torch.randn(4, 30, device=device)[:, ::2]  # (4, 15), column stride 2
    out_storage = torch.zeros(12, 6, device=device)
    out = out_storage.T  # (6, 12), row stride 1
    index = torch.tensor([14, 0, 3], device=device)
    _ops.gather_units(layer, index, "none", out, 1, 5)
    assert torch.equal(out[1:5, 5:8], layer[:, index])
    assert int((out != 0).sum()) == int((layer[:, index] != 0).sum())


def test_gather_units_max_propagates_nan(device):
    layer = torch.ones(2, 3, 4, 4, device=device)
    layer[1, 2, 3, 0] = float("nan")
    out = torch.zeros(2, 3, device=device)
    _ops.gather_units(layer, torch.arange(3, device=device), "max", out, 0, 0)
    assert torch.isnan(out[1, 2]) and int(torch.isnan(out).sum()) == 1


@pytest.mark.cuda
def test_gather_units_cuda_layer_into_pinned_host_matrix():
    layer = torch.randn(6, 5, 7, 7, device="cuda").transpose(2, 3)
    index = torch.tensor([0, 100, 244, 17], device="cuda")
    for pooling, idx in [("none", index), ("max", index % 5), ("mean", index % 5)]:
        out = torch.zeros(10, 9).pin_memory()
        _ops.gather_units(layer, idx, pooling, out, 3, 2)
        torch.cuda.synchronize()
        cpu_out = torch.zeros(10, 9)
        _ops.gather_units(layer.cpu(), idx.cpu(), pooling, cpu_out, 3, 2)
        if pooling == "mean":
            torch.testing.assert_close(out, cpu_out, rtol=1e-6, atol=0)
        else:
            assert torch.equal(out, cpu_out)


@pytest.mark.parametrize(
    "layer, index, pooling, out, row0, col0, message",
    [
        (torch.ones(2, 3, 4, 4), torch.tensor([48]), "none", torch.zeros(2, 1), 0, 0,
         "index\\[0\\] = 48 is out of range"),
        (torch.ones(2, 3, 4, 4), torch.tensor([3]), "max", torch.zeros(2, 1), 0, 0,
         "valid: 0 to 2 channels"),
        (torch.ones(2, 3, 4, 4), torch.tensor([-1]), "none", torch.zeros(2, 1), 0, 0,
         "out of range"),
        (torch.ones(2, 3, 4), torch.tensor([0]), "none", torch.zeros(2, 1), 0, 0,
         "\\(N, C, H, W\\) or \\(N, F\\)"),
        (torch.ones(2, 3, dtype=torch.int32), torch.tensor([0]), "none", torch.zeros(2, 1), 0,
         0, "layer output must be float16"),
        (torch.ones(2, 3), torch.tensor([0]), "none", torch.zeros(2, 1, dtype=torch.int64), 0,
         0, "out must be float16"),
        (torch.ones(2, 3), torch.tensor([0], dtype=torch.int32), "none", torch.zeros(2, 1), 0,
         0, "index must be int64"),
        (torch.ones(2, 3), torch.tensor([[0]]), "none", torch.zeros(2, 1), 0, 0,
         "one-dimensional"),
        (torch.ones(2, 3), torch.tensor([0]), "none", torch.zeros(2, 1), 1, 0,
         "rows \\[1, 3\\) of the batch do not fit"),
        (torch.ones(2, 3), torch.tensor([0, 1]), "none", torch.zeros(2, 2), 0, 1,
         "columns \\[1, 3\\) of the layer do not fit"),
        (torch.ones(2, 3), torch.tensor([0]), "none", torch.zeros(2), 0, 0, "must be a matrix"),
        (torch.ones(2, 3, 0, 4), torch.tensor([0]), "mean", torch.zeros(2, 1), 0, 0,
         "zero spatial size"),
    ],
)
def test_gather_units_rejects_bad_input(layer, index, pooling, out, row0, col0, message):
    with pytest.raises(RuntimeError, match=message):
        _ops.gather_units(layer, index, pooling, out, row0, col0)


def test_gather_units_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of"):
        _ops.gather_units(torch.ones(2, 3), torch.tensor([0]), "sum", torch.zeros(2, 1), 0, 0)


def test_gather_units_opcheck_and_fake():
    layer = torch.randn(3, 4, 5, 5)
    for pooling, index in [("none", torch.tensor([0, 99, 7])), ("mean", torch.tensor([3, 1]))]:
        out = torch.zeros(4, 6)
        torch.library.opcheck(torch.ops.facelin.gather_units.default,
                              (layer, index, pooling, out, 1, 2))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        assert _ops.gather_units(torch.empty(3, 4, 5, 5), torch.zeros(2, dtype=torch.long),
                                 "none", torch.empty(4, 6), 0, 0) is None


# ----------------------------------------------------------------------------------------
# record


SPEC = {"conv1": "all", "turn": 40, "relu2": torch.tensor([5, 0, 71, 5, 30]), "fc": 3}


@pytest.mark.parametrize("model_dtype", DTYPES)
@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("pool", [None, "mean", "max"])
def test_record_equals_hook_clone_index(device, model_dtype, out_dtype, pool):
    model = TinyNet().to(device=device, dtype=model_dtype)
    x = images().to(device)
    spec = dict(SPEC)
    if pool is not None:
        spec["relu2"] = torch.tensor([5, 0, 7, 5])  # channels
        spec["turn"] = 4
    got = extract.record(model, x, spec, batch_size=5, pool=pool, out_dtype=out_dtype,
                         progress=False, out_device=device, check_finite=False)
    assert got.values.shape == (23, len(got.units)) and got.values.dtype == out_dtype
    assert list(got.layers) == list(spec)
    selections = {}
    for name, cols in got.layers.items():
        part = got.units.iloc[cols]
        pooling = part.pooling.iloc[0]
        assert (part.pooling == pooling).all() and (part.layer == name).all()
        if pooling != "none" or name == "fc":
            index = torch.tensor(part.channel.to_numpy())
        else:
            out_shape = {"conv1": (6, 12, 12), "turn": (6, 12, 12), "relu2": (8, 5, 5)}[name]
            _, h, w = out_shape
            flat = part.channel * h * w + part.y * w + part.x
            index = torch.tensor(flat.to_numpy())
        selections[name] = (index.to(device), pooling)
    expected = reference(model, x, selections, out_dtype)
    if pool == "mean" and out_dtype == torch.float64 and model_dtype == torch.float64:
        torch.testing.assert_close(got.values, expected, rtol=1e-13, atol=1e-16)
    else:
        assert torch.equal(got.values, expected)
    assert torch.equal(selections["relu2"][0].cpu(), torch.as_tensor(spec["relu2"]))
    assert len(selections["conv1"][0]) == (6 if pool else 6 * 12 * 12)


@pytest.mark.cuda
def test_record_cuda_model_into_pinned_host_matrix():
    torch.backends.cudnn.allow_tf32 = False
    model = TinyNet().cuda()
    x = images()
    got = extract.record(model, x, SPEC, batch_size=5, progress=False)
    assert got.values.device.type == "cpu" and got.values.is_pinned()
    on_gpu = extract.record(model, x.cuda(), SPEC, batch_size=5, progress=False,
                            out_device="cuda")
    assert torch.equal(got.values, on_gpu.values.cpu())
    stats = extract.record_stats(model, x, SPEC, torch.randn(23, 2), batch_size=5,
                                 progress=False)
    r = got.values.double()
    torch.testing.assert_close(stats.mean_responses, r.mean(0), rtol=1e-12, atol=1e-12)


def test_record_stops_after_last_requested_layer():
    model = TinyNet()
    pool_calls = []
    model.pool.register_forward_pre_hook(lambda m, args: pool_calls.append(1) if not isinstance(
        args[0], torch._subclasses.FakeTensor) else None)
    got = extract.record(model, images(), {"conv1": 5, "relu2": 4}, batch_size=4,
                         progress=False)
    assert pool_calls == [] and got.values.shape == (23, 9)
    extract.record(model, images(), {"fc": "all"}, batch_size=4, progress=False)
    assert len(pool_calls) == 6


def test_record_unit_table_and_sampling():
    model = TinyNet()
    a = extract.record(model, images(), {"relu2": 30}, progress=False)
    b = extract.record(model, images(), {"conv1": 3, "relu2": 30}, progress=False)
    c = extract.record(model, images(), {"relu2": 30}, seed=1, progress=False)
    assert a.units.equals(b.units.iloc[b.layers["relu2"]].reset_index(drop=True))
    assert not a.units.equals(c.units)
    assert torch.equal(a.values, b.layer("relu2"))
    u = a.units
    flat = (u.channel * 25 + u.y * 5 + u.x).to_numpy()
    assert len(u) == 30 and len(np.unique(flat)) == 30
    assert (np.diff(flat) > 0).all()  # sorted
    reference_out = {}
    model.relu2.register_forward_hook(lambda m, i, o: reference_out.setdefault("o", o.clone()))
    with torch.no_grad():
        model(images())
    channel, y, x = torch.tensor(u[["channel", "y", "x"]].to_numpy()).T
    assert torch.equal(a.values, reference_out["o"][:, channel, y, x])
    assert u.iloc[0]["pooling"] == "none" and set(u["layer"]) == {"relu2"}


def test_unit_table_is_a_dataframe_with_typed_columns_and_sub_selections():
    model = TinyNet()
    spec = {"conv1": torch.tensor([3, 150]), "relu2": 2, "fc": "all"}
    got = extract.record(model, images(n=4), spec, pool={"relu2": "max"}, progress=False)
    u = got.units
    assert isinstance(u, pd.DataFrame) and list(u.columns) == list(UNIT_COLUMNS)
    assert list(u.index) == list(range(2 + 2 + 5))
    assert all(u[c].dtype == np.int64 for c in ("channel", "y", "x"))
    assert all(pd.api.types.is_string_dtype(u[c]) for c in ("layer", "pooling"))
    # conv1 is (6, 12, 12): flat 3 is channel 0, y 0, x 3; flat 150 channel 1, y 0, x 6.
    conv1 = u.iloc[got.layers["conv1"]]
    assert conv1[["channel", "y", "x"]].to_numpy().tolist() == [[0, 0, 3], [1, 0, 6]]
    assert (conv1.pooling == "none").all()
    pooled, fc = u[u.layer == "relu2"], u.iloc[got.layers["fc"]]
    assert (pooled.pooling == "max").all() and (pooled[["y", "x"]] == -1).all().all()
    assert fc.channel.tolist() == list(range(5)) and (fc[["y", "x"]] == -1).all().all()
    # Column indices as a tensor, a layer's slice and a boolean mask select rows alike;
    # equals() compares the index too, so sub-tables compare after reset_index.
    picked = torch.tensor([8, 2, 0])
    assert u.iloc[picked.numpy()].equals(u.iloc[[8, 2, 0]])
    assert u[u.layer == "fc"].equals(fc) and fc.index[0] == 4
    assert not fc.equals(fc.reset_index(drop=True))
    x, t = images(n=12), torch.randn(12, 2, dtype=torch.float64)
    one = extract.record_stats(model, x, {"relu2": 5}, t, progress=False)
    other = extract.record_stats(model, x, {"relu2": 5}, t, seed=1, progress=False)
    with pytest.raises(ValueError, match="different units"):
        one.merge(other)


def test_record_accepts_arrays_iterables_and_tuple_batches():
    model = TinyNet()
    x = images()
    units = {"relu2": 10, "fc": "all"}
    want = extract.record(model, x, units, progress=False).values
    assert torch.equal(extract.record(model, x.numpy(), units, progress=False).values, want)
    # Batches of other sizes: compared batch by batch (a convolution's result may depend
    # on the batch size in its last bits).
    parts = [x[:7], x[7:8], x[8:]]
    want_parts = torch.cat([extract.record(model, p, units, progress=False).values
                            for p in parts])
    assert torch.equal(extract.record(model, parts, units, progress=False).values, want_parts)
    pairs = ((p, torch.zeros(len(p))) for p in parts)  # a one-shot iterator of (x, label)
    assert torch.equal(extract.record(model, pairs, units, progress=False).values, want_parts)


class Named(nn.Module):
    """A model that names its own layers."""

    def __init__(self):
        super().__init__()
        self.body = TinyNet()

    def layer_names(self):
        return ["body.relu1", "body.relu2"]

    def forward(self, x):
        return self.body(x)


def test_record_uses_layer_names_of_the_model():
    model = Named()
    assert extract.layer_names(model) == ["body.relu1", "body.relu2"]
    assert extract.record(model, images(), {"body.relu2": 2}, progress=False).values.shape \
        == (23, 2)
    with pytest.raises(KeyError, match="unknown layer 'body.conv1'"):
        extract.record(model, images(), {"body.conv1": 2}, progress=False)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(self.act(x)))


class Pair(nn.Module):
    def forward(self, x):
        return x, x


class PairOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = Pair()

    def forward(self, x):
        return self.pair(x)[0]


@pytest.mark.parametrize(
    "model, units, kwargs, error, message",
    [
        (TinyNet(), {"relu3": 5}, {}, KeyError, "unknown layer 'relu3'.*did you mean"),
        (TinyNet(), {}, {}, ValueError, "non-empty mapping"),
        (TinyNet(), {"relu2": 0}, {}, ValueError, "selection is empty"),
        (TinyNet(), {"relu2": torch.tensor([], dtype=torch.long)}, {}, ValueError,
         "selection is empty"),
        (TinyNet(), {"relu2": 201}, {}, ValueError, "only 200"),
        (TinyNet(), {"relu2": torch.tensor([0, 200])}, {}, IndexError, "span \\[0, 200\\]"),
        (TinyNet(), {"relu2": torch.tensor([-1])}, {}, IndexError, "span \\[-1, -1\\]"),
        (TinyNet(), {"relu2": torch.tensor([8])}, {"pool": "max"}, IndexError,
         "8 channels"),
        (TinyNet(), {"relu2": torch.tensor([0.0])}, {}, TypeError, "must be integers"),
        (TinyNet(), {"relu2": torch.tensor([[0]])}, {}, ValueError, "one-dimensional"),
        (TinyNet(), {"relu2": "some"}, {}, ValueError, "got the string 'some'"),
        (TinyNet(), {"relu2": 2.5}, {}, TypeError, "must be 'all', an int"),
        (TinyNet(), {"relu2": 2}, {"pool": "sum"}, ValueError, "must be None, 'mean' or 'max'"),
        (TinyNet(), {"fc": 2}, {"pool": {"fc": "mean"}}, ValueError, "no channels to pool"),
        (TinyNet(), {"fc": 2}, {"pool": {"relu2": "mean"}}, KeyError, "not recorded"),
        (TinyNet(), {"fc": 2}, {"out_dtype": torch.int32}, TypeError, "out_dtype"),
        (TinyNet(), {"fc": 2}, {"batch_size": 0}, ValueError, "batch_size"),
        (TinyNet(), {"fc": 2}, {"device": "cuda"}, ValueError, "move the model first"),
        (Shared(), {"act": 2}, {}, RuntimeError, "runs more than once"),
        (PairOut(), {"": 2}, {}, KeyError, "unknown layer ''"),
        (PairOut(), {"pair": 2}, {}, TypeError, "returns tuple, not a tensor"),
    ],
)
def test_record_rejects_bad_requests_before_recording(model, units, kwargs, error, message):
    real_batches = []
    model.register_forward_pre_hook(lambda m, args: real_batches.append(1) if not isinstance(
        args[0], torch._subclasses.FakeTensor) else None)
    with pytest.raises(error, match=message):
        extract.record(model, images(), units, progress=False, **kwargs)
    assert real_batches == []


def test_record_reports_non_finite_responses():
    x = images()
    x[9, 0, 3, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="at image 9.*layer 'conv1'"):
        extract.record(TinyNet(), x, {"conv1": "all"}, progress=False)
    with pytest.raises(ValueError, match="images is empty"):
        extract.record(TinyNet(), x[:0], {"conv1": "all"}, progress=False)


def test_record_runs_in_eval_mode_and_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    before = model[1].running_mean.clone()
    got = extract.record(model, images(), {"2": "all"}, progress=False)
    assert model.training and torch.equal(model[1].running_mean, before)
    with torch.no_grad():
        expected = model.eval()(images()).flatten(1)
    assert torch.equal(got.values, expected)


# ----------------------------------------------------------------------------------------
# dlib's face-recognition ResNet


@pytest.fixture(scope="module")
def dlib_resnet():
    from facelin.models import load_dlib_resnet

    return load_dlib_resnet()


def flat_index(units, shape):
    if len(shape) == 1 or units.pooling.iloc[0] != "none":
        return torch.tensor(units.channel.to_numpy())
    _, h, w = shape
    return torch.tensor((units.channel * h * w + units.y * w + units.x).to_numpy())


@pytest.mark.parametrize("pool", [None, "mean", "max"])
def test_record_on_dlib_resnet_equals_hook_clone_index(dlib_resnet, pool):
    chips = torch.randint(0, 256, (5, 3, 150, 150), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(2))
    units = {"stem.relu": 7 if pool else 300, "stage2.block1.relu": "all",
             "stage4.block2.relu1": torch.tensor([255, 3, 3, 100]), "pool": "all",
             "descriptor": 16}
    got = extract.record(dlib_resnet, chips, units, batch_size=3, pool=pool, progress=False)
    shapes = dlib_resnet.unit_counts()
    selections = {name: (flat_index(got.units.iloc[cols], shapes[name]),
                         got.units.pooling.iloc[cols.start])
                  for name, cols in got.layers.items()}
    expected = torch.cat([reference(dlib_resnet, part, selections, torch.float32)
                          for part in (chips[:3], chips[3:])])
    assert got.values.shape == (5, len(got.units))
    assert len(got.units) == (7 if pool else 300) + (64 if pool else 64 * 17 * 17) + 4 + 256 + 16
    if pool == "mean":
        torch.testing.assert_close(got.values, expected, rtol=1e-6, atol=1e-7)
        # The float32 mean of float64 sums equals the float32 rounding of the exact mean:
        # compare the pooled block exactly with a float64 reference.
        pooled = got.layers["stage2.block1.relu"]
        assert torch.equal(got.values[:, pooled], expected[:, pooled])
    else:
        assert torch.equal(got.values, expected)


def test_record_on_dlib_resnet_stops_after_the_last_layer(dlib_resnet):
    pool_calls = []
    hook = dlib_resnet.pool.register_forward_pre_hook(
        lambda m, args: pool_calls.append(args[0].shape[0]))
    try:
        got = extract.record(dlib_resnet, torch.zeros(2, 3, 150, 150), {"stem.relu": 3,
                             "stage3.block1.relu": 5}, progress=False)
    finally:
        hook.remove()
    assert 2 not in pool_calls and got.values.shape == (2, 8)  # (1: the shape probe)


# ----------------------------------------------------------------------------------------
# record_stats: streaming fits equal stored fits


class Offset(nn.Module):
    """TinyNet with responses far from zero: a test of the shifted accumulation."""

    def __init__(self):
        super().__init__()
        self.body = TinyNet()
        self.shifted = nn.Identity()

    def forward(self, x):
        return self.shifted(self.body(x) * 0.01 + 1000.0)


def stored_fit(inputs, outputs, alpha=0.0):
    """The store-then-fit path: facelin.linalg.lstsq on the stored, centred data."""
    mi, mo = inputs.mean(0), outputs.mean(0)
    coef = linalg.lstsq(inputs - mi, outputs - mo, alpha=alpha)
    resid = (outputs - mo) - (inputs - mi) @ coef
    r2 = 1 - (resid ** 2).sum(0) / ((outputs - mo) ** 2).sum(0)
    return coef, mo - mi @ coef, r2


def assert_fit_equal(fit, coef, intercept, r2, rtol=1e-9):
    torch.testing.assert_close(fit.coef.T, coef, rtol=rtol, atol=rtol * coef.abs().max())
    torch.testing.assert_close(fit.intercept, intercept, rtol=rtol,
                               atol=rtol * intercept.abs().max())
    torch.testing.assert_close(fit.explained_variance, r2, rtol=0, atol=rtol)


def test_streaming_fits_equal_stored_fits():
    model = Offset()
    x = images(n=90)
    targets = torch.randn(90, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    units = {"body.relu2": 12, "shifted": "all"}
    stored = extract.record(model, x, units, batch_size=16, progress=False)
    stats = extract.record_stats(model, x, units, targets, batch_size=16, progress=False)
    r = stored.values.double()
    assert stats.count == 90 and stats.units.equals(stored.units)
    rc = r - r.mean(0)
    torch.testing.assert_close(stats.rr, rc.T @ rc, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(stats.mean_responses, r.mean(0), rtol=1e-15, atol=0)
    for alpha in (0.0, 3.0):
        assert_fit_equal(stats.fit_encoder(alpha), *stored_fit(targets, r, alpha))
        assert_fit_equal(stats.fit_decoder(alpha), *stored_fit(r, targets, alpha))
    subsets = torch.stack([torch.randperm(stats.rr.shape[0])[:9] for _ in range(6)])
    coef, intercept = stats.fit_decoder_subsets(subsets, alpha=0.5)
    want_coef, want_intercept = linalg.subset_lstsq(r, targets, subsets, alpha=0.5,
                                                    return_intercept=True)
    torch.testing.assert_close(coef, want_coef, rtol=1e-9, atol=1e-9 * want_coef.abs().max())
    torch.testing.assert_close(intercept, want_intercept, rtol=1e-9, atol=1e-9)
    lean = extract.record_stats(model, x.split(7), units, targets, progress=False,
                                response_gram=False)
    assert lean.rr is None
    assert_fit_equal(lean.fit_encoder(), *stored_fit(targets, r))
    with pytest.raises(ValueError, match="response_gram=True"):
        lean.fit_decoder()


def test_stats_merge_equals_stats_of_the_union():
    model = TinyNet()
    x = images(n=40)
    t = torch.randn(40, 3, dtype=torch.float64)
    units = {"relu2": 10, "fc": "all"}
    whole = extract.record_stats(model, x, units, t, progress=False)
    merged = extract.record_stats(model, x[:13], units, t[:13], progress=False).merge(
        extract.record_stats(model, x[13:], units, t[13:], progress=False))
    for key in ("mean_responses", "mean_targets", "rr", "rt", "tt", "ss_responses"):
        torch.testing.assert_close(getattr(merged, key), getattr(whole, key), rtol=1e-12,
                                   atol=1e-10)


def test_record_stats_errors():
    model = TinyNet()
    x = images(n=10)
    with pytest.raises(ValueError, match="targets has 9 rows but there are 10 images"):
        extract.record_stats(model, x, {"fc": 2}, torch.zeros(9, 2), progress=False)
    bad = torch.zeros(10, 2)
    bad[4, 1] = float("inf")
    with pytest.raises(ValueError, match="first in row 4"):
        extract.record_stats(model, x, {"fc": 2}, bad, progress=False)
    stats = extract.record_stats(model, x, {"relu2": 50}, torch.randn(10, 2), progress=False)
    with pytest.raises(ValueError, match="singular.*pass alpha > 0"):
        stats.fit_decoder()  # 50 units, 10 images
    assert torch.isfinite(stats.fit_decoder(alpha=1.0).coef).all()
    with pytest.raises(RuntimeError, match="not initialised"):
        extract.record_stats(model, x, {"fc": 2}, torch.zeros(10, 2), distributed=True,
                             progress=False)


# ----------------------------------------------------------------------------------------
# Distributed: two gloo processes under torchrun against one process

WORKER = """
import sys, torch, torch.distributed as dist
sys.path[:0] = [{package_root!r}, {tests!r}]  # the facelin this test process imported
from test_extract import TinyNet, images
from facelin import extract

dist.init_process_group("gloo")
model = TinyNet()
x = images(n=45, seed=7)
targets = torch.randn(45, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
stats = extract.record_stats(model, x, {{"relu1": 30, "relu2": 20, "fc": "all"}}, targets,
                             batch_size=8, progress=False)
if dist.get_rank() == 0:
    torch.save(stats.__dict__, {out!r})
dist.destroy_process_group()
"""


def test_two_gloo_processes_equal_one_process(tmp_path):
    script = tmp_path / "worker.py"
    out = tmp_path / "stats.pt"
    tests = os.path.dirname(os.path.abspath(__file__))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(extract.__file__)))
    script.write_text(textwrap.dedent(WORKER.format(package_root=package_root, tests=tests,
                                                    out=str(out))))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shared = torch.load(out, weights_only=False)
    targets = torch.randn(45, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    single = extract.record_stats(TinyNet(), images(n=45, seed=7),
                                  {"relu1": 30, "relu2": 20, "fc": "all"}, targets,
                                  batch_size=8, progress=False)
    assert shared["count"] == 45 and shared["units"].equals(single.units)
    for key in ("mean_responses", "mean_targets", "rr", "rt", "tt", "ss_responses"):
        torch.testing.assert_close(shared[key], getattr(single, key), rtol=1e-12, atol=1e-10)
    two = extract.ResponseStats(**shared)
    fit = single.fit_encoder()
    assert_fit_equal(two.fit_encoder(), fit.coef.T, fit.intercept, fit.explained_variance)
