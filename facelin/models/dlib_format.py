"""A reader for dlib's serialization of its face-recognition ResNet.

dlib writes a network as nested records: the loss layer, one version number per
layer wrapper from the outside in, the input layer, and then every computational layer
from the input to the output, each followed by dlib's bookkeeping for that layer (three
flags and three gradient/cache tensors). The reader turns this into a list of
`LayerRecord`s; any departure from the expected grammar raises `DlibFormatError` naming
what was being read and the byte offset.

Primitives (dlib ``serialize``): an integer is a control byte (low 4 bits: number of
value bytes; bit 0x80: negative) followed by the little-endian value bytes; a string is
an integer length and its bytes; a real number is a mantissa and an exponent integer
(value = m * 2**e); a tensor is a version integer (2), four dimensions and raw
little-endian float32 data; a flag is the character '0' or '1'.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DlibFormatError", "LayerRecord", "DlibNetworkFile", "read_dlib_network"]

LOSS_LAYER = "loss_metric_2"
INPUT_LAYER = "input_rgb_image_sized"


class DlibFormatError(ValueError):
    """The file is not a readable dlib network: truncated, corrupt or unexpected."""


@dataclass
class LayerRecord:
    """One computational layer as stored in the file.

    ``kind`` is dlib's layer name (``con_4``, ``affine_``, ``relu_``, ``add_prev_``,
    ``avg_pool_2``, ``max_pool_2``, ``fc_2``), ``offset`` the byte offset of the record,
    ``index`` its position among the layer records, ``params`` the raw parameter vector,
    a flat (P,) float32 array in dlib's order (None for layers without parameters), and
    ``fields`` the layer's integer settings (and its parameter views' 4-d shapes).
    """
    kind: str
    index: int
    offset: int
    params: np.ndarray | None = None
    fields: dict = field(default_factory=dict)


@dataclass
class DlibNetworkFile:
    """A parsed network file: the input layer's settings (``channel_means``, the (R, G,
    B) means subtracted from the pixels; ``input_size``, (rows, columns)), the loss
    layer's ``loss_margin`` and ``loss_distance_threshold``, and ``layers``, the
    `LayerRecord`s in forward order."""
    channel_means: tuple
    input_size: tuple
    loss_margin: float
    loss_distance_threshold: float
    layers: list


class _Reader:
    """dlib's serialization primitives, read from ``data`` at ``pos`` onwards."""

    def __init__(self, data: bytes, source: str):
        self.data, self.source, self.pos = data, source, 0

    def fail(self, message: str, at: int | None = None):
        at = self.pos if at is None else at
        raise DlibFormatError(f"{self.source}: {message} (at byte offset {at} of "
                              f"{len(self.data)})")

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            self.fail(f"file ends while reading {what}: needs {count} byte(s), "
                      f"{len(self.data) - self.pos} left; the file is truncated")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            self.fail(f"corrupt integer control byte 0x{control:02x} while reading "
                      f"{what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def expect_integer(self, expected: int, what: str) -> int:
        start = self.pos
        value = self.integer(what)
        if value != expected:
            self.fail(f"{what}: expected {expected}, found {value}", start)
        return value

    def string(self, what: str, max_length: int = 64) -> str:
        start = self.pos
        length = self.integer(f"the length of {what}")
        if not 0 <= length <= max_length:
            self.fail(f"implausible length {length} for {what}", start)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"{what} is not an ASCII name: {raw!r}", start)

    def real(self, what: str) -> float:
        mantissa = self.integer(f"the mantissa of {what}")
        exponent = self.integer(f"the exponent of {what}")
        return float(np.ldexp(float(mantissa), exponent))

    def flag(self, what: str) -> bool:
        start = self.pos
        value = self.take(1, what)
        if value not in (b"0", b"1"):
            self.fail(f"{what}: expected the flag character '0' or '1', found "
                      f"{value!r}", start)
        return value == b"1"

    def tensor(self, what: str) -> np.ndarray:
        self.expect_integer(2, f"the version of {what}")
        start = self.pos
        dims = [self.integer(f"dimension {axis} of {what}") for axis in range(4)]
        if any(d < 0 for d in dims):
            self.fail(f"negative dimension in {what}: {dims}", start)
        count = int(np.prod(dims))
        if count * 4 > len(self.data):
            self.fail(f"{what} claims {dims} = {count} values, more than the file "
                      "holds", start)
        raw = self.take(4 * count, f"the {count} float32 values of {what}")
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.isfinite(values).all():
            self.fail(f"NaN or Inf among the values of {what}", start)
        return values

    def alias(self, what: str) -> list:
        self.expect_integer(1, f"the version of {what}")
        return [self.integer(f"dimension {axis} of {what}") for axis in range(4)]


