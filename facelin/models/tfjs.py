"""TensorFlow.js graph models in PyTorch, read from their JSON topology and weights.

A TF.js graph model is a ``<name>.json`` file (the TensorFlow graph: one entry per node
with its op, inputs and attributes, and a manifest of the weights) and one or more
binary weight files. :func:`read_tfjs_graph` turns one into a :class:`TFJSGraph`, a
``torch.nn.Module`` that computes exactly what the graph computes, for the ops that
feed-forward image networks use (see ``SUPPORTED_OPS``).

Layouts. TF.js computes in NHWC; the module takes and keeps images in PyTorch's NCHW
layout: its input is the graph's input as an (N, C, H, W) float tensor, every rank-4
intermediate is NCHW, and ops that name axes (Mean, Sum, Squeeze, Softmax, Pad, Reshape)
are translated. Convolution filters are converted from TF's HWIO (and depthwise
HW-channel-multiplier) layouts; ``"SAME"`` padding is TF's, which puts the odd extra row
or column at the bottom and right.

Every computing node is a submodule named after the node (``/`` and other characters
that cannot appear in a module name become ``_``); ``layer_names()`` lists them in the
order they run, so a forward hook on any of them sees that node's output (for a rank-4
node, NCHW). Only the nodes the requested output depends on are built.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TFJSFormatError", "TFJSGraph", "read_tfjs_graph", "SUPPORTED_OPS",
           "same_padding", "tfjs_reference", "REFERENCE_SCRIPT", "TOLERANCE",
           "relative_difference"]

# A port reproduces TF.js when its values differ from TF.js's by at most this fraction
# of TF.js's largest magnitude (float32 arithmetic in a different order).
TOLERANCE = 1e-4
# The node script that runs a graph with TensorFlow.js's pure-JavaScript CPU backend.
REFERENCE_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "tfjs_reference.js"


class TFJSFormatError(ValueError):
    """A TF.js graph model that cannot be read: a malformed or truncated file, a missing
    weight, or an op this reader does not implement (named, with its node)."""


# NHWC axis -> NCHW axis, for rank-4 tensors.
_NCHW_AXIS = (0, 2, 3, 1)
_ACTIVATIONS = {
    "Relu": F.relu,
    "Relu6": lambda x: x.clamp(0, 6),
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Elu": F.elu,
}
_BINARY = {
    "Add": torch.add, "AddV2": torch.add, "BiasAdd": torch.add, "Sub": torch.sub,
    "Mul": torch.mul, "Maximum": torch.maximum, "Minimum": torch.minimum,
    "RealDiv": torch.div,
}
# ops with a scalar operand (commutative, or the scalar second)
_SCALAR = {"Maximum": torch.clamp_min, "Minimum": torch.clamp_max, "Mul": torch.mul,
           "Add": torch.add, "AddV2": torch.add, "BiasAdd": torch.add}
# In-place forms, used where no one else can see the operand (see TFJSGraph.forward).
_INPLACE_UNARY = {"Relu": torch.relu_, "Relu6": lambda x: x.clamp_(0, 6),
                  "Sigmoid": torch.sigmoid_, "Tanh": torch.tanh_, "Abs": torch.abs_,
                  "Neg": torch.neg_, "Exp": torch.exp_, "Identity": lambda x: x}
_INPLACE_BINARY = {
    "Add": torch.Tensor.add_, "AddV2": torch.Tensor.add_, "BiasAdd": torch.Tensor.add_,
    "Sub": torch.Tensor.sub_, "Mul": torch.Tensor.mul_, "RealDiv": torch.Tensor.div_,
    "Maximum": lambda x, y: torch.maximum(x, y, out=x),
    "Minimum": lambda x, y: torch.minimum(x, y, out=x)}
_INPLACE_SCALAR = {"Maximum": torch.Tensor.clamp_min_, "Minimum": torch.Tensor.clamp_max_,
                   "Mul": torch.Tensor.mul_, "Add": torch.Tensor.add_,
                   "AddV2": torch.Tensor.add_, "BiasAdd": torch.Tensor.add_}
_COMMUTATIVE = ("Add", "AddV2", "BiasAdd", "Mul", "Maximum", "Minimum")
_UNARY = {**_ACTIVATIONS, "Abs": torch.abs, "Square": torch.square,
          "Identity": lambda x: x, "Neg": torch.neg, "Sqrt": torch.sqrt,
          "Rsqrt": torch.rsqrt, "Exp": torch.exp}
_WEIGHTED = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "DepthwiseConv2d",
             "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", "MatMul",
             "_FusedMatMul")
SUPPORTED_OPS = tuple(sorted(set(_BINARY) | set(_UNARY) | set(_WEIGHTED) | {
    "Const", "Placeholder", "Pad", "PadV2", "Mean", "Sum", "Reshape", "Squeeze",
    "Softmax", "Prelu", "LeakyRelu"}))
_DTYPES = {"float32": (np.float32, np.float32), "int32": (np.int32, np.int32),
           "bool": (np.bool_, np.bool_)}
_QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


# --------------------------------------------------------------------------------------
# Reading the files


def _attr(node: dict, key: str, default=None):
    """A node attribute as a Python value (strings decoded, int lists as ints)."""
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "b" in value:
        return bool(value["b"])
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        return []
    return default


def _read_weights(manifest: list, folder: Path, source: str) -> dict:
    """Every weight of the manifest as a numpy array (dequantised to its own dtype)."""
    weights = {}
    for group in manifest:
        paths = [folder / p for p in group["paths"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise TFJSFormatError(f"{source}: weight file(s) {missing} not found")
        data = b"".join(p.read_bytes() for p in paths)
        offset = 0
        for spec in group["weights"]:
            name, shape = spec["name"], [int(d) for d in spec["shape"]]
            quantization = spec.get("quantization")
            if spec["dtype"] not in _DTYPES:
                raise TFJSFormatError(f"{source}: weight {name!r} has dtype "
                                      f"{spec['dtype']!r}, not supported")
            if quantization:
                stored = _QUANTIZED.get(quantization["dtype"])
                if stored is None:
                    raise TFJSFormatError(f"{source}: weight {name!r} is quantised as "
                                          f"{quantization['dtype']!r}, not supported")
            else:
                stored = _DTYPES[spec["dtype"]][0]
            count = int(np.prod(shape)) if shape else 1
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise TFJSFormatError(
                    f"{source}: weight {name!r} needs bytes {offset}..{offset + size} "
                    f"of {[str(p) for p in paths]}, which hold only {len(data)} "
                    "bytes (truncated file?)")
            array = np.frombuffer(data, stored, count, offset).reshape(shape)
            offset += size
            if quantization and quantization["dtype"] != "float16":
                array = array * np.float32(quantization["scale"]) + np.float32(
                    quantization["min"])
            weights[name] = array.astype(_DTYPES[spec["dtype"]][1])
        if offset != len(data):
            raise TFJSFormatError(f"{source}: the weight files "
                                  f"{[str(p) for p in paths]} hold {len(data)} bytes, "
                                  f"the manifest describes {offset}")
    return weights


def _input_name(reference: str) -> str | None:
    """A node input ``"name"`` or ``"name:0"`` as the node name; None for a control
    input (``"^name"``)."""
    if reference.startswith("^"):
        return None
    name, _, index = reference.partition(":")
    if index not in ("", "0"):
        raise TFJSFormatError(f"input {reference!r}: only first outputs are supported")
    return name


def _module_name(node_name: str, taken: set, owner: type) -> str:
    name = re.sub(r"\W", "_", node_name)
    if name[0].isdigit() or hasattr(owner, name):
        name = "node_" + name
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# --------------------------------------------------------------------------------------
# Ops


def same_padding(size: int, kernel: int, stride: int,
                 dilation: int = 1) -> tuple[int, int]:
    """TF's ``"SAME"`` padding of one spatial dimension: (before, after); the odd extra
    row or column goes after (bottom, right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _as_rank(value: torch.Tensor, rank: int) -> torch.Tensor:
    """A constant in TF's (NHWC) broadcasting layout, aligned with a tensor of ``rank``
    dimensions in this module's layout (rank-4 tensors are NCHW)."""
    if rank != 4 or value.dim() == 0:
        return value
    if value.dim() > 4:
        raise TFJSFormatError(f"constant of rank {value.dim()} against a rank-4 tensor")
    aligned = value.reshape((1,) * (4 - value.dim()) + tuple(value.shape))
    return aligned.permute(0, 3, 1, 2)


def _axes(axes, rank: int) -> list[int]:
    axes = [int(a) % rank for a in np.atleast_1d(axes)]
    return [_NCHW_AXIS[a] for a in axes] if rank == 4 else axes


class _Op(nn.Module):
    """One graph node. ``inputs`` are the names of the nodes it reads (constants
    excluded: they are held by the op)."""

    def __init__(self, node: dict, inputs: list[str]):
        super().__init__()
        self.node_name, self.op, self.inputs = node["name"], node["op"], inputs

    def extra_repr(self):
        return f"{self.op} {self.node_name!r}"


class Elementwise(_Op):
    """A unary op, or a binary op with at most one constant operand (``constant``, in
    TF's layout, at position ``constant_position``)."""

    def __init__(self, node, inputs, function, constant=None, constant_position=None):
        super().__init__(node, inputs)
        self.function = function
        self.constant_position = constant_position
        if constant is not None:
            self.register_buffer("constant", torch.from_numpy(np.array(constant)))
        else:
            self.constant = None
        # whether an in-place form exists; the graph decides per call (``in_place``)
        # whether the first operand may be overwritten
        if constant is None and len(inputs) == 1:
            self.can_work_in_place = self.op in _INPLACE_UNARY
        elif constant is None:
            self.can_work_in_place = (self.op in _INPLACE_BINARY
                                      and inputs[0] != inputs[1])
        else:
            self.can_work_in_place = self.op in _INPLACE_BINARY and (
                constant_position == 1 or self.op in _COMMUTATIVE)
        self.in_place = False

    def _in_place(self, tensors):
        """The op computed into its first operand, or None where it cannot be."""
        x = tensors[0]
        if self.constant is None and len(tensors) == 1:
            return _INPLACE_UNARY[self.op](x)
        if self.constant is None:
            y = tensors[1]
            shape = torch.broadcast_shapes(x.shape, y.shape)
            if x.dtype != y.dtype or shape != x.shape:
                return None
            return _INPLACE_BINARY[self.op](x, y)
        if self.constant.numel() == 1 and self.op in _INPLACE_SCALAR:
            return _INPLACE_SCALAR[self.op](x, self.constant.item())
        constant = _as_rank(self.constant, x.dim()).to(x.dtype)
        if torch.broadcast_shapes(x.shape, constant.shape) != x.shape:
            return None
        return _INPLACE_BINARY[self.op](x, constant)

    def forward(self, *tensors):
        if self.in_place:
            out = self._in_place(tensors)
            if out is not None:
                return out
        if self.constant is None:
            if len(tensors) == 2 and tensors[0].dim() != tensors[1].dim() and 4 in (
                    tensors[0].dim(), tensors[1].dim()):
                raise TFJSFormatError(f"node {self.node_name!r}: broadcasting a rank-4 "
                                      "tensor against another rank is not supported")
            return self.function(*tensors)
        (x,) = tensors
        if self.constant.numel() == 1 and self.op in _SCALAR:
            # a scalar operand as a Python number: one pass, no broadcast tensor
            return _SCALAR[self.op](x, self.constant.item())
        constant = _as_rank(self.constant, x.dim()).to(x.dtype)
        return self.function(constant, x) if self.constant_position == 0 else \
            self.function(x, constant)


class Convolution(_Op):
    """Conv2D / DepthwiseConv2dNative and their fused forms (bias add, then an
    activation): ``weight`` in PyTorch's layout (out, in / groups, kh, kw)."""

    def __init__(self, node, inputs, filters, extra, depthwise: bool):
        super().__init__(node, inputs)
        where = f"node {node['name']!r} ({node['op']})"
        if _attr(node, "data_format", "NHWC") != "NHWC":
            raise TFJSFormatError(
                f"{where}: data_format {_attr(node, 'data_format')!r}")
        strides = _attr(node, "strides", [1, 1, 1, 1])
        dilations = _attr(node, "dilations", [1, 1, 1, 1])
        self.stride, self.dilation = tuple(strides[1:3]), tuple(dilations[1:3])
        self.padding = _attr(node, "padding", "VALID")
        explicit = _attr(node, "explicit_paddings", [])
        if self.padding == "EXPLICIT":
            self.explicit = (explicit[4], explicit[5], explicit[2], explicit[3])
        elif self.padding not in ("SAME", "VALID"):
            raise TFJSFormatError(f"{where}: padding {self.padding!r}")
        if depthwise:  # (kh, kw, C, multiplier) -> (C * multiplier, 1, kh, kw)
            kh, kw, channels, multiplier = filters.shape
            weight = filters.transpose(2, 3, 0, 1).reshape(
                channels * multiplier, 1, kh, kw)
            self.groups = channels
        else:  # (kh, kw, in, out) -> (out, in, kh, kw)
            weight = filters.transpose(3, 2, 0, 1)
            self.groups = 1
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight)))
        self.bias, self.activation = _fused(node, extra, where)

    def forward(self, x):
        if self.padding == "SAME":
            kh, kw = self.weight.shape[2:]
            top, bottom = same_padding(x.shape[2], kh, self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[3], kw, self.stride[1], self.dilation[1])
            if top == bottom and left == right:
                padding = (top, left)
            else:
                x, padding = F.pad(x, (left, right, top, bottom)), 0
        elif self.padding == "EXPLICIT":
            x, padding = F.pad(x, self.explicit), 0
        else:
            padding = 0
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                     self.groups)
        return self.activation(y)


