# %% [markdown]
# # Claim 1: a linear code
#
# **The claim.** The responses of a face CNN's units are *encoded* and *decoded* by a
# linear model in the shape-appearance space: each unit's response is close to
# `w . x + b` for the face's 50 parameters `x`, and the parameters can be read back from
# the population as `x = B r + c`, as Chang & Tsao (2017) found for face cells of macaque
# inferotemporal cortex.
#
# **The protocol** (Chang & Tsao's, see the [introduction](intro.md)): 2,000 faces drawn
# at random in the 50-d space built from real faces (each dimension from a normal
# distribution with the standard deviation of its component), shown to dlib's
# face-recognition ResNet as aligned 150x150 chips. The parameters are normalised as in
# their analysis code. Encoding is scored per unit, decoding per parameter dimension, both
# by explained variance `EV = 1 - SSE/SST` of cross-validated predictions; decoding is
# also scored by identification (is the decoded face nearer to its true face than to
# `N - 1` distractors?).
#
# **Controls**, in the same plots: the same architecture with random weights (the
# untrained network), raw pixels reduced by PCA to the same number of features, and
# shuffled parameters (every face paired with another face's parameters: the null).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from facelin import axis, encoding, experiment, findings

started = time.time()
N_FACES = 2000  # Chang & Tsao's number of stimuli
UNITS_PER_LAYER = 512  # units sampled from each layer larger than this
HEADLINE_LAYERS = ["stage5.block1.relu", "pool", "descriptor"]  # the network's last stages
N_DRAWS = 30  # random unit subsets per size in the identification curve
sns.set_theme(style="whitegrid", context="notebook")

# %% [markdown]
# ## Stimuli and responses
#
# The stimuli and the responses are computed once and cached on disk (keyed by the face
# space, the number of faces, the seeds, the network and the units), so the other claim
# chapters reuse them. Responses are recorded at the stem, at the output of every residual
# block (512 units sampled from each), at the 256-d pooled layer and at the 128-d
# descriptor.

# %%
stim = experiment.stimuli(N_FACES)
populations = {name: experiment.population(stim, name, UNITS_PER_LAYER)
               for name in experiment.NETWORKS}
params = torch.from_numpy(stim.normalized)
# The last block of each stage stands for the stage (all blocks are cached for reuse).
layers = ["stem.max_pool", "stage1.block3.relu", "stage2.block4.relu", "stage3.block3.relu",
          "stage4.block3.relu", "stage5.block1.relu", "pool", "descriptor"]

fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, chip in zip(axes, stim.chips):
    ax.imshow(chip.permute(1, 2, 0).numpy())
    ax.axis("off")
plt.suptitle("the first stimuli, as the network sees them")
plt.show()

# %% tags=["nbval-check-output"]
print(f"{len(stim)} faces x {params.shape[1]} parameters")
for name, pop in populations.items():
    print(f"{name}: {pop.values.shape[1]} units in {len(pop.layers)} layers")

# %% [markdown]
# ## Encoding: each unit from the face's parameters
#
# For every unit a ridge regression on the 50 parameters (penalty chosen by 5-fold
# cross-validation per unit) predicts the held-out faces' responses. Units that never
# respond (silent ReLUs) are left out. The same fit with shuffled parameters shows where
# chance lies.

# %%
def encoding_ev(params, responses):
    r = responses.double()
    r = r[:, r.std(0) > 0]
    return encoding.LinearEncoder(cv=5).fit(params, r).ev_.numpy()


shuffled_params = torch.from_numpy(experiment.shuffled(stim.normalized))
rows = []
for layer in layers:
    for name, pop in populations.items():
        rows += [(layer, name, ev) for ev in encoding_ev(params, pop.layer(layer))]
    rows += [(layer, "shuffled parameters", ev)
             for ev in encoding_ev(shuffled_params, populations["trained"].layer(layer))]
encoding_table = pd.DataFrame(rows, columns=["layer", "model", "ev"])
pixels = experiment.pixel_features(stim.chips, UNITS_PER_LAYER)
pixel_encoding = np.median(encoding_ev(params, pixels))

fig, ax = plt.subplots(figsize=(13, 4.5))
sns.boxplot(encoding_table, x="layer", y="ev", hue="model", fliersize=0, ax=ax,
            palette=["tab:blue", "tab:orange", "tab:grey"])
ax.axhline(pixel_encoding, color="tab:green", ls="--", label="pixel PCs (median)")
ax.set_ylim(-0.1, 1)
ax.set_ylabel("cross-validated encoding EV per unit")
ax.tick_params(axis="x", rotation=60)
ax.legend(loc="upper left", ncols=4)
plt.show()

