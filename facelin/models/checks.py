"""Checks of the face networks: agreement with their reference implementations (dlib's
own network, TensorFlow.js) and mirror identification, a check of each network's
alignment and input convention; with the tables and figure the book shows of them.

Networks are `facelin.models.load_network` models (``chips``, ``descriptors``,
``analysis_layers``); faces are images with dlib's 68 landmarks (N, 68, 2).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .networks import mirror_distances
from .tfjs import TOLERANCE, relative_difference, tfjs_reference

__all__ = ["COMPARED_NODES", "dlib_agreement", "node_outputs", "tfjs_agreement",
           "agreement_verdict", "mirror_check", "mirror_table", "mirror_separation",
           "mirror_distance_figure", "layer_activity", "activity_table",
           "check_findings"]

# The TF.js nodes compared with TensorFlow.js: the first convolution, a middle stage,
# the last stage and the descriptor.
COMPARED_NODES = {
    "mobileface": ["conv1", "add_8", "add_16", "batchnorm0/add_1"],
    "faceres": ["conv1_relu/clip_by_value", "conv_pw_5_relu/clip_by_value",
                "conv_pw_13_relu/clip_by_value", "global_pooling/Mean"],
}


def dlib_agreement(images, landmarks, model=None) -> dict:
    """How far the port of dlib's network is from dlib itself on ``images`` (a list of
    uint8 (H, W, 3) or (H, W) arrays) with their ``landmarks`` (N, 68, 2).

    Returns ``faces_compared``; ``chip_mean_abs_diff`` (grey levels, facelin's chips vs
    dlib's ``get_face_chip``); ``descriptor_max_abs_diff`` and
    ``descriptor_max_abs_diff_float64`` (the float32 and float64 ports' descriptors vs
    dlib's ``compute_face_descriptor``); ``max_relative_difference`` (the float32
    difference over the largest reference magnitude). ``model``: the float32 network
    (default: loaded).
    """
    from .. import faces
    from .dlib_resnet import dlib_reference_descriptors
    from .networks import load_network

    model = load_network("dlib-resnet") if model is None else model
    chips = faces.face_chips(images, landmarks)
    dlib_chips = faces.dlib_reference_chips(images, landmarks)
    reference = dlib_reference_descriptors(images, landmarks)
    with torch.no_grad():
        difference32 = np.abs(model(chips).numpy() - reference).max()
        float64_model = load_network("dlib-resnet").double()
        difference64 = np.abs(float64_model(chips.double()).numpy() - reference).max()
    return {"faces_compared": len(images),
            "chip_mean_abs_diff": (chips - dlib_chips).abs().mean().item(),
            "descriptor_max_abs_diff": float(difference32),
            "descriptor_max_abs_diff_float64": float(difference64),
            "max_relative_difference": float(difference32 / np.abs(reference).max())}


def node_outputs(model, chips: torch.Tensor, nodes) -> dict:
    """``{node: array}``: the outputs of a TF.js network's ``nodes`` (TF.js node names)
    for ``chips`` (N, 3, S, S), recorded with forward hooks in one forward pass."""
    recorded = {}
    hooks = [model.get_submodule(model.module_name(node)).register_forward_hook(
        lambda m, i, out, node=node: recorded.__setitem__(node, out.numpy()))
        for node in nodes]
    try:
        with torch.no_grad():
            model(chips)
    finally:
        for hook in hooks:
            hook.remove()
    return recorded


def tfjs_agreement(model, images, landmarks, nodes=None) -> dict:
    """``{node: relative max difference}`` between the port and TensorFlow.js
    (`facelin.models.tfjs.tfjs_reference`, run under node) for each compared node
    (default `COMPARED_NODES` of the network), on ``images`` aligned for the network."""
    nodes = COMPARED_NODES[model.name] if nodes is None else list(nodes)
    chips = model.chips(images, landmarks)
    reference = tfjs_reference(model.source, chips.numpy(), nodes)
    recorded = node_outputs(model, chips, nodes)
    return {node: relative_difference(recorded[node], reference[node])
            for node in nodes}


def agreement_verdict(differences: dict, tolerance: float = TOLERANCE) -> str:
    """``"reproduces TF.js"`` when every node's relative difference (`tfjs_agreement`)
    is at most ``tolerance``, else ``"differs"``."""
    values = np.asarray(list(differences.values()), dtype=float)
    if values.size == 0 or not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"differences: expected finite non-negative values, got "
                         f"{differences!r}")
    return "reproduces TF.js" if values.max() <= tolerance else "differs"


def _with_controls(networks, controls, name):
    return (("trained", networks[name]), ("untrained", controls[name]))


def mirror_check(model, images, landmarks) -> tuple[np.ndarray, np.ndarray]:
    """Mirror identification of N faces: ``(found, distances)``, ``found`` (N,) bool
    (mirrored face i's nearest face is face i) and ``distances`` (N, N) from each
    mirrored face (rows) to each face (`facelin.models.networks.mirror_distances`)."""
    chips = model.chips(images, landmarks)
    distances = mirror_distances(model.descriptors(chips),
                                 model.descriptors(chips.flip(-1)))
    found = distances.argmin(axis=1) == np.arange(len(distances))
    return found, distances


def mirror_table(networks: dict, controls: dict, images, landmarks):
    """The mirror check of each network and its untrained control.

    Returns ``(table, distances)``: ``table`` indexed by (network, weights), weights
    ``"trained"`` or ``"untrained"``, with columns ``rank-1`` and its 95% Wilson
    interval ``low``, ``high`` over the faces; ``distances`` maps (network, weights)
    to the (N, N) distances of `mirror_check`.
    """
    from scipy import stats

    rows, distance_sets = [], {}
    for name in networks:
        for label, model in _with_controls(networks, controls, name):
            found, distances = mirror_check(model, images, landmarks)
            interval = stats.binomtest(int(found.sum()), len(found)).proportion_ci(
                method="wilson")
            rows.append({"network": name, "weights": label, "rank-1": found.mean(),
                         "low": interval.low, "high": interval.high})
            distance_sets[name, label] = distances
    return pd.DataFrame(rows).set_index(["network", "weights"]), distance_sets


def _same_and_different(distances):
    distances = np.asarray(distances, dtype=float)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1] \
            or len(distances) < 2:
        raise ValueError(f"distances: expected an (N, N) array with N >= 2, got "
                         f"{distances.shape}")
    return np.diag(distances), distances[~np.eye(len(distances), dtype=bool)]


def mirror_separation(distances) -> float:
    """Median distance of a face to its own mirror image (the diagonal of the (N, N)
    ``distances`` of `mirror_check`) over the median distance to the other faces."""
    same, different = _same_and_different(distances)
    return float(np.median(same) / np.median(different))


def mirror_distance_figure(distance_sets: dict, names):
    """One panel per network in ``names``: histograms of each face's distance to its
    own mirror image and of each mirrored face's distance to the other faces, trained
    (solid) and untrained (dotted), from `mirror_table`'s distances. Returns the
    figure."""
    import matplotlib.pyplot as plt

    names = list(names)
    fig, axes = plt.subplots(1, len(names), figsize=(13 * len(names) / 3, 3.2),
                             squeeze=False)
    for ax, name in zip(axes[0], names):
        for label, style in (("trained", "-"), ("untrained", ":")):
            same, different = _same_and_different(distance_sets[name, label])
            bins = np.linspace(0, max(different.max(), same.max()), 40)
            ax.hist(different, bins, density=True, histtype="step", linestyle=style,
                    color="grey", label=f"different faces ({label})")
            ax.hist(same, bins, density=True, histtype="step", linestyle=style,
                    color="C3", label=f"same face mirrored ({label})")
        ax.set_title(name)
        ax.set_xlabel("cosine distance (centred)")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def layer_activity(model, images, landmarks) -> list[float]:
    """Mean absolute response of each of the network's studied layers
    (``analysis_layers()``, in order) to ``images`` aligned for it."""
    chips = model.chips(images, landmarks)
    means = {}
    layers = model.analysis_layers()
    hooks = [model.get_submodule(layer).register_forward_hook(
        lambda m, i, out, layer=layer: means.__setitem__(layer, out.abs().mean().item())
    ) for layer in layers]
    try:
        model.descriptors(chips)
    finally:
        for hook in hooks:
            hook.remove()
    return [means[layer] for layer in layers]


def activity_table(networks: dict, controls: dict, images, landmarks) -> pd.DataFrame:
    """`layer_activity` of each network (trained and untrained control): columns
    (network, weights), rows ``"layer 1"``... (NaN below a network's last layer)."""
    table = pd.DataFrame({
        (name, label): pd.Series(layer_activity(model, images, landmarks))
        for name in networks
        for label, model in _with_controls(networks, controls, name)})
    return table.rename(index=lambda i: f"layer {i + 1}")


def check_findings(dlib: dict, agreement: dict, mirror: pd.DataFrame, verdicts: dict,
                   separation: dict) -> dict:
    """The chapter's findings: ``dlib`` from `dlib_agreement`, ``agreement`` {TF.js
    network: `tfjs_agreement`}, ``mirror`` from `mirror_table`, ``verdicts`` {network:
    `facelin.models.networks.mirror_verdict`} and ``separation`` {network:
    `mirror_separation`}, for every network in ``verdicts``."""
    summary = {key: dlib[key] for key in (
        "faces_compared", "descriptor_max_abs_diff", "descriptor_max_abs_diff_float64",
        "chip_mean_abs_diff")}
    summary["networks"] = {}
    for name, verdict in verdicts.items():
        trained = mirror.loc[(name, "trained")]
        summary["networks"][name] = {
            "reference": "dlib" if name == "dlib-resnet" else "TensorFlow.js",
            "max_relative_difference": (dlib["max_relative_difference"]
                                        if name == "dlib-resnet"
                                        else max(agreement[name].values())),
            "mirror_rank1": trained["rank-1"],
            "mirror_rank1_interval": [trained["low"], trained["high"]],
            "control_mirror_rank1": mirror.loc[(name, "untrained"), "rank-1"],
            "mirror_verdict": verdict,
            "mirror_to_different_distance": separation[name]}
    return summary
