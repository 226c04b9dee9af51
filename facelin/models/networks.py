"""The face CNNs studied in the book, each with its alignment and input convention.

- ``dlib-resnet``: dlib's ``dlib_face_recognition_resnet_model_v1`` (ResNet-29);
  150 px dlib chips; 128-d descriptor (layer ``descriptor``).
- ``mobileface``: becauseofAI's MobileFace (MXNet, converted to TF.js); 112 px chips
  on the ArcFace template; 256-d descriptor (``batchnorm0_add_1``).
- ``faceres``: HSE-asavchenko's HSE_FaceRec_tf (MobileNet trained on VGGFace2, also
  age and gender heads; TF.js); 224 px chips on the ArcFace template scaled by 2;
  1024-d descriptor, the global average pool (``global_pooling_Mean``).

`load_network` returns a ``torch.nn.Module`` that takes (N, 3, S, S) RGB chips with
values 0..255 and returns the descriptor. ``model.chips(images, landmarks)`` cuts those
chips from images and dlib's 68 landmarks: dlib's own alignment for dlib's network, the
ArcFace five-point template (`facelin.faces.template_chips`) for the other two. The
TF.js graphs carry their own input scaling: MobileFace's first nodes compute
``(x - 127.5) / 128``; faceres takes the pixel values as they are (scaling them to
0..1 breaks it).

The untrained control (``pretrained=False``) is the same architecture with seeded random
weights: every convolution and dense weight Glorot-uniform (bound
``sqrt(6 / (fan_in + fan_out))``, fans counted per group over the kernel, as dlib
initialises its own networks), every bias 0, and in the TF.js graphs every folded batch
normalization the identity (scales 1, shifts 0) and every PReLU slope 0.25.
"""
from __future__ import annotations

import numpy as np
import torch

from .dlib_resnet import DlibResNet, glorot_uniform_, load_dlib_resnet
from .npm import human_model_path
from .tfjs import TFJSGraph, load_graph
from .tfjs_ops import Convolution, Dense, Elementwise, PRelu

__all__ = ["NETWORK_NAMES", "FaceNetwork", "DlibNetwork", "TFJSNetwork", "load_network",
           "mirror_identification", "mirror_distances", "mirror_verdict",
           "architecture", "block_table", "layer_table", "MIRROR_RANK1",
           "PRELU_INITIAL_SLOPE"]

NETWORK_NAMES = ("dlib-resnet", "mobileface", "faceres")
PRELU_INITIAL_SLOPE = 0.25
# The mirror check passes at this rank-1 rate (see `mirror_verdict`).
MIRROR_RANK1 = 0.95

# TF.js node names: the descriptor, the layers studied (forward order), the deep ones.
_MOBILEFACE_STAGES = ["add", "add_4", "add_8", "add_12", "add_13", "add_16"]
_FACERES_BLOCKS = [f"conv_pw_{b}_relu/clip_by_value"
                   for b in (1, 3, 5, 7, 9, 11, 12, 13)]
_TFJS = {
    "mobileface": {
        "size": 112, "descriptor": "batchnorm0/add_1",
        # the stem's PReLU, each stage's output (and stage 4's first unit), descriptor
        "analysis": _MOBILEFACE_STAGES + ["batchnorm0/add_1"],
        "deep": ["add_12", "add_16", "batchnorm0/add_1"],
    },
    "faceres": {
        "size": 224, "descriptor": "global_pooling/Mean",
        # the stem's ReLU6, pointwise blocks at every resolution, the pooled descriptor
        "analysis": ["conv1_relu/clip_by_value", *_FACERES_BLOCKS,
                     "global_pooling/Mean"],
        "deep": ["conv_pw_12_relu/clip_by_value", "conv_pw_13_relu/clip_by_value",
                 "global_pooling/Mean"],
    },
}