# %% tags=["nbval-check-output"]
median_encoding = encoding_table.groupby(["model", "layer"], sort=False).ev.median().unstack(0)
print("median encoding EV per layer")
print(median_encoding.round(1).to_string())

# %% [markdown]
# ### Is the code linear, or just smooth?
#
# A high linear EV does not show that the code is linear: a nonlinear model of the same 50
# parameters might explain much more. For 32 units of three layers, an RBF kernel ridge
# regression on the whitened parameters (600 Nystroem centres, bandwidth from the median
# distance, penalty by leave-one-out; see `facelin.axis.compare_models`) is set beside the
# linear model, both 5-fold cross-validated.

# %%
rng = np.random.default_rng(0)
gain_rows = []
for layer in ["stage3.block3.relu", "pool", "descriptor"]:
    r = populations["trained"].layer(layer).double()
    r = r[:, r.std(0) > 0]
    chosen = rng.choice(r.shape[1], size=min(32, r.shape[1]), replace=False)
    models = axis.compare_models(params, r[:, chosen], cv=5)
    gain_rows.append({"layer": layer, "linear": models.linear.median(),
                      "kernel": models.reference.median(),
                      "kernel - linear": (models.reference - models.linear).median()})
nonlinear_gain = pd.DataFrame(gain_rows).set_index("layer")

# %% tags=["nbval-check-output"]
print("median cross-validated EV, trained network")
print(nonlinear_gain.round(1).to_string())
print("kernel adds less than 0.1 in every layer:",
      bool((nonlinear_gain["kernel - linear"] < 0.1).all()))

# %% [markdown]
# ## Decoding: the face's parameters from the population
#
# Chang & Tsao decoded with every recorded cell by leave-one-face-out ordinary least
# squares. Here the population is the network's last stages (512 units of the last
# residual block, the 256 pooled units and the 128 descriptor units). Such responses can be
# nearly rank-deficient (units of a layer are correlated, ReLUs are silent for many faces),
# so the least-squares decoder carries a vanishing ridge (1e-9 of the mean eigenvalue) and
# returns the minimum-norm solution instead of failing; a ridge decoder with the penalty
# chosen per dimension by 10-fold cross-validation is set beside it.

# %%
def headline(pop):
    r = torch.cat([pop.layer(name) for name in HEADLINE_LAYERS], dim=1).double()
    return r[:, r.std(0) > 0]


top = headline(populations["trained"])
singular = torch.linalg.svdvals(top - top.mean(0))
ols = encoding.LinearDecoder(alphas=None, cv="loo").fit(top, params)
ridge = encoding.LinearDecoder(cv=10).fit(top, params)
n_shape = stim.space.n_shape
block = np.array(["shape"] * n_shape + ["appearance"] * (params.shape[1] - n_shape))

fig, ax = plt.subplots(figsize=(13, 3.5))
dims = np.arange(params.shape[1])
ax.bar(dims, ols.ev_.numpy(), color=np.where(block == "shape", "tab:purple", "tab:olive"))
ax.plot(dims, ridge.ev_.numpy(), "k.", label="ridge decoder")
ax.set_xlabel("parameter dimension (0-24 shape, purple; 25-49 appearance, olive)")
ax.set_ylabel("decoding EV (leave-one-out)")
ax.legend()
plt.show()

# %% tags=["nbval-check-output"]
condition = (singular[0] / singular[-1]).item()
print(f"decoding population: {top.shape[1]} units, condition number 1e{np.log10(condition):.0f}")
for name, decoder in [("least squares, leave-one-out", ols), ("ridge, 10-fold", ridge)]:
    ev = decoder.ev_.numpy()
    pred = decoder.cv_predictions_
    print(f"{name}: mean EV shape {ev[:n_shape].mean():.1f}, appearance {ev[n_shape:].mean():.1f}"
          f"; pooled EV shape "
          f"{encoding.pooled_explained_variance(params[:, :n_shape], pred[:, :n_shape]):.1f}, "
          f"appearance "
          f"{encoding.pooled_explained_variance(params[:, n_shape:], pred[:, n_shape:]):.1f}")

# %% [markdown]
# The later components of each block carry little variance and are decoded worst, so the
# plain mean of the dimensions' EVs sits below the variance-weighted (pooled) EV, which
# weighs each dimension by its share of the face variation.
#
# ### Predicted against actual, and reconstructions

