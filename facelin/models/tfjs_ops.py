"""The ops of a TF.js graph as PyTorch modules, one module per graph node.

`build_op` turns one node of the graph JSON (its op, attributes and inputs, constants
already read) into a `TFJSOp`; `facelin.models.tfjs` reads the files and wires the ops
into a `facelin.models.tfjs.TFJSGraph`. The ops implemented are ``SUPPORTED_OPS``.

Layouts. TF.js computes in NHWC; these modules take and return every rank-4 tensor in
PyTorch's NCHW layout, (N, C, H, W), and translate what names axes (Mean, Sum, Squeeze,
Softmax, Pad, Reshape) and constants broadcast against rank-4 tensors. Tensors of other
ranks keep TF's layout: (N, D) for a dense layer's input and output. Convolution filters
are converted from TF's HWIO (and depthwise HW-channel-multiplier) layouts; ``"SAME"``
padding is TF's, which puts the odd extra row or column at the bottom and right.
"""
from __future__ import annotations

import base64

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TFJSFormatError", "SUPPORTED_OPS", "TFJSOp", "Elementwise", "Convolution",
           "Dense", "PRelu", "same_padding", "build_op"]


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
_INPLACE_SCALAR = {"Maximum": torch.Tensor.clamp_min_,
                   "Minimum": torch.Tensor.clamp_max_, "Mul": torch.Tensor.mul_,
                   "Add": torch.Tensor.add_, "AddV2": torch.Tensor.add_,
                   "BiasAdd": torch.Tensor.add_}
_COMMUTATIVE = ("Add", "AddV2", "BiasAdd", "Mul", "Maximum", "Minimum")
_UNARY = {**_ACTIVATIONS, "Abs": torch.abs, "Square": torch.square,
          "Identity": lambda x: x, "Neg": torch.neg, "Sqrt": torch.sqrt,
          "Rsqrt": torch.rsqrt, "Exp": torch.exp}
_CONVOLUTIONS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "DepthwiseConv2d",
                 "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative")
_MATMULS = ("MatMul", "_FusedMatMul")
SUPPORTED_OPS = tuple(sorted(set(_BINARY) | set(_UNARY) | {*_CONVOLUTIONS, *_MATMULS,
    "Const", "Placeholder", "Pad", "PadV2", "Mean", "Sum", "Reshape", "Squeeze",
    "Softmax", "Prelu", "LeakyRelu"}))


# --------------------------------------------------------------------------------------
# Node attributes and layouts


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
    """TF axes (NHWC for rank 4, negative ones counted from the end) in this module's
    layout (NCHW for rank 4)."""
    axes = [int(a) % rank for a in np.atleast_1d(axes)]
    return [_NCHW_AXIS[a] for a in axes] if rank == 4 else axes


# --------------------------------------------------------------------------------------
# Ops


class TFJSOp(nn.Module):
    """One computing node of the graph (the base of every op module).

    Attributes: ``node_name`` (the TF.js node), ``op`` (its TF op) and ``inputs`` (the
    names of the nodes it reads, in order; constants excluded: the op holds them).
    ``forward`` takes one tensor per entry of ``inputs``.
    """

    def __init__(self, node: dict, inputs: list[str]):
        super().__init__()
        self.node_name, self.op, self.inputs = node["name"], node["op"], inputs

    def extra_repr(self):
        return f"{self.op} {self.node_name!r}"


class Elementwise(TFJSOp):
    """A unary op, or a binary op with at most one constant operand (``constant``, in
    TF's layout, at position ``constant_position``): tensors of any shape -> a tensor
    of their broadcast shape (a rank-4 tensor is NCHW, the constant is aligned to it).

    ``in_place`` (set by the graph per call) lets the op overwrite its first operand
    where ``can_work_in_place`` says that is possible; the values are the same.
    """

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


