# %% [markdown]
# # Claim 2: recognition
#
# The paper's second claim: a linear model in the shape-appearance space recognises and
# verifies faces about as well as the CNN itself. This chapter puts the claim to the test
# on identities the linear maps never saw.
#
# **Identity sets.** Identities are drawn in the face space (`datasets.identity_set`),
# several images each, with explicit nuisance: *parameter jitter* (each image's
# parameters are its identity's plus Gaussian noise; it lives inside the space) and
# *image nuisance* (illumination gradient, small rotation, scale and shift, pixel noise;
# it lives outside the space and moves the parameters fitted to an image). The identities
# are split in two halves: the **fitting identities** fit every linear map and make every
# choice (distance metric, whitening, ridge penalty); the **evaluation identities** are
# scored once.
#
# **Feature sets**, all on the same evaluation images:
#
# 1. `CNN`: dlib's 128-d descriptor of the aligned chip;
# 2. `decoded params`: the face's parameters decoded linearly from that descriptor;
# 3. `encoded (...)`: the descriptor *predicted* linearly from the parameters fitted to
#    the image (`FaceSpace.transform` with the landmarks dlib finds, the route a real
#    photograph takes), with the encoder fitted on the generating parameters
#    (`true-param fit`) or on parameters fitted to the fitting images (`fitted-param fit`);
#    `fitted params` are those fitted parameters themselves;
# 4. `true params`: the generating parameters, the ceiling of the space, by Euclidean
#    distance after Chang & Tsao's normalisation and after whitening;
# 5. `untrained CNN`: the same network with random weights, the floor.
#
# **Metrics.** Identification: each identity's first image is the gallery, its other
# images are probes; rank-1 is the fraction of probes whose nearest gallery identity is
# their own. Verification: every pair of evaluation images, scored by distance; ROC, AUC,
# equal error rate (EER) and the true-accept rate (TAR) at false-accept rates (FAR) of
# 1e-2 and 1e-3. Intervals are 95% t-intervals over 10 folds of evaluation identities.

# %%
LARGE = False             # True: larger identity sets and a finer sweep (10-20 min)
N_IDENTITIES = 200 if LARGE else 60     # half fitting, half evaluation
N_PER_IDENTITY = 4
SWEEP_IDENTITIES = 100 if LARGE else 30
SWEEP_PER_IDENTITY = 4 if LARGE else 3
SWEEP_STRENGTHS = (0, 0.5, 1, 1.5, 2) if LARGE else (0, 1, 2)
LFW_ROOT = None           # a folder holding LFW with pairs.txt runs the standard protocol

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from facelin import datasets, experiment, extract, faces, findings, recognition
from facelin.encoding import LinearEncoder
from facelin.facespace import default_space

plt.rcParams["figure.dpi"] = 80
chapter_start = time.perf_counter()
space = default_space()
models = {name: experiment.network(name) for name in ("trained", "untrained")}
ids = datasets.identity_set(space, N_IDENTITIES, N_PER_IDENTITY, nuisance=1.0, seed=0,
                            margin=recognition.MARGIN)
print(f"{N_IDENTITIES} identities x {N_PER_IDENTITY} images, {ids.images.shape[1]} px, "
      f"nuisance {ids.nuisance}")

# %% [markdown]
# Four identities (rows) at the default nuisance. The faces are synthesised with a
# margin around dlib's chip so that dlib's face detector has context to find them.

# %%
fig, axes = plt.subplots(4, N_PER_IDENTITY, figsize=(N_PER_IDENTITY * 1.6, 4 * 1.6))
for ax, image in zip(axes.flat, ids.images[:4 * N_PER_IDENTITY]):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## Features of every image
#
# Each image is cut into a 150x150 chip with its exact landmarks and recorded by both
# networks; its parameters are fitted with the landmarks dlib's detector and predictor
# find. Where the detector finds no face (it was trained on photographs, and these faces
# end at the edge of the face region), the predictor starts from the box of the mean
# face where the generator centres faces; the count is reported.

