"""Stimuli and recorded responses shared by the book's claim chapters, cached on disk.

Each claim chapter needs the same ingredients: Chang & Tsao's stimuli (faces drawn in the
face space and cut as dlib chips) and the responses of each face CNN, its untrained twin
and a pixel control to them. Computing them takes a minute or two, so they are cached
under :func:`facelin.cache.cache_dir` in files whose names hash everything that
produced them (face space, number of faces, seed, network, layers, units, format
version): a chapter run on its own computes what it lacks, and the next one reuses it.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import __version__, cache
from .facespace import FaceSpace, default_space

__all__ = [
    "NETWORKS", "INPUT_BORDER", "Stimuli", "stimuli", "Population", "population",
    "layer_responses", "network", "inputs", "analysis_layers", "deep_layers",
    "descriptor_layer", "block_outputs", "cached", "space_fingerprint", "to_chips",
    "pixel_features", "shuffled",
]

CACHE_FORMAT = 2
# The face CNNs the chapters study, each with its untrained control (pretrained=False);
# see facelin.models.networks.
NETWORKS = ("dlib-resnet", "mobileface", "faceres")


def cached(kind: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()``'s tensors, saved once in the cache under a name that hashes
    ``key`` (with this module's format version): see `facelin.cache.tensors`."""
    return cache.tensors(kind, {"format": CACHE_FORMAT, "facelin": __version__, **key},
                         compute)


def space_fingerprint(space: FaceSpace) -> str:
    """A hash of a fitted space's components and eigenvalues."""
    digest = hashlib.sha1()
    for array in (space.mean_shape_, space.shape_components_, space.eigenvalues_,
                  space.mean_texture_, space.appearance_components_):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def to_chips(images: np.ndarray) -> torch.Tensor:
    """Images in [0, 1] ((N, S, S) grey or (N, S, S, 3)) as (N, 3, S, S) uint8 chips."""
    pixels = torch.from_numpy(np.asarray(images)).mul(255).round().clamp(0, 255).to(torch.uint8)
    if pixels.dim() == 3:
        return pixels[:, None].expand(-1, 3, -1, -1).contiguous()
    return pixels.permute(0, 3, 1, 2).contiguous()


@dataclass
class Stimuli:
    """Chang & Tsao's stimuli: ``params`` (n, 50) as drawn, ``normalized`` (their analysis
    normalisation of those), ``chips`` (n, 3, 150, 150) uint8 dlib chips (the synthesised
    images), ``landmarks`` (n, 68, 2) their exact landmarks in chip pixels, and the space."""

    params: np.ndarray
    normalized: np.ndarray
    chips: torch.Tensor
    landmarks: np.ndarray
    space: FaceSpace
    seed: int

    def __len__(self):
        return len(self.params)


def stimuli(n_faces: int = 2000, seed: int = 0, space: FaceSpace | None = None,
            progress: bool = True) -> Stimuli:
    """``n_faces`` faces drawn from ``space`` (default: the embedded LFW-subset space), each
    dimension from N(0, sqrt(eigenvalue)), synthesised as 150x150 dlib chips. The chips
    are the synthesised images themselves: :meth:`FaceSpace.synthesize` places each face
    where dlib's alignment (``get_face_chip`` with padding 0.25) puts it."""
    space = default_space() if space is None else space
    params = space.sample(n_faces, seed)

    def compute():
        images, landmarks = space.synthesize(params, size=150, progress=progress)
        return {"params": torch.from_numpy(params), "chips": to_chips(images),
                "landmarks": torch.from_numpy(landmarks)}

    data = cached("stimuli", {"space": space_fingerprint(space), "n": n_faces, "seed": seed},
                   compute)
    params = data["params"].numpy()
    return Stimuli(params=params, normalized=space.normalize(params), chips=data["chips"],
                   landmarks=data["landmarks"].numpy(), space=space, seed=seed)


# How the TF.js networks' chips are filled beyond the stimuli's dlib chips (part of the
# populations' cache key).
INPUT_BORDER = "replicate"


def _check_network(name: str) -> None:
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {name!r}")


def network(name: str = "dlib-resnet", pretrained: bool = True):
    """The face CNN ``name`` (one of :data:`NETWORKS`) with its trained weights, or with
    ``pretrained=False`` the same architecture with seeded random weights (the control)."""
    from .models import load_network

    _check_network(name)
    return load_network(name, pretrained=pretrained)


@functools.lru_cache(maxsize=8)
def _model(name: str, pretrained: bool):
    """The network, loaded once per process (for this module's own use)."""
    return network(name, pretrained)


def inputs(chips, landmarks, network_name: str = "dlib-resnet") -> torch.Tensor:
    """The input chips of ``network_name`` (N, 3, S, S) float32, 0..255, cut from images
    (here dlib chips, (N, 3, 150, 150) uint8) with their dlib 68-point ``landmarks``
    (N, 68, 2). The stimuli's chips are dlib's own alignment, so dlib's network takes them
    as they are; the other networks' chips are cut from them by the network's own
    alignment (``model.chips``: the ArcFace five-point template), which reaches beyond
    the dlib chip: the pixels outside it take the nearest edge pixel, the stimuli's
    uniform background (``border="replicate"``)."""
    _check_network(network_name)
    chips = torch.as_tensor(chips)
    if chips.dim() != 4 or chips.shape[1] != 3:
        raise ValueError(f"chips: expected (N, 3, S, S), got {tuple(chips.shape)}")
    if np.asarray(landmarks).shape != (len(chips), 68, 2):
        raise ValueError(f"landmarks: expected ({len(chips)}, 68, 2), "
                         f"got {np.asarray(landmarks).shape}")
    if network_name == "dlib-resnet":
        return chips.float()
    return _model(network_name, True).chips(chips, landmarks, border=INPUT_BORDER)