class Dense(_Op):
    """MatMul / _FusedMatMul: ``weight`` (out, in) as F.linear takes it."""

    def __init__(self, node, inputs, kernel, extra):
        super().__init__(node, inputs)
        where = f"node {node['name']!r} ({node['op']})"
        if _attr(node, "transpose_a", False):
            raise TFJSFormatError(f"{where}: transpose_a is not supported")
        weight = kernel if _attr(node, "transpose_b", False) else kernel.T
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight)))
        self.bias, self.activation = _fused(node, extra, where)

    def forward(self, x):
        return self.activation(F.linear(x, self.weight, self.bias))


class PRelu(nn.Module):
    def __init__(self, slopes):
        super().__init__()
        self.register_buffer("slopes", torch.from_numpy(np.array(slopes)))

    def forward(self, x):
        slopes = _as_rank(self.slopes, x.dim())
        return torch.where(x >= 0, x, x * slopes)


def _fused(node, extra, where):
    """The bias and activation of a fused op: (bias Parameter or None, callable)."""
    fused = [op for op in _attr(node, "fused_ops", [])]
    bias = None
    if node["op"] in ("MatMul", "Conv2D", "DepthwiseConv2dNative", "DepthwiseConv2d"):
        return None, nn.Identity()
    if fused and fused[0] == "BiasAdd":
        if not extra:
            raise TFJSFormatError(f"{where}: BiasAdd without a bias input")
        bias = nn.Parameter(torch.from_numpy(
            np.ascontiguousarray(extra[0].reshape(-1))))
        fused, extra = fused[1:], extra[1:]
    elif fused:
        raise TFJSFormatError(f"{where}: fused op {fused[0]!r} is not supported")
    if not fused:
        return bias, nn.Identity()
    if len(fused) > 1:
        raise TFJSFormatError(f"{where}: fused ops {fused} are not supported")
    name = fused[0]
    if name in _ACTIVATIONS:
        return bias, _Function(_ACTIVATIONS[name])
    if name == "Prelu":
        return bias, PRelu(extra[0])
    if name == "LeakyRelu":
        alpha = _attr(node, "leakyrelu_alpha", 0.2)
        return bias, _Function(lambda x: F.leaky_relu(x, alpha))
    raise TFJSFormatError(f"{where}: fused activation {name!r} is not supported")