# %%
fig, axes = plt.subplots(1, 6, figsize=(14, 2.6))
for ax, d in zip(axes, [0, 1, 2, n_shape, n_shape + 1, n_shape + 2]):
    ax.scatter(params[:, d], ols.cv_predictions_[:, d], s=2, alpha=0.3)
    lim = float(params[:, d].abs().max())
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
    ax.set_title(f"{block[d]} {d if d < n_shape else d - n_shape}  EV {ols.ev_[d]:.2f}")
    ax.set_xlabel("actual")
axes[0].set_ylabel("decoded (held out)")
plt.tight_layout()
plt.show()

# %%
shown = np.arange(6)
decoded_params = stim.space.denormalize(ols.cv_predictions_.numpy()[shown], stim.params)
true_images, _ = stim.space.synthesize(stim.params[shown])
decoded_images, _ = stim.space.synthesize(decoded_params)
fig, axes = plt.subplots(2, len(shown), figsize=(12, 4.2))
for k in range(len(shown)):
    axes[0, k].imshow(true_images[k], cmap="gray", vmin=0, vmax=1)
    axes[1, k].imshow(decoded_images[k], cmap="gray", vmin=0, vmax=1)
    for row in axes[:, k]:
        row.axis("off")
axes[0, 0].set_title("true faces", loc="left")
axes[1, 0].set_title("rendered from parameters decoded from the units (held out)", loc="left")
plt.show()

# %% [markdown]
# ## Identification
#
# Chang & Tsao's test: the parameters decoded for a held-out face are compared with the
# true parameters of that face and of `N - 1` other faces; the trial is correct when the
# true face is the nearest. First with the whole decoding population, as `N` grows; then
# with random subsets of units of each size (30 draws per size, each decoder fitted on 4
# folds and tested on the fifth), which all go through one batched solve of
# `facelin.linalg.subset_lstsq`.

# %%
candidates = [2, 5, 10, 20, 30, 40, 50]
controls = {
    "trained": top,
    "untrained": headline(populations["untrained"]),
    "pixel PCs": experiment.pixel_features(stim.chips, top.shape[1]).double(),
}
curves = {}
for name, r in controls.items():
    decoded = encoding.LinearDecoder(alphas=None, cv="loo").fit(r, params).cv_predictions_
    curves[name] = encoding.identification_accuracy(decoded, params, candidates)
shuffled_decoded = encoding.LinearDecoder(cv=10).fit(top, shuffled_params).cv_predictions_
curves["shuffled parameters"] = encoding.identification_accuracy(shuffled_decoded,
                                                                 shuffled_params, candidates)

unit_counts = [2, 5, 10, 20, 50, 100, 200, 400]
by_units = encoding.identification_curve(top, params, unit_counts, n_draws=N_DRAWS,
                                         n_candidates=(2, 50), cv=5)
by_units_untrained = encoding.identification_curve(controls["untrained"], params,
                                                   unit_counts, n_draws=N_DRAWS,
                                                   n_candidates=(2, 50), cv=5)

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
for name, acc in curves.items():
    axes[0].plot(candidates, acc, "o-", label=name)
axes[0].plot(candidates, 1 / np.array(candidates), "k:", label="chance")
axes[0].set_xlabel("number of candidate faces N")
axes[0].set_ylabel("identification accuracy")
axes[0].legend()
for name, curve, colour in [("trained", by_units, "tab:blue"),
                            ("untrained", by_units_untrained, "tab:orange")]:
    for n_cand, style in [(2, "--"), (50, "-")]:
        mean = curve[curve.n_candidates == n_cand].groupby("units").accuracy
        axes[1].errorbar(mean.mean().index, mean.mean(), yerr=mean.std(), fmt=style,
                         color=colour, label=f"{name}, N={n_cand}", capsize=2)
axes[1].axvline(200, color="tab:red", lw=1)
axes[1].text(210, 0.05, "IT: about 200 cells\nsuffice (Chang & Tsao)", color="tab:red")
axes[1].set_xscale("log")
axes[1].set_xlabel("number of units (random subsets, mean +- SD over draws)")
axes[1].set_ylabel("identification accuracy")
axes[1].legend(loc="upper left")
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
for name, acc in curves.items():
    print(f"{name}: accuracy at N=2 {acc[0]:.2f}, at N=50 {acc[-1]:.2f}")
units_80 = {}
for name, curve in [("trained", by_units), ("untrained", by_units_untrained)]:
    for n_cand in (2, 50):
        units_80[(name, n_cand)] = encoding.units_for_accuracy(curve, 0.8, n_cand)
        print(f"{name}: units for 80% correct among {n_cand}: "
              f"{units_80[(name, n_cand)]:.0f}" if np.isfinite(units_80[(name, n_cand)]) else
              f"{name}: 80% correct among {n_cand} not reached")