def _input_batches(chips, landmarks, network_name: str, batch_size: int = 50):
    """`inputs` cut batch by batch, so that only one batch of a network's (larger,
    float) chips is held at a time."""
    landmarks = np.asarray(landmarks)
    for start in range(0, len(chips), batch_size):
        stop = start + batch_size
        yield inputs(chips[start:stop], landmarks[start:stop], network_name)


def block_outputs(model) -> list[str]:
    """The output (after the final ReLU) of every residual block of dlib's ResNet, in
    forward order."""
    return [n for n in model.layer_names() if n.startswith("stage") and n.endswith(".relu")
            and n.count(".") == 2]


def analysis_layers(network_name: str = "dlib-resnet") -> list[str]:
    """The layers the claim chapters study, in forward order: for dlib's ResNet the
    stem, every residual block's output, the 256-d pooled layer and the 128-d
    descriptor; for the others an early layer, block outputs at every resolution, the
    pooled layer and the descriptor (``model.analysis_layers()``)."""
    _check_network(network_name)
    return _model(network_name, False).analysis_layers()


def deep_layers(network_name: str = "dlib-resnet") -> list[str]:
    """The deep layers, where the claims are judged: the last block output(s), the
    pooled layer and the descriptor."""
    _check_network(network_name)
    return _model(network_name, False).deep_layers()


def descriptor_layer(network_name: str = "dlib-resnet") -> str:
    """The layer whose output is the network's face descriptor."""
    _check_network(network_name)
    return _model(network_name, False).descriptor_layer


def _unit_spec(model, layers, units_per_layer: int) -> dict:
    """Which units of each layer :func:`population` records: all of a small layer, a
    seeded sample of ``units_per_layer`` units of a larger one."""
    counts = {row["stage"]: row["units"] for row in model.stage_table()}
    unknown = [name for name in layers if name not in counts]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; see model.layer_names()")
    return {name: "all" if counts[name] <= units_per_layer else units_per_layer
            for name in layers}


@dataclass
class Population:
    """Responses (n faces x units, float32) of the units of several layers of one network;
    ``layers`` maps each layer to its ``(start, stop)`` columns."""

    values: torch.Tensor
    layers: dict
    network: str
    pretrained: bool

    def layer(self, name: str) -> torch.Tensor:
        if name not in self.layers:
            raise KeyError(f"no layer {name!r}; recorded: {list(self.layers)}")
        start, stop = self.layers[name]
        return self.values[:, start:stop]


def population(stim: Stimuli, network: str = "dlib-resnet", pretrained: bool = True,
               units_per_layer: int = 512, layers: list[str] | None = None, seed: int = 0,
               progress: bool = True) -> Population:
    """Responses of ``network`` (trained, or its untrained control) to the stimuli: every
    unit of layers with at most ``units_per_layer`` units (the pooled layer, the
    descriptor), and ``units_per_layer`` units sampled with ``seed`` from each larger
    layer (default layers: :func:`analysis_layers`)."""
    from . import extract

    _check_network(network)
    model = _model(network, pretrained)
    layers = analysis_layers(network) if layers is None else list(layers)
    spec = _unit_spec(model, layers, units_per_layer)

    def compute():
        recorded = extract.record(model, _input_batches(stim.chips, stim.landmarks,
                                                        network), spec, seed=seed,
                                  progress=progress)
        bounds = {k: torch.tensor([s.start, s.stop]) for k, s in recorded.layers.items()}
        return {"values": recorded.values, "bounds": bounds}

    key = {"stimuli": space_fingerprint(stim.space), "n": len(stim), "stim_seed": stim.seed,
           "network": network, "pretrained": pretrained, "spec": spec, "seed": seed}
    if network != "dlib-resnet":
        key["border"] = INPUT_BORDER
    data = cached("responses", key, compute)
    layers_out = {k: tuple(int(v) for v in b) for k, b in data["bounds"].items()}
    return Population(values=data["values"], layers=layers_out, network=network,
                      pretrained=pretrained)


def layer_responses(chips, landmarks, layer: str, network: str = "dlib-resnet",
                    pretrained: bool = True, units_per_layer: int = 512, seed: int = 0
                    ) -> torch.Tensor:
    """Responses of the same units of ``layer`` that :func:`population` records (same
    ``units_per_layer`` and ``seed``) to new faces: dlib chips (N, 3, 150, 150) with their
    landmarks (N, 68, 2). Column j is the population's column j of that layer. Not
    cached (for a few new faces, such as engineered ones)."""
    from . import extract

    _check_network(network)
    model = _model(network, pretrained)
    spec = _unit_spec(model, [layer], units_per_layer)
    return extract.record(model, _input_batches(chips, landmarks, network), spec,
                          seed=seed, progress=False).values


def pixel_features(chips: torch.Tensor, n_components: int, seed: int = 0) -> torch.Tensor:
    """The raw-pixel control: grey chips reduced by PCA to ``n_components`` features."""
    grey = chips.double().mean(1).flatten(1)
    centred = grey - grey.mean(0)
    if n_components > min(centred.shape):
        raise ValueError(f"n_components must be at most {min(centred.shape)}")
    torch.manual_seed(seed)
    u, s, _ = torch.svd_lowrank(centred, q=n_components + 10, niter=4)
    return (u[:, :n_components] * s[:n_components]).float()


def shuffled(params: np.ndarray, seed: int = 0) -> np.ndarray:
    """The null control: the parameters with their rows permuted, so each face's responses
    are paired with another face's parameters."""
    return params[np.random.default_rng(seed).permutation(len(params))]
