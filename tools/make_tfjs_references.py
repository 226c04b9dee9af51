"""Write the TF.js reference outputs the PyTorch ports are tested against.

    python tools/make_tfjs_references.py

For each TF.js face network: two real faces (the first two faces of scikit-image's
``lfw_subset``, aligned as the network expects and rounded to uint8) go into
``tests/data/tfjs_inputs.npz``; TensorFlow.js's pure-JavaScript CPU backend
(tools/tfjs_reference.js under node) computes the descriptor and a few intermediate
nodes, and ``tests/data/tfjs_references.npz`` keeps the descriptor whole and a seeded
sample of the units of larger nodes (flat NCHW indices stored beside the values).
Needs node and npm.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facelin.datasets import lfw_subset
from facelin.models import load_network
from facelin.models.npm import HUMAN_MODELS, human_model_path
from facelin.models.tfjs import tfjs_reference

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
NODES = {
    "mobileface": ["conv1", "add_8", "add_16", "batchnorm0/add_1"],
    "faceres": ["conv1_relu/clip_by_value", "conv_pw_5_relu/clip_by_value",
                "conv_pw_13_relu/clip_by_value", "global_pooling/Mean"],
}
SAMPLE = 2000  # units kept per input for nodes larger than this


def main():
    faces = lfw_subset()
    inputs, references = {}, {}
    rng = np.random.default_rng(0)
    for name, nodes in NODES.items():
        chips = load_network(name).chips(faces.images[:2], faces.landmarks[:2])
        chips = chips.round().clamp(0, 255).to(torch.uint8).numpy()
        inputs[name] = chips
        values = tfjs_reference(human_model_path(name), chips.astype(np.float32), nodes)
        for node in nodes:
            flat = values[node].reshape(len(chips), -1)
            index = np.arange(flat.shape[1]) if flat.shape[1] <= SAMPLE else np.sort(
                rng.choice(flat.shape[1], SAMPLE, replace=False))
            references[f"{name}|{node}|index"] = index
            references[f"{name}|{node}|values"] = flat[:, index].astype(np.float32)
    references["about"] = np.array(json.dumps({
        "package": HUMAN_MODELS, "tfjs": "pure-JavaScript CPU backend",
        "inputs": "tfjs_inputs.npz", "nodes": NODES}))
    DATA.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA / "tfjs_inputs.npz", **inputs)
    np.savez_compressed(DATA / "tfjs_references.npz", **references)
    for path in ("tfjs_inputs.npz", "tfjs_references.npz"):
        print(path, (DATA / path).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