class Convolution(TFJSOp):
    """Conv2D / DepthwiseConv2dNative and their fused forms (bias add, then an
    activation): (N, C_in, H, W) -> (N, C_out, H', W'). ``weight`` is in PyTorch's
    layout (C_out, C_in / groups, kh, kw), ``bias`` (C_out,) or None, ``activation`` a
    module (identity when none is fused)."""

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


class Dense(TFJSOp):
    """MatMul / _FusedMatMul (bias add, then an activation): (N, D_in) -> (N, D_out).
    ``weight`` is (D_out, D_in) as F.linear takes it, ``bias`` (D_out,) or None."""

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
    """PReLU with learned ``slopes`` (TF's layout, e.g. (C,) or (1, 1, C)): x where
    x >= 0, else slopes * x; any shape in, the same shape out (rank 4: NCHW)."""

    def __init__(self, slopes):
        super().__init__()
        self.register_buffer("slopes", torch.from_numpy(np.array(slopes)))

    def forward(self, x):
        slopes = _as_rank(self.slopes, x.dim())
        return torch.where(x >= 0, x, x * slopes)


def _fused(node, extra, where):
    """The bias and activation of a fused op: (bias Parameter or None, module)."""
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
    """A function of one tensor as a module (a fused activation)."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class _Pad(TFJSOp):
    """Pad / PadV2: constant padding, ``paddings`` (rank, 2) in TF's axis order."""

    def __init__(self, node, inputs, paddings, value=0.0):
        super().__init__(node, inputs)
        self.paddings, self.value = np.asarray(paddings).reshape(-1, 2), float(value)

    def forward(self, x):
        paddings = self.paddings
        if x.dim() == 4:  # rows in NCHW order
            paddings = paddings[[0, 3, 1, 2]]
        flat = [int(v) for pair in paddings[::-1] for v in pair]
        return F.pad(x, flat, value=self.value)


class _Reduce(TFJSOp):
    """Mean / Sum over TF axes (e.g. NHWC (1, 2), H and W: (N, C, H, W) -> (N, C))."""

    def __init__(self, node, inputs, axes, function):
        super().__init__(node, inputs)
        self.axes = np.atleast_1d(axes).tolist()
        self.keep = _attr(node, "keep_dims", False)
        self.function = function

    def forward(self, x):
        return self.function(x, dim=_axes(self.axes, x.dim()), keepdim=self.keep)


class _Reshape(TFJSOp):
    """Reshape to TF's ``shape``, in TF's element order (NHWC for rank 4)."""

    def __init__(self, node, inputs, shape):
        super().__init__(node, inputs)
        self.shape = [int(s) for s in np.atleast_1d(shape)]

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(self.shape)
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y


class _Squeeze(TFJSOp):
    """Squeeze TF axes (all axes of size 1 when none are named)."""

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


class _Softmax(TFJSOp):
    """Softmax over TF's last axis (channels: axis 1 of an NCHW tensor)."""

    def forward(self, x):
        return torch.softmax(x, dim=1 if x.dim() == 4 else -1)


def build_op(node: dict, inputs: list, where: str) -> TFJSOp:
    """The module of one computing node of the graph JSON.

    ``inputs`` lists the node's inputs in order, each a node name (a computed input) or
    a numpy array (a constant, in TF's layout); ``where`` names the node in errors.
    Raises TFJSFormatError for an op not in ``SUPPORTED_OPS`` or inputs it cannot take.
    """
    op = node["op"]
    computed = [i for i in inputs if isinstance(i, str)]
    const = [i for i in inputs if not isinstance(i, str)]
    if op in _CONVOLUTIONS:
        if len(computed) != 1 or not isinstance(inputs[1], np.ndarray):
            raise TFJSFormatError(f"{where}: expected one computed input and constant "
                                  "filters")
        return Convolution(node, computed, inputs[1], inputs[2:],
                           depthwise="Depthwise" in op)
    if op in _MATMULS:
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
        return Elementwise(node, computed, PRelu(const[0]))
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