# %% [markdown]
# ## Layer by layer
#
# The same scores for every layer on its own, from the stem to the descriptor, for the
# trained and the untrained network (pixel PCs with as many features as the layer has
# units as the reference line), 5-fold cross-validated.

# %%
sweep = []
for layer in layers:
    for name, pop in populations.items():
        summary = encoding.layer_summary(params, pop.layer(layer), n_shape=n_shape, cv=5)
        sweep.append({"layer": layer, "network": name, **summary})
sweep = pd.DataFrame(sweep)
pixel_summary = encoding.layer_summary(params, pixels, n_shape=n_shape, cv=5)

fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharex=True)
for ax, column, title in [(axes[0], "encoding_ev", "median encoding EV"),
                          (axes[1], "pooled_ev_shape", "decoding EV, shape (pooled)"),
                          (axes[2], "pooled_ev_appearance", "decoding EV, appearance (pooled)")]:
    for name, part in sweep.groupby("network", sort=False):
        ax.plot(part.layer, part[column], "o-", label=name)
    ax.axhline(pixel_summary[column], color="tab:green", ls="--", label="pixel PCs")
    ax.set_title(title)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=80)
axes[0].legend()
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
columns = ["units", "encoding_ev", "pooled_ev_shape", "pooled_ev_appearance", "identification_50"]
print(sweep.set_index(["network", "layer"])[columns].round(1).to_string())
print("pixel PCs:", {k: round(pixel_summary[k], 1) for k in columns[1:]})

# %% [markdown]
# ## Verdict
#
# The printed numbers above answer claim 1 for dlib's network and this face space.
#
# - **Decoding holds.** The 50 parameters are read out linearly from the last stages with a
#   variance-weighted EV of about 0.8 for shape and for appearance (the shuffled null sits
#   at zero), well enough to render recognisable faces, and a decoded face is picked out
#   among 50 candidates almost always. Fewer units than Chang & Tsao's ~200 cells suffice:
#   a few dozen reach 80% correct between two faces, roughly 150 among fifty.
# - **Encoding partly holds.** A linear function of the 50 parameters explains about half
#   of a typical unit's variance in the last stages (less in early ones), and a kernel
#   model of the same parameters adds less than 0.1 (about 0.05): what the linear model
#   misses is not a smooth function of the parameters that a richer model recovers from
#   2,000 faces.
# - **It is not specific to the trained network.** The untrained network and the raw
#   pixels are decoded about as well, and the untrained network's units are fitted *better*
#   by the linear encoder and need fewer units for identification. A linear relation to a
#   shape-appearance space follows from the space itself (appearance is linear in pixels,
#   shape is a smooth deformation), not from what the network learned. Training changes
#   the balance: the trained network's residual stages carry more *shape* (pooled shape EV
#   0.8-0.9 against 0.6-0.7 untrained), while the untrained one keeps more appearance; the
#   128-d descriptor, trained to discard what does not tell people apart, keeps the least
#   of either.
#
# So, in our measurements, claim 1 holds in the sense that Chang & Tsao's linear tests pass
# for the CNN, but the same tests pass for an untrained network and for pixels: they do not
# single out a learned face code.

# %%
findings.save("claim1_linear_code", {
    "faces": len(stim),
    "median_encoding_ev": median_encoding["trained"].to_dict(),
    "median_encoding_ev_untrained": median_encoding["untrained"].to_dict(),
    "median_encoding_ev_shuffled": float(
        encoding_table[encoding_table.model == "shuffled parameters"].ev.median()),
    "kernel_minus_linear_ev": nonlinear_gain["kernel - linear"].to_dict(),
    "decoding_units": int(top.shape[1]),
    "decoding_ev_per_dimension_range": [float(ols.ev_.min()), float(ols.ev_.max())],
    "decoding_pooled_ev": encoding.pooled_explained_variance(params, ols.cv_predictions_),
    "identification_n2": {k: float(v[0]) for k, v in curves.items()},
    "identification_n50": {k: float(v[-1]) for k, v in curves.items()},
    "units_for_80pct_n2": {k[0]: v for k, v in units_80.items() if k[1] == 2},
    "units_for_80pct_n50": {k[0]: v for k, v in units_80.items() if k[1] == 50},
    "verdict": "partly",
    "verdict_reason": "decoding holds and encoding explains about half of a deep unit's "
                      "variance, but the same linear tests pass for the untrained network "
                      "and for pixels",
})
print(f"executed in {time.time() - started:.0f} s")