class _Function(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class _Pad(_Op):
    def __init__(self, node, inputs, paddings, value=0.0):
        super().__init__(node, inputs)
        self.paddings, self.value = np.asarray(paddings).reshape(-1, 2), float(value)

    def forward(self, x):
        paddings = self.paddings
        if x.dim() == 4:  # rows in NCHW order
            paddings = paddings[[0, 3, 1, 2]]
        flat = [int(v) for pair in paddings[::-1] for v in pair]
        return F.pad(x, flat, value=self.value)


class _Reduce(_Op):
    def __init__(self, node, inputs, axes, function):
        super().__init__(node, inputs)
        self.axes = np.atleast_1d(axes).tolist()
        self.keep = _attr(node, "keep_dims", False)
        self.function = function

    def forward(self, x):
        return self.function(x, dim=_axes(self.axes, x.dim()), keepdim=self.keep)


class _Reshape(_Op):
    def __init__(self, node, inputs, shape):
        super().__init__(node, inputs)
        self.shape = [int(s) for s in np.atleast_1d(shape)]

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(self.shape)
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y


class _Squeeze(_Op):
    def __init__(self, node, inputs):
        super().__init__(node, inputs)
        self.axes = _attr(node, "squeeze_dims", []) or _attr(node, "axis", [])

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        axes = [a % x.dim() for a in self.axes] or [a for a in range(x.dim())
                                                     if x.shape[a] == 1]
        y = x.squeeze(tuple(axes))
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y


class _Softmax(_Op):
    def forward(self, x):
        return torch.softmax(x, dim=1 if x.dim() == 4 else -1)


# --------------------------------------------------------------------------------------
# The graph


class TFJSGraph(nn.Module):
    """A TF.js graph model as a PyTorch module: (N, C, H, W) float input -> the output
    node's value (rank-4 outputs in NCHW).

    Attributes: ``input_node``, ``output_node`` (TF.js node names), ``input_shape`` (the
    placeholder's (C, H, W), None where it is not fixed) and ``source`` (the JSON file).
    """

    def __init__(self, ops: list[_Op], input_node: str, output_node: str, input_shape,
                 source: str):
        super().__init__()
        self.input_node, self.output_node = input_node, output_node
        self.input_shape, self.source = input_shape, source
        self._order, self._module_of = [], {}
        taken = set()
        for op in ops:
            name = _module_name(op.node_name, taken, type(self))
            self.add_module(name, op)
            self._order.append(name)
            self._module_of[op.node_name] = name
        # after its last reader has run, a value is dropped (keeps peak memory low)
        last_use = {}
        for name in self._order:
            for source_node in self.get_submodule(name).inputs:
                last_use[source_node] = name
        self._release = {}
        for node, name in last_use.items():
            self._release.setdefault(name, []).append(node)
        # ops that may overwrite their first operand: it is computed by another op (not
        # the caller's input) and read by no other op; whether anyone else has seen it
        # (a hook) is checked at each call
        readers = {}
        for name in self._order:
            for source_node in set(self.get_submodule(name).inputs):
                readers[source_node] = readers.get(source_node, 0) + 1
        self._overwrites = {}
        for name in self._order:
            op = self.get_submodule(name)
            if getattr(op, "can_work_in_place", False) \
                    and op.inputs[0] in self._module_of and readers[op.inputs[0]] == 1:
                self._overwrites[name] = self._module_of[op.inputs[0]]

    def layer_names(self) -> list[str]:
        """The submodule name of every computing node, in the order they run."""
        return list(self._order)

    def module_name(self, node_name: str) -> str:
        """The submodule name of a TF.js node (``"global_pooling/Mean"`` ->
        ``"global_pooling_Mean"``)."""
        node_name = _input_name(node_name)
        if node_name not in self._module_of:
            raise KeyError(f"no computing node {node_name!r} in {self.source} "
                           f"(up to {self.output_node!r})")
        return self._module_of[node_name]

    def unit_counts(self) -> dict:
        """Output shape (without the batch) of every node in `layer_names`, in order
        (rank-4 outputs as (C, H, W))."""
        if self.input_shape is None or None in self.input_shape:
            raise ValueError("unit_counts needs a graph input of fixed shape")
        shapes = {}
        hooks = [self.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
            for name in self._order]
        parameter = next(self.parameters(), None)
        dtype = torch.float32 if parameter is None else parameter.dtype
        try:
            with torch.no_grad():
                TFJSGraph.forward(self, torch.full((1, *self.input_shape), 128.0,
                                                   dtype=dtype))
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    def stage_table(self) -> list[dict]:
        """One row per node: name ("stage"), kind (the TF op), output shape, units."""
        return [{"stage": name, "kind": self.get_submodule(name).op,
                 "output shape": shape, "units": int(np.prod(shape))}
                for name, shape in self.unit_counts().items()]

    def check_input(self, x: torch.Tensor):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"input: expected a float tensor, got "
                            f"{getattr(x, 'dtype', type(x))}")
        expected = self.input_shape
        if x.dim() != 4 or (expected is not None and any(
                e is not None and e != s for e, s in zip(expected, x.shape[1:]))):
            raise ValueError(f"input: expected shape "
                             f"(N, {', '.join(map(str, expected))}) (NCHW), got "
                             f"{tuple(x.shape)}")

    def _may_overwrite(self, name: str) -> bool:
        """Whether op ``name`` may compute into its first operand: no gradient is
        recorded and no hook could hold that operand (none on the op that computed it,
        no pre-hook on this op, no global hooks)."""
        producer = self._overwrites.get(name)
        if producer is None or torch.is_grad_enabled():
            return False
        from torch.nn.modules import module as torch_module

        global_hooks = (getattr(torch_module, "_global_forward_hooks", None),
                        getattr(torch_module, "_global_forward_pre_hooks", None))
        return not (any(global_hooks) or self.get_submodule(producer)._forward_hooks
                    or self.get_submodule(name)._forward_pre_hooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        values = {self.input_node: x}
        for name in self._order:
            op = self.get_submodule(name)
            if name in self._overwrites:
                # elementwise ops overwrite operands no one else sees: fewer passes over
                # memory (a quarter of faceres's time); outputs are the same
                op.in_place = self._may_overwrite(name)
            values[op.node_name] = op(*(values[i] for i in op.inputs))
            for node in self._release.get(name, ()):
                if node != self.output_node:
                    del values[node]
        return values[self.output_node]


def _build_op(node, inputs, where):
    """The module of one computing node; ``inputs`` lists its inputs, each a node name
    (computed) or a numpy array (constant)."""
    op = node["op"]
    computed = [i for i in inputs if isinstance(i, str)]
    const = [i for i in inputs if not isinstance(i, str)]
    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "DepthwiseConv2d",
              "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"):
        if len(computed) != 1 or not isinstance(inputs[1], np.ndarray):
            raise TFJSFormatError(f"{where}: expected one computed input and constant "
                                  "filters")
        return Convolution(node, computed, inputs[1], inputs[2:],
                            depthwise="Depthwise" in op)
    if op in ("MatMul", "_FusedMatMul"):
        if len(computed) != 1 or not isinstance(inputs[1], np.ndarray):
            raise TFJSFormatError(f"{where}: expected one computed input and a "
                                  "constant kernel")
        return Dense(node, computed, inputs[1], inputs[2:])
    if op in _UNARY:
        return Elementwise(node, computed, _UNARY[op])
    if op in _BINARY:
        if len(inputs) != 2 or not computed:
            raise TFJSFormatError(
                f"{where}: expected two operands, at least one computed")
        if const:
            position = 0 if isinstance(inputs[0], np.ndarray) else 1
            return Elementwise(node, computed, _BINARY[op], const[0], position)
        return Elementwise(node, computed, _BINARY[op])
    if op == "Prelu":
        module = Elementwise(node, computed, PRelu(const[0]))
        return module
    if op == "LeakyRelu":
        alpha = _attr(node, "alpha", 0.2)
        return Elementwise(node, computed, lambda x: F.leaky_relu(x, alpha))
    if op in ("Pad", "PadV2"):
        return _Pad(node, computed, const[0], const[1] if len(const) > 1 else 0.0)
    if op in ("Mean", "Sum"):
        reduce = torch.mean if op == "Mean" else torch.sum
        return _Reduce(node, computed, const[0], reduce)
    if op == "Reshape":
        return _Reshape(node, computed, const[0])
    if op == "Squeeze":
        return _Squeeze(node, computed)
    if op == "Softmax":
        return _Softmax(node, computed)
    raise TFJSFormatError(f"{where}: op {op!r} is not supported (supported: "
                          f"{', '.join(SUPPORTED_OPS)})")