# %%
features = recognition.identity_features(ids, space, models, progress=True)
fitting = recognition.split_identities(features.labels, 0.5, seed=0)
print(f"dlib's detector missed {len(features.undetected)} of {len(ids.images)} faces; "
      f"{len(np.unique(features.labels[fitting]))} fitting and "
      f"{len(np.unique(features.labels[~fitting]))} evaluation identities")

# %% tags=["nbval-check-output"]
fit_quality = [np.corrcoef(features.fitted[:, k], features.params[:, k])[0, 1]
               for k in range(space.n_params)]
print(f"dlib's detector missed {len(features.undetected)} faces")
print("correlation of fitted with generating parameters, first shape and appearance "
      f"dimension: {fit_quality[0]:.1f}, {fit_quality[space.n_shape]:.1f}")

# %% [markdown]
# ## Identification and verification on held-out identities
#
# `recognition.compare` tries cosine and Euclidean distance, each on raw and on whitened
# features (whitening fitted on the fitting identities), keeps the combination with the
# best rank-1 on the fitting identities (for the linear routes: on their cross-validated
# predictions), and scores the evaluation identities once with it. The true parameters
# are scored both ways by Euclidean distance, fixed in advance.

# %%
sets, options = recognition.linear_feature_sets(features, fitting, space)
table, evaluations = recognition.compare(sets, features.labels[fitting],
                                         features.labels[~fitting], options)
shown = table.copy()
for column in shown.columns.drop("metric"):
    shown[column] = shown[column].astype(float).round(3)
shown

# %% tags=["nbval-check-output"]
for name, row in table.iterrows():
    print(f"{name:28s} rank-1 {row['rank1']:.1f}  AUC {row['auc']:.1f}  "
          f"TAR@FAR=1e-2 {row['tar@far=0.01']:.1f}")

# %% [markdown]
# The choices made on the fitting identities, per feature set (rank-1 and AUC on the
# fitting identities; the chosen one scored the evaluation identities):

# %%
choices = pd.DataFrame([{"features": name, **c} for name, e in evaluations.items()
                        for c in e.candidates]).round(3)
choices.pivot_table(index="features", columns=["whitened", "metric"],
                    values="fitting_rank1", sort=False)

# %% [markdown]
# ## ROC curves
#
# False-accept rate on a log axis, so that the operating points of a real system (FAR
# 1e-2, 1e-3) are visible.

# %%
fig, ax = plt.subplots(figsize=(7, 5))
palette = sns.color_palette("tab10", len(evaluations))
for colour, (name, e) in zip(palette, evaluations.items()):
    v = e.verification
    ax.plot(np.maximum(v.far, 1e-5), v.tar, color=colour, lw=1.5,
            label=f"{name} (AUC {v.auc:.3f})")
for far in (1e-2, 1e-3):
    ax.axvline(far, color="grey", lw=0.5, ls=":")
ax.set(xscale="log", xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false-accept rate",
       ylabel="true-accept rate", title="Verification on the evaluation identities")
ax.legend(fontsize=8, loc="lower right");

# %% [markdown]
# ## Accuracy as the nuisance grows
#
# A single nuisance level would decide the verdict by itself, so the comparison is
# repeated on fresh identity sets (the same identities and random draws at every
# strength) as the nuisance grows from none to twice the default: image nuisance alone,
# parameter jitter alone, and both together. Every map is refitted on each set's fitting
# identities. (The untrained floor is left out of the sweep to keep it short.)

# %%
sweep = recognition.nuisance_sweep(space, {"trained": models["trained"]}, SWEEP_STRENGTHS,
                                   SWEEP_IDENTITIES, SWEEP_PER_IDENTITY, seed=1)
grid = sns.relplot(data=sweep, x="strength", y="rank1", hue="features", col="nuisance",
                   kind="line", marker="o", height=3.2, aspect=1.0,
                   hue_order=[n for n in sets if n != "untrained CNN"],
                   palette=palette[:len(sets) - 1])