def _read_layer(reader: _Reader, kind: str, record: LayerRecord):
    what = f"layer record #{record.index} ({kind})"
    fields = record.fields
    if kind == "con_4":
        record.params = reader.tensor(f"the parameters of {what}")
        for name in ("num_filters", "kernel_rows", "kernel_cols", "stride_y",
                     "stride_x", "padding_y", "padding_x"):
            fields[name] = reader.integer(f"{name} of {what}")
        fields["filters_shape"] = reader.alias(f"the filter view of {what}")
        fields["biases_shape"] = reader.alias(f"the bias view of {what}")
        for name in ("learning_rate_multiplier", "weight_decay_multiplier",
                     "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
            reader.real(f"{name} of {what}")
    elif kind == "affine_":
        record.params = reader.tensor(f"the parameters of {what}")
        fields["gamma_shape"] = reader.alias(f"the gamma view of {what}")
        fields["beta_shape"] = reader.alias(f"the beta view of {what}")
        fields["mode"] = reader.integer(f"the mode of {what}")
    elif kind in ("avg_pool_2", "max_pool_2"):
        for name in ("window_rows", "window_cols", "stride_y", "stride_x", "padding_y",
                     "padding_x"):
            fields[name] = reader.integer(f"{name} of {what}")
    elif kind == "fc_2":
        fields["num_outputs"] = reader.integer(f"num_outputs of {what}")
        fields["num_inputs"] = reader.integer(f"num_inputs of {what}")
        record.params = reader.tensor(f"the parameters of {what}")
        fields["weights_shape"] = reader.alias(f"the weight view of {what}")
        fields["biases_shape"] = reader.alias(f"the bias view of {what}")
        for name in ("learning_rate_multiplier", "weight_decay_multiplier",
                     "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
            reader.real(f"{name} of {what}")
        fields["bias_mode"] = reader.integer(f"the bias mode of {what}")
    elif kind in ("relu_", "add_prev_"):
        pass
    else:
        reader.fail(f"unexpected layer {kind!r} as {what}; this reader knows con_4, "
                    "affine_, relu_, add_prev_, avg_pool_2, max_pool_2 and fc_2",
                    record.offset)


def read_dlib_network(path) -> DlibNetworkFile:
    """Parse a dlib ``loss_metric`` network file (e.g. the face-recognition ResNet) as a
    `DlibNetworkFile`. Raises DlibFormatError, naming what was being read and the byte
    offset, for a truncated, corrupt or unexpected file."""
    path = Path(path)
    data = path.read_bytes()
    reader = _Reader(data, str(path))
    reader.expect_integer(1, "the version of the loss layer")
    loss = reader.string("the loss layer name")
    if loss != LOSS_LAYER:
        reader.fail(f"unexpected loss layer {loss!r}; expected {LOSS_LAYER!r}")
    margin = reader.real("the loss margin")
    threshold = reader.real("the loss distance threshold")
    # One version per layer wrapper, from the output inwards: 1 for tag and skip
    # wrappers, 2 for a computational layer, and 3 for the innermost, which holds the
    # input layer.
    n_computational = 0
    while True:
        start = reader.pos
        version = reader.integer("a layer wrapper version")
        if version == 3:
            break
        if version not in (1, 2):
            reader.fail(f"unexpected layer wrapper version {version}", start)
        n_computational += version == 2
    name = reader.string("the input layer name")
    if name != INPUT_LAYER:
        reader.fail(f"unexpected input layer {name!r}; expected {INPUT_LAYER!r}")
    means = tuple(reader.real(f"the {c} channel mean")
                  for c in ("red", "green", "blue"))
    size = (reader.integer("the input rows"), reader.integer("the input columns"))
    layers = []
    for index in range(n_computational + 1):
        offset = reader.pos
        kind = reader.string(f"the name of layer record #{index}")
        record = LayerRecord(kind, index, offset)
        _read_layer(reader, kind, record)
        what = f"the state of layer record #{index} ({kind})"
        for flag in ("setup", "gradient stale", "gradient disabled"):
            reader.flag(f"the {flag} flag in {what}")
        for tensor in ("input gradient", "cached output", "parameter gradient"):
            reader.tensor(f"the {tensor} in {what}")
        if index == 0:
            reader.expect_integer(1, "the sample expansion factor")
        layers.append(record)
    if reader.pos != len(data):
        reader.fail(f"{len(data) - reader.pos} unexpected byte(s) after the last layer")
    return DlibNetworkFile(means, size, margin, threshold, layers)
