# %% [markdown]
# # The face space
#
# Chang & Tsao (2017) described every face by 50 numbers: 25 for its *shape* and 25 for
# its *appearance*. The shape numbers are the principal components of landmark positions
# after the faces are aligned to one another (generalised Procrustes: position, size and
# in-plane angle removed); the appearance numbers are the principal components of the
# faces' textures after each face is warped to the mean shape (its "shape-free" texture).
# Every later chapter works in this space: its stimuli are drawn in it, CNN responses are
# regressed on it, and real faces are placed in it by fitting.
#
# facelin builds the space from 68 dlib landmarks per face (Chang & Tsao placed 58 by
# hand) and warps piecewise affinely over a triangulation of the mean shape (Chang & Tsao
# used a thin-plate spline; the piecewise-affine warp maps every landmark exactly and is
# exactly invertible, which lets real faces be fitted with one gather per face).
#
# The variable below chooses the faces. The default, `"lfw_subset"`, is the 100 real LFW
# faces that ship with scikit-image; set it to a folder to build the space from FEI (the
# faces Chang & Tsao used: one sub-folder per person), from LFW (its standard layout with
# `pairs.txt`, or scikit-learn's `lfw_home` cache) or from any folder of face images with
# one sub-folder per identity. dlib then finds and landmarks the faces.

# %%
FACE_SOURCE = "lfw_subset"  # or e.g. "/data/fei", "/data/lfw", "~/scikit_learn_data"
MAX_IMAGES = 1000           # a folder source is subsampled to this many images
N_HELD_OUT = 20             # faces kept out of the space, to measure how well it fits

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from facelin import datasets, faces
from facelin.facespace import FaceSpace, reconstruction_errors
from facelin.figures import image_grid

plt.rcParams["figure.dpi"] = 80

face_set = datasets.load_faces(FACE_SOURCE, max_images=MAX_IMAGES)
images = list(face_set.images)
print(face_set.source)
print("faces:", len(face_set), "| rejected:", len(face_set.rejected))

# %% [markdown]
# ## The faces and their landmarks
#
# dlib's 68 points: the jaw line (0-16), the eyebrows (17-26), the nose (27-35), the eyes
# (36-47) and the lips (48-67). scikit-image's faces are 25x25-pixel crops; they are
# enlarged six times before dlib's predictor is given a box covering the whole crop (its
# detector misses many faces this small). The crops are tight: the jaw often leaves them.

# %%
image_grid(images[:12], 2, 6, landmarks=face_set.landmarks[:12]);

# %% [markdown]
# ## Building the space
#
# The last `N_HELD_OUT` faces are kept out; the space is built from the others.

# %%
n_train = len(images) - N_HELD_OUT
train_images, train_points = images[:n_train], face_set.landmarks[:n_train]
test_images, test_points = images[n_train:], face_set.landmarks[n_train:]
start = time.perf_counter()
space = FaceSpace(n_shape=25, n_appearance=25).fit(train_images, train_points)
print(f"fitted on {n_train} faces in {time.perf_counter() - start:.1f} s; "
      f"texture: {space.mask_.sum()} pixels x {space.n_channels} channel(s)")

# %% tags=["nbval-check-output"]
print("faces used to build the space:", n_train)
shape_share = space.shape_explained_variance_ratio_.sum()
print(f"variance explained by 25 shape PCs: {shape_share:.2f}")
print(f"variance explained by 25 appearance PCs: "
      f"{space.appearance_explained_variance_ratio_.sum():.2f}")

# %% [markdown]
# ## The mean face
#
# All 50 parameters at zero. `synthesize` places each face where dlib's alignment puts a
# face in its 150x150 chip, so a synthesised image *is* the chip that dlib's
# face-recognition network takes (`faces.face_chips` of it returns it unchanged); the
# tight chip cuts the chin. Left: the mean shape's triangulation (without the inner lips,
# whose triangles fold over when the mouth closes); right: the mean face in a wider frame.

# %%
mean_image, mean_points = space.synthesize(np.zeros((1, 50)), size=150)
wide_image, wide_points = space.synthesize(np.zeros((1, 50)), size=150, margin=30)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(mean_image[0], cmap="gray", vmin=0, vmax=1)
axes[0].triplot(mean_points[0, :, 0], mean_points[0, :, 1], space.triangles_, lw=0.4,
                color="tab:orange")
axes[1].imshow(wide_image[0], cmap="gray", vmin=0, vmax=1)
axes[1].add_patch(plt.Rectangle((30, 30), 149, 149, fill=False, color="tab:blue", lw=1))
for ax in axes:
    ax.axis("off")
axes[1].set_title("blue: the 150x150 chip", fontsize=9);