grid.set_axis_labels("nuisance strength (1 = default)", "rank-1 identification");

# %% tags=["nbval-check-output"]
at_max = sweep[sweep.strength == max(SWEEP_STRENGTHS)].pivot_table(
    index="features", columns="nuisance", values="rank1", sort=False)
print(f"rank-1 at strength {max(SWEEP_STRENGTHS)}:")
print(at_max[["image", "jitter", "both"]].round(1).to_string())

# %% [markdown]
# ## Real faces
#
# The synthetic faces are the linear model's home ground. On the 100 real LFW faces that
# built the space, each face's parameters are fitted from its dlib landmarks and
# texture, and route (3) predicts its descriptor with the encoder fitted above on the
# fitting identities' fitted parameters. How well do the predicted descriptors agree with
# the CNN's real ones on which faces are alike? (The faces built the space, so their
# parameters are in-sample for it; the encoder never saw them.) The same agreement on the
# synthetic evaluation images is the reference.

# %%
real = datasets.lfw_subset()
real_chips = faces.face_chips(real.images, real.landmarks)
real_descriptors = extract.record(models["trained"], real_chips, {"descriptor": "all"},
                                  progress=False).values.double().numpy()
real_fitted = space.transform(real.images, real.landmarks)
reference = features.fitted[fitting]
encoder = LinearEncoder().fit(space.normalize(reference, reference=reference),
                              features.responses["trained"][fitting])
real_predicted = encoder.predict(space.normalize(real_fitted, reference=reference)).numpy()
agreement = {
    "real faces, predicted vs CNN descriptors": recognition.distance_agreement(
        real_predicted, real_descriptors),
    "real faces, fitted params vs CNN descriptors": recognition.distance_agreement(
        space.normalize(real_fitted, reference=reference), real_descriptors),
    "synthetic evaluation images, predicted vs CNN descriptors":
        recognition.distance_agreement(sets["encoded (fitted-param fit)"][1], sets["CNN"][1]),
}
for name, rho in agreement.items():
    print(f"{name}: {rho:.3f}")
i, j = np.triu_indices(len(real_descriptors), k=1)
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.plot(recognition.distances(real_descriptors, metric="euclidean")[i, j],
        recognition.distances(real_predicted, metric="euclidean")[i, j], ".", ms=1.5,
        alpha=0.4)
ax.set(xlabel="distance between CNN descriptors", ylabel="distance between predicted "
       "descriptors", title=f"{len(real_descriptors)} real faces, {len(i)} pairs");

# %% tags=["nbval-check-output"]
for name, rho in agreement.items():
    print(f"rank correlation of pairwise distances, {name}: {rho:.1f}")

# %% [markdown]
# ## The LFW protocol
#
# With `LFW_ROOT` set to a folder holding Labeled Faces in the Wild and its `pairs.txt`,
# the standard protocol runs here (10 folds of 600 pairs, threshold chosen on the other
# nine folds) for the CNN's descriptors.

# %%
if LFW_ROOT is None:
    print("LFW is not present (LFW_ROOT is None): the standard 6,000-pair protocol is skipped.")
else:
    lfw = recognition.lfw_pairs_protocol(LFW_ROOT,
                                         recognition.DescriptorExtractor(models["trained"]))
    print(f"LFW accuracy {lfw.accuracy:.4f} +- {lfw.accuracy_std:.4f}, "
          f"AUC {lfw.verification.auc:.4f}")