def load_graph(path, output=None, cls=TFJSGraph, **kwargs):
    """Parse ``path`` and build ``cls(ops, input, output, input_shape, source,
    **kwargs)``."""
    path = Path(path)
    source = str(path)
    try:
        model = json.loads(path.read_text())
        nodes = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise TFJSFormatError(f"{source}: not a TF.js graph model ({err!r})") from None
    by_name = {node["name"]: node for node in nodes}
    placeholders = [n for n in nodes if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise TFJSFormatError(f"{source}: {len(placeholders)} inputs (Placeholder "
                              "nodes); only single-input graphs are supported")
    input_node = placeholders[0]["name"]
    if output is None:
        outputs = list(model.get("signature", {}).get("outputs", {}))
        if len(outputs) != 1:
            raise ValueError(f"{source}: the graph has outputs {outputs}; name one "
                             "with output=")
        output = outputs[0]
    output = _input_name(output)
    if output not in by_name:
        close = [n for n in by_name if output.split("/")[0] in n][:5]
        similar = f"; similar: {close}" if close else ""
        raise KeyError(f"{source}: no node {output!r}{similar}")

    # the nodes the output depends on, inputs before readers (depth-first, iterative)
    order, state, stack = [], {}, [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            state[name] = "done"
            order.append(name)
            continue
        if state.get(name):
            continue
        state[name] = "open"
        stack.append((name, True))
        node = by_name.get(name)
        if node is None:
            raise TFJSFormatError(f"{source}: node input {name!r} does not exist")
        for reference in reversed(node.get("input", [])):
            dependency = _input_name(reference)
            if dependency is not None and state.get(dependency) != "done":
                if state.get(dependency) == "open":
                    raise TFJSFormatError(f"{source}: cycle through {dependency!r}")
                stack.append((dependency, False))

    weights = _read_weights(manifest, path.parent, source)
    ops, constants = [], {}
    for name in order:
        node = by_name[name]
        where = f"{source}: node {name!r}"
        if node["op"] == "Const":
            if name not in weights:
                raise TFJSFormatError(f"{where} (Const) has no entry in the weights "
                                      "manifest")
            constants[name] = weights[name]
            continue
        if node["op"] == "Placeholder":
            continue
        inputs = [constants.get(i, i) for i in map(_input_name, node.get("input", []))
                  if i is not None]
        ops.append(_build_op(node, inputs, where))
    dims = _attr_shape(placeholders[0])
    input_shape = None if dims is None else (dims[3], dims[1], dims[2])
    return cls(ops, input_node, output, input_shape, source, **kwargs)


def _attr_shape(node):
    dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim")
    if dims is None or len(dims) != 4:
        return None
    return [None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims]


def read_tfjs_graph(path, output: str | None = None) -> TFJSGraph:
    """Read a TF.js graph model (``<name>.json`` and the weight files its manifest
    names, in the same folder) as a :class:`TFJSGraph` in eval mode, float32.

    Parameters
    ----------
    path : the model's JSON file.
    output : the TF.js node whose value the module returns (e.g.
        ``"global_pooling/Mean"``; a ``":0"`` suffix is allowed); None takes the graph's
        output when its signature names exactly one. Only the nodes it depends on are
        built and computed.

    Raises
    ------
    TFJSFormatError
        for a malformed file, a missing or truncated weight file, or an unsupported op
        (naming the op and its node).
    """
    return load_graph(path, output).eval().requires_grad_(False)


def tfjs_reference(path, inputs, nodes) -> dict:
    """What TensorFlow.js itself computes (its pure-JavaScript CPU backend, under node)
    for a graph model: ``{node: array}`` for each TF.js node name in ``nodes``, given
    ``inputs`` (N, C, H, W) float32 as :class:`TFJSGraph` takes them. Rank-4 values are
    returned in :class:`TFJSGraph`'s NCHW layout. Needs node and npm (TensorFlow.js is
    installed into the cache on first use, see `facelin.models.npm.tfjs_modules`)."""
    import shutil
    import subprocess
    import tempfile

    from .npm import NpmError, tfjs_modules

    node = shutil.which("node")
    if node is None:
        raise NpmError("the TF.js reference needs node, which is not installed")
    if not REFERENCE_SCRIPT.is_file():
        raise FileNotFoundError(f"{REFERENCE_SCRIPT}: the reference script (in the "
                                "source tree's tools/) is missing")
    batch = np.ascontiguousarray(np.asarray(inputs, dtype="<f4").transpose(0, 2, 3, 1))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        batch.tofile(work / "input.bin")
        done = subprocess.run(
            [node, str(REFERENCE_SCRIPT), "--modules", str(tfjs_modules()), "--model",
             str(path), "--input", str(work / "input.bin"), "--shape",
             ",".join(map(str, batch.shape)), "--nodes", ",".join(nodes), "--out",
             str(work / "out.json")], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{REFERENCE_SCRIPT.name} failed: {done.stderr[-1000:]}")
        result = json.loads((work / "out.json").read_text())
    out = {}
    for name in nodes:
        entry = result["nodes"][name]
        value = np.frombuffer(base64.b64decode(entry["values"]), "<f4").reshape(
            entry["shape"])
        out[name] = value.transpose(0, 3, 1, 2) if value.ndim == 4 else value
    return out


def relative_difference(ours, reference) -> float:
    """max |ours - reference| / max |reference|: the largest difference relative to the
    reference's scale (what `TOLERANCE` bounds)."""
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        raise ValueError(f"shapes differ: {ours.shape} and {reference.shape}")
    scale = np.abs(reference).max()
    if not np.isfinite(scale) or scale == 0 or not np.isfinite(ours).all():
        raise ValueError("the reference is all zero, or a value is NaN or Inf")
    return float(np.abs(ours - reference).max() / scale)