def _uint8_images(images):
    """Images as the aligners take them: uint8, (H, W[, 3]) each. Accepts float images
    in [0, 1] (rounded to whole grey levels) and batches in NCHW layout ((N, 3, H, W)
    tensors such as chips)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
            images = images.transpose(0, 2, 3, 1)
        return _to_uint8(images, "images")
    if isinstance(images, (list, tuple)):
        return [_to_uint8(np.asarray(image), f"images[{i}]")
                for i, image in enumerate(images)]
    raise TypeError(f"images: expected a list or a batch array, got {type(images)}")


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 or float pixels, got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: NaN or Inf pixels")
    if array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: float pixels must lie in [0, 1], got "
                         f"[{array.min():.3g}, {array.max():.3g}]")
    return np.round(array * 255).astype(np.uint8)


class FaceNetwork:
    """What every face network knows besides its forward pass (a mix-in).

    Attributes: ``name``, ``pretrained``, ``input_size`` (the chip side S),
    ``descriptor_layer`` (the layer whose output is the descriptor).
    """

    name: str
    pretrained: bool
    input_size: int
    descriptor_layer: str
    _analysis: list
    _deep: list

    def chips(self, images, landmarks, border: str = "zero") -> torch.Tensor:
        """(N, 3, S, S) float32 RGB chips, 0..255, aligned for this network, from images
        (uint8 or float in [0, 1], grey or RGB, a list or a batch, NHWC or NCHW) and
        dlib's 68 landmarks (N, 68, 2) in the images' pixel coordinates. ``border``:
        what chip pixels outside the image take, ``"zero"`` or ``"replicate"`` (see
        `facelin.faces.template_chips`; dlib's alignment fills them with zeros)."""
        from .. import faces

        images = _uint8_images(images)
        if self.name == "dlib-resnet":
            if border != "zero":
                raise ValueError("border: dlib's alignment fills outside pixels with "
                                 "zeros ('zero')")
            return faces.face_chips(images, landmarks, size=self.input_size,
                                    padding=0.25)
        return faces.template_chips(images, landmarks, size=self.input_size,
                                    border=border)

    def descriptors(self, chips: torch.Tensor, batch_size: int = 25) -> torch.Tensor:
        """The descriptors (N, D) of chips (N, 3, S, S), computed without gradients in
        batches (small batches keep the large early maps in cache)."""
        with torch.no_grad():
            return torch.cat([self(chips[i:i + batch_size])
                              for i in range(0, len(chips), batch_size)])

    def analysis_layers(self) -> list[str]:
        """The layers studied, in forward order: from early to the last block's output,
        the pooled layer and the descriptor."""
        return list(self._analysis)

    def deep_layers(self) -> list[str]:
        """The deep layers: last block output(s), the pooled layer, the descriptor."""
        return list(self._deep)

    def _check_chips(self, chips) -> torch.Tensor:
        size = self.input_size
        if not isinstance(chips, torch.Tensor) or chips.dim() != 4 or \
                tuple(chips.shape[1:]) != (3, size, size):
            raise ValueError(f"chips: expected a tensor of shape (N, 3, {size}, "
                             f"{size}), got {tuple(getattr(chips, 'shape', ()))}")
        if not chips.is_floating_point():
            chips = chips.float()
        if not torch.isfinite(chips).all():
            raise ValueError("chips: NaN or Inf in the input")
        return chips


class DlibNetwork(FaceNetwork, DlibResNet):
    """dlib's ResNet with the `FaceNetwork` interface (`DlibResNet`'s layer names)."""

    def forward(self, chips, stop_at=None):
        return DlibResNet.forward(self, self._check_chips(chips), stop_at)


class TFJSNetwork(FaceNetwork, TFJSGraph):
    """A TF.js face network: chips (N, 3, S, S), 0..255 -> the descriptor. Layer names
    are the graph's (`TFJSGraph`)."""

    def forward(self, chips):
        chips = self._check_chips(chips)
        return TFJSGraph.forward(self, chips.to(self._dtype()))

    def _dtype(self):
        return next(self.parameters()).dtype


def _initialise_untrained(graph: TFJSGraph, seed: int):
    """The untrained control's weights (see the module docstring), drawn in forward
    order from ``seed``. A per-channel constant operand downstream of a weighted layer
    is a folded batch normalization (Mul: scale, Add/Sub: shift) or, when it multiplies
    a Minimum (PReLU as max(0, x) + slope * min(0, x)), a PReLU slope."""
    generator = torch.Generator().manual_seed(seed)
    downstream, producers = set(), {}
    with torch.no_grad():
        for name in graph.layer_names():
            op = graph.get_submodule(name)
            producers[op.node_name] = op.op
            learned = isinstance(op, (Convolution, Dense)) or any(
                i in downstream for i in op.inputs)
            if learned:
                downstream.add(op.node_name)
            if isinstance(op, (Convolution, Dense)):
                glorot_uniform_(op.weight, generator, getattr(op, "groups", 1))
                if op.bias is not None:
                    op.bias.zero_()
                if isinstance(op.activation, PRelu):
                    op.activation.slopes.fill_(PRELU_INITIAL_SLOPE)
            elif isinstance(op, Elementwise) and learned and op.constant is not None \
                    and op.constant.numel() > 1:
                if op.op == "Mul":
                    slope = any(producers.get(i) == "Minimum" for i in op.inputs)
                    op.constant.fill_(PRELU_INITIAL_SLOPE if slope else 1.0)
                elif op.op in ("Add", "AddV2", "BiasAdd", "Sub"):
                    op.constant.zero_()
            elif isinstance(op, Elementwise) and isinstance(op.function, PRelu):
                op.function.slopes.fill_(PRELU_INITIAL_SLOPE)


def load_network(name: str, pretrained: bool = True, seed: int = 0) -> FaceNetwork:
    """One of the face CNNs (`NETWORK_NAMES`), float32, in eval mode, without gradients.

    ``pretrained=False`` gives the untrained control: the same architecture with weights
    drawn from ``seed`` (see the module docstring). The TF.js networks' files are
    fetched on first use (`facelin.models.npm.human_model_path`).
    """
    if name not in NETWORK_NAMES:
        raise ValueError(f"name must be one of {NETWORK_NAMES}, got {name!r}")
    if name == "dlib-resnet":
        model = load_dlib_resnet(pretrained=pretrained, seed=seed)
        # the same modules and weights, with the FaceNetwork interface
        model.__class__ = DlibNetwork
        model.input_size, model.descriptor_layer = 150, "descriptor"
        blocks = [n for n in model.layer_names() if n.startswith("stage")
                  and n.endswith(".relu") and n.count(".") == 2]
        model._analysis = ["stem.max_pool"] + blocks + ["pool", "descriptor"]
        model._deep = model._analysis[-3:]
    else:
        spec = _TFJS[name]
        model = load_graph(human_model_path(name), spec["descriptor"], cls=TFJSNetwork)
        if not pretrained:
            _initialise_untrained(model, seed)
        model.input_size = spec["size"]
        model.descriptor_layer = model.module_name(spec["descriptor"])
        model._analysis = [model.module_name(n) for n in spec["analysis"]]
        model._deep = [model.module_name(n) for n in spec["deep"]]
    model.name, model.pretrained = name, pretrained
    return model.eval().requires_grad_(False)


def architecture(model) -> dict:
    """A face network in numbers: input side, named layers, convolutions (dense and
    depthwise), dense layers, parameters and descriptor size."""
    kinds = [row["kind"] for row in model.stage_table()]
    convolutions = sum(k in ("Conv2d", "Conv2D", "_FusedConv2D") for k in kinds)
    depthwise = sum("Depthwise" in k for k in kinds)
    dense = sum(k in ("Linear", "MatMul", "_FusedMatMul") for k in kinds)
    units = {row["stage"]: row["units"] for row in model.stage_table()}
    return {"input": f"{model.input_size}x{model.input_size}", "layers": len(kinds),
            "convolutions": convolutions, "depthwise convolutions": depthwise,
            "dense layers": dense,
            "parameters": sum(p.numel() for p in model.parameters()),
            "descriptor": units[model.descriptor_layer]}


def block_table(model):
    """dlib's ResNet block by block: a DataFrame indexed by block (``stem``,
    ``stage1.block1``, ...), with the number of named ``stages`` in the block and the
    ``output_shape`` and ``units`` of its last stage."""
    import pandas as pd

    stages = pd.DataFrame(model.stage_table())
    stages["block"] = stages["stage"].str.rsplit(".", n=1).str[0]
    table = stages.groupby("block", sort=False).agg(
        stages=("stage", "size"), output_shape=("output shape", "last"),
        units=("units", "last"))
    table["output_shape"] = table["output_shape"].astype(str)
    return table


def layer_table(model):
    """The layers a network's analyses study (``analysis_layers()``, in order): a
    DataFrame indexed by layer name with the ``kind`` of op that computes each, its
    ``output shape`` and ``units``."""
    import pandas as pd

    table = pd.DataFrame(model.stage_table()).set_index("stage")
    return table.loc[model.analysis_layers(), ["kind", "output shape", "units"]]


def mirror_distances(descriptors, mirrored) -> np.ndarray:
    """Cosine distances (N, N) from each mirrored face (rows) to each face (columns),
    both centred on the mean descriptor of the N faces (descriptors can carry a large
    constant that would otherwise dominate the cosine). The diagonal holds each face's
    distance to its own mirror image."""
    from scipy.spatial.distance import cdist

    descriptors = np.asarray(descriptors, dtype=np.float64)
    mirrored = np.asarray(mirrored, dtype=np.float64)
    if descriptors.ndim != 2 or mirrored.shape != descriptors.shape \
            or len(descriptors) < 2:
        raise ValueError(f"descriptors and mirrored: expected two (N, D) arrays with "
                         f"N >= 2, got {descriptors.shape} and {mirrored.shape}")
    if not (np.isfinite(descriptors).all() and np.isfinite(mirrored).all()):
        raise ValueError("descriptors: NaN or Inf")
    mean = descriptors.mean(axis=0)
    return cdist(mirrored - mean, descriptors - mean, "cosine")


def mirror_identification(descriptors, mirrored) -> np.ndarray:
    """Which faces are identified from their mirror image: ``descriptors`` (N, D) of N
    faces and ``mirrored`` (N, D) of the same faces flipped left to right; mirrored face
    i is identified when, of the N faces, face i is the nearest to it
    (`mirror_distances`). Returns an (N,) bool array; its mean is the rank-1
    identification rate."""
    distances = mirror_distances(descriptors, mirrored)
    return distances.argmin(axis=1) == np.arange(len(distances))


def mirror_verdict(trained_rate: float, control_rate: float,
                   threshold: float = MIRROR_RANK1) -> str:
    """The mirror check of a network's alignment and input convention: ``"passes"``
    when the trained network identifies at least ``threshold`` of the faces from their
    mirror image and its untrained control does not (so the check can fail);
    ``"fails"`` when the trained network falls short; ``"cannot tell"`` when the
    control passes too."""
    for name, rate in (("trained_rate", trained_rate), ("control_rate", control_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name}: a rate in [0, 1], got {rate!r}")
    if control_rate >= threshold:
        return "cannot tell"
    return "passes" if trained_rate >= threshold else "fails"