# %% [markdown]
# ## The first axes
#
# Each row moves one parameter from -3 to +3 standard deviations (the square root of its
# eigenvalue) with all others at zero. The first shape axes mix head shape with expression
# (the mouth opening) and residual pose that alignment cannot remove (yaw, pitch); the first
# appearance axes are lighting and overall skin tone, as in most appearance models of
# uncontrolled photographs.

# %%
steps = np.array([-3, -1.5, 0, 1.5, 3])
axis_rows, labels = [], []
for block, offset in (("shape", 0), ("appearance", 25)):
    for k in range(3):
        params = np.zeros((len(steps), 50))
        params[:, offset + k] = steps * np.sqrt(space.eigenvalues_[offset + k])
        axis_rows.append(space.synthesize(params)[0])
        labels.append(f"{block} {k + 1}")
titles = [f"{s:+g} SD" for s in steps] + [""] * (len(steps) * (len(axis_rows) - 1))
image_grid(np.concatenate(axis_rows), len(axis_rows), len(steps), row_labels=labels,
           titles=titles);

# %% [markdown]
# ## Random stimuli
#
# Chang & Tsao's 2,000 stimuli drew each of the 50 dimensions independently from a
# normal distribution with standard deviation the square root of its eigenvalue. Here
# are 24 of 2,000 such faces, and the time to synthesise all of them.

# %%
stimulus_params = space.sample(2000, seed=0)
start = time.perf_counter()
stimuli, stimulus_points = space.synthesize(stimulus_params)
print(f"2,000 faces at 150x150 in {time.perf_counter() - start:.1f} s")
image_grid(stimuli[:24], 3, 8, size=1.3);

# %% [markdown]
# ## Explained variance
#
# How much of the variance of the landmark positions and of the shape-free textures the
# leading components carry. A space of more components than faces cannot be built, so
# the curves stop at the number of faces minus one.

# %%
k_max = min(60, n_train - 1)
full = FaceSpace(n_shape=k_max, n_appearance=k_max).fit(train_images, train_points)
fig, ax = plt.subplots(figsize=(6, 3.2))
ks = np.arange(1, k_max + 1)
ax.plot(ks, np.cumsum(full.shape_explained_variance_ratio_), label="shape")
ax.plot(ks, np.cumsum(full.appearance_explained_variance_ratio_), label="appearance")
ax.axvline(25, color="grey", lw=0.8, ls="--")
ax.set(xlabel="number of components", ylabel="cumulative explained variance",
       ylim=(0, 1.02))
ax.legend();

# %% [markdown]
# ## Real faces in the space
#
# `transform` fits a face into the space: its shape parameters come from its aligned
# landmarks, its appearance parameters from its shape-free texture; `synthesize` draws
# the face back. These faces were not used to build the space. Top: each face as dlib's
# chip; bottom: its 50-d reconstruction.

# %%
test_params = space.transform(test_images, test_points)
reconstructions, _ = space.synthesize(test_params)
chips = faces.face_chips(test_images, test_points).numpy().transpose(0, 2, 3, 1) / 255
originals = chips[..., 0] if space.n_channels == 1 else chips
image_grid(np.concatenate([originals[:8], reconstructions[:8]]), 2, 8, size=1.4,
           row_labels=["chip", "50-d"]);

# %% [markdown]
# ## How well the space fits held-out faces
#
# Landmark error: the root mean square distance between a face's landmarks and those
# reconstructed from its first *k* shape parameters, both placed in a 150x150 dlib chip
# (pixels of the chip). Texture error: the root mean square difference, in grey levels
# (0-255), between a face's shape-free texture and its reconstruction from the first *k*
# appearance parameters, over the face region. Both on held-out faces and, for
# comparison, on the faces the space was built from.

# %%
ks = np.array([0, 1, 2, 3, 5, 8, 12, 16, 20, 25, 30, 40, 50, 60])
ks = ks[ks <= k_max]
held_landmarks, held_textures = reconstruction_errors(full, test_images, test_points,
                                                      ks)
train_landmarks, train_textures = reconstruction_errors(full, train_images[:40],
                                                        train_points[:40], ks)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
panels = ((held_landmarks, train_landmarks, "landmark RMSE (px)"),
          (held_textures, train_textures, "texture RMSE (grey levels)"))
for ax, (held, train, what) in zip(axes, panels):
    ax.plot(ks, held, "o-", label="held-out faces")
    ax.plot(ks, train, "s--", label="faces in the space", alpha=0.7)
    ax.axvline(25, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="number of components", ylabel=what, ylim=(0, None))
axes[0].legend();

# %% tags=["nbval-check-output"]
at = {k: i for i, k in enumerate(ks)}
print(f"held-out landmark RMSE (px in a 150 chip): "
      f"mean shape {held_landmarks[at[0]]:.0f}, 25 PCs {held_landmarks[at[25]]:.1f}")