# %% [markdown]
# ## Verdict
#
# At the default nuisance, on 30 identities the linear maps never saw (90 probes; the
# table above has the intervals):
#
# - **The CNN** identifies 0.99 of the probes (rank-1), verifies with AUC 0.999 and an
#   EER of 0.01, and accepts 0.95 of genuine pairs at a false-accept rate of 1e-3.
# - **The true parameters** (the ceiling) are perfect: rank-1 1.00, AUC 1.000, by
#   Euclidean distance after normalisation or after whitening. These identities were
#   drawn in the space, and within-identity jitter is small beside the spread between
#   identities; this is the linear model's best case, and no photograph gives it.
# - **Parameters decoded linearly from the CNN's descriptor** come close to the CNN:
#   rank-1 0.93, AUC 0.995, EER 0.03, but only 0.68 of genuine pairs at FAR 1e-3.
# - **The route a photograph must take**, parameters fitted to the image from dlib's
#   landmarks and the descriptor predicted linearly from them, falls clearly behind:
#   rank-1 0.73 (encoder fitted on generating parameters) and 0.79 (fitted on fitted
#   parameters), AUC 0.96 and 0.95, EER 0.12, TAR at FAR 1e-3 0.48 and 0.65. The fitted
#   parameters by themselves do as well (rank-1 0.77, AUC 0.96): the linear map neither
#   adds nor loses much; what is lost, is lost in fitting the image.
# - **The untrained network** is the floor: rank-1 0.41, AUC 0.88.
#
# The sweep (smaller sets: 15 evaluation identities, 30 probes) shows what the nuisance
# does to each. *Image nuisance* (shading, pose, pixel noise) leaves the CNN untouched,
# rank-1 1.0 at twice the default, and barely touches decoded parameters (0.9), but it
# moves the parameters fitted to the image: the fitted-parameter routes fall to 0.6-0.7.
# *Parameter jitter* lives inside the space and hurts everyone, the CNN and the true
# parameters alike (0.8 at twice the default), the linear routes more (0.4-0.6), since
# decoding and fitting errors add to it. With *both*, at twice the default, the CNN keeps
# 0.5 and the fitted-parameter routes 0.2.
#
# On the real LFW faces the two representations agree only weakly on which faces are
# alike: the rank correlation of pairwise distances between predicted and actual
# descriptors is 0.19 (0.29 on the synthetic evaluation images; 0.09 for the fitted
# parameters themselves). dlib's detector missed 36 of the 240 synthetic faces (their
# landmarks started from the mean face's box).
#
# **In plain words:** the CNN's descriptor holds the face parameters linearly, well
# enough that parameters read out of it recognise nearly as well as the CNN (0.93 against
# 0.99 rank-1). But the paper's stronger reading, that a linear model in the parameter
# space recognises faces as well as the CNN, holds here only when the model is handed
# the generating parameters. Given an image, as with any real photograph, the linear
# model must first fit the parameters, and there it falls behind the CNN (rank-1 about
# 0.75-0.8 against 0.99, EER 0.12 against 0.01), further behind as the image nuisance
# grows, which the CNN was trained to ignore and the parameter fit is not.
#
# At the default size this chapter executed in 3 to 4.5 minutes on the book's shared
# 2-core CPU (about 100 s of CPU time); `LARGE = True` runs 200 identities and a sweep of
# 100 identities at five strengths.

# %%
headline = {name: {k: row[k] for k in ("rank1", "rank1_low", "rank1_high", "auc", "auc_low",
                                       "auc_high", "eer", "tar@far=0.01", "tar@far=0.001")}
            for name, row in table.iterrows()}
findings.save("claim2_recognition", {
    "n_identities": N_IDENTITIES, "n_per_identity": N_PER_IDENTITY,
    "undetected_by_dlib": int(len(features.undetected)), "feature_sets": headline,
    "real_faces_rank_correlation": agreement,
    "sweep_rank1_at_max": {k: v for k, v in at_max.to_dict().items()},
    "verdict": "partly",
    "verdict_reason": "a linear read-out of the parameters from the CNN comes close to it, "
                      "but a linear model that starts from parameters fitted to the image "
                      "falls well behind the CNN",
})
print(f"chapter executed in {time.perf_counter() - chapter_start:.0f} s")