print(f"held-out texture RMSE (grey levels): mean texture {held_textures[at[0]]:.0f}, "
      f"25 PCs {held_textures[at[25]]:.0f}")
print("25 PCs fit held-out faces worse than the faces in the space:",
      held_landmarks[at[25]] > train_landmarks[at[25]] and
      held_textures[at[25]] > train_textures[at[25]])

# %% [markdown]
# ## Synthesis and fitting invert each other
#
# Fitting a synthesised face recovers its parameters: the shape parameters exactly (the
# landmarks are known exactly), the appearance parameters up to the blur of two bilinear
# resamplings and the few faces whose extreme shapes fold a triangle over. Errors are in
# units of each dimension's standard deviation, over 200 of the random stimuli (drawn
# with a margin so that the chin is inside the image).

# %%
check_params = stimulus_params[:200]
check_images, check_points = space.synthesize(check_params, margin=40)
error = (space.transform(check_images, check_points) - check_params) / np.sqrt(
    space.eigenvalues_)

# %% tags=["nbval-check-output"]
print("shape parameters recovered to 1e-8 SD:",
      bool(np.abs(error[:, :25]).max() < 1e-8))
print("appearance rms error below 0.1 SD:",
      bool(np.sqrt((error[:, 25:] ** 2).mean()) < 0.1))

# %%
per_face = np.sqrt((error[:, 25:] ** 2).mean(axis=1))
print(f"appearance rms error {np.sqrt((error[:, 25:] ** 2).mean()):.3f} SD, "
      f"median face {np.median(per_face):.3f} SD")

# %% [markdown]
# ## What the 25x25 source costs
#
# scikit-image's faces are 25 pixels wide, so the appearance model carries no detail finer
# than what 25 pixels can hold: at 150x150 every synthesised face is a smooth, blurred
# face (no pores, no sharp eyelids, no hair strands), whatever the parameters. Below, one
# source crop at its own resolution, enlarged, and its reconstruction; then the share of
# the stimuli's texture energy (mean removed) above the finest frequency the source could
# hold. A folder of high-resolution faces (FEI's are 640x480) removes this limit: set
# `FACE_SOURCE` above.

# %%
embedded = FACE_SOURCE == "lfw_subset"
crop = [data.lfw_subset()[face_set.indices[n_train]]] if embedded else []
panels = crop + [originals[0], reconstructions[0]]
image_grid(panels, 1, len(panels), size=2.2,
           titles=["source 25x25"] * len(crop) + ["chip", "50-d"]);

# %%
def energy_above(images, cutoff):
    """Share of the spectral energy (mean removed) above `cutoff` cycles per image."""
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    spectrum = np.abs(np.fft.fft2(centred)) ** 2
    frequency = np.fft.fftfreq(images.shape[1]) * images.shape[1]
    radius = np.hypot(frequency[:, None], frequency[None, :])
    return spectrum[:, radius > cutoff].sum() / spectrum.sum()


# one source pixel covers `upsampling` image pixels (6 for scikit-image's faces) and an
# image pixel covers 149 / (chip width) chip pixels: the source's Nyquist limit,
# 0.5 cycles per source pixel, in cycles per 130-pixel window of the chip
upsampling = 6 if FACE_SOURCE == "lfw_subset" else 1
chip_rects = faces.chip_transforms(face_set.landmarks, 150)[0]
chip_widths = chip_rects[:, 2] - chip_rects[:, 0]
chip_per_source = upsampling * 149 / np.median(chip_widths)
source_nyquist = 130 * 0.5 / chip_per_source
share = energy_above(stimuli[:200, 10:140, 10:140], source_nyquist)
print(f"one source pixel spans {chip_per_source:.1f} chip pixels; the source's finest "
      f"detail is {source_nyquist:.0f} cycles per 130 chip pixels")

# %% tags=["nbval-check-output"]
print(f"texture energy above the source's resolution: {round(share * 100):d}%")

# %% [markdown]
# ## Identity sets
#
# For recognition, `datasets.identity_set` draws identities in the space and renders
# several images of each, with an explicit nuisance model whose strength is one number
# (`datasets.Nuisance`): parameter jitter within the identity, a shading gradient, a small
# rotation, scaling and shift before alignment, and pixel noise. One identity per row,
# at increasing strength:

# %%
strengths = [0.0, 0.5, 1.0, 2.0]
rows = [datasets.identity_set(space, 1, 6, nuisance=s, seed=5).images
        for s in strengths]
image_grid(np.concatenate(rows), len(rows), 6, size=1.3,
           row_labels=[f"strength {s:g}" for s in strengths]);

# %% [markdown]
# Later chapters use `facespace.default_space()`: the space built from all 100 faces
# with the settings above, cached on disk (`$FACELIN_CACHE`, or `~/.cache/facelin`).
