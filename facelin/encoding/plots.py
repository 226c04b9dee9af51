"""Claim 1's figures, each returned as a matplotlib Figure. Tables are those of
:mod:`facelin.encoding.study` and :func:`facelin.ceiling.ratio_table`; ``networks``
orders the rows or columns of panels."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = [
    "stimuli_figure", "encoding_figure", "ceiling_ratio_figure", "subset_figure",
    "descriptor_identification_figure", "nuisance_figure", "alternatives_figure",
    "reconstruction_figure", "distance_figure",
]

MODEL_COLOURS = {"trained": "tab:blue", "untrained": "tab:orange",
                 "pixels": "tab:green"}


def _image(ax, chip):
    ax.imshow(chip.permute(1, 2, 0).numpy())
    ax.axis("off")


def stimuli_figure(chips, nuisance, columns: int = 8):
    """Top row: the first ``columns`` stimulus chips (n, 3, S, S); bottom row: new
    faces of ``nuisance`` (a :class:`facelin.renders.NuisanceRenders`), each clean
    render followed by its nuisance renders."""
    versions = len(nuisance.chips) // len(nuisance.clean_chips)
    fig, axes = plt.subplots(2, columns, figsize=(14, 3.8))
    for k, ax in enumerate(axes[0]):
        _image(ax, chips[k])
    for k, ax in enumerate(axes[1]):
        face, version = divmod(k, versions + 1)
        chip = nuisance.clean_chips[face] if version == 0 else \
            nuisance.chips[face * versions + version - 1]
        _image(ax, chip)
        ax.set_title("clean" if version == 0 else f"render {version}", fontsize=9)
    axes[0, 0].set_title("stimuli", loc="left")
    fig.tight_layout()
    return fig


def encoding_figure(table: pd.DataFrame, pixel_encoding, networks: Sequence[str]):
    """Boxes of encoding EV per unit (``table``: network, layer, model, ev) per layer
    and model, one panel per network, with the pixel components' median EV."""
    fig, axes = plt.subplots(len(networks), 1, figsize=(13, 4.2 * len(networks)),
                             squeeze=False)
    for ax, net in zip(axes[:, 0], networks):
        sns.boxplot(table[table.network == net], x="layer", y="ev", hue="model",
                    fliersize=0, ax=ax, palette=["tab:blue", "tab:orange", "tab:grey"])
        ax.axhline(np.median(pixel_encoding), color="tab:green", ls="--",
                   label="pixel PCs (median)")
        ax.set_ylim(-0.1, 1)
        ax.set_ylabel("encoding EV per unit (held out)")
        ax.set_title(net, loc="left")
        ax.tick_params(axis="x", rotation=20)
        ax.legend(loc="upper left", ncols=4)
    fig.tight_layout()
    return fig


def ceiling_ratio_figure(ratios: pd.DataFrame, ceiling_min: float,
                         networks: Sequence[str]):
    """Linear / reference EV ratio per layer with its interval (``ratios`` from
    :func:`facelin.ceiling.ratio_table`), trained and untrained, one panel per
    network, with the pixel components' ratio and the rule's threshold."""
    fig, axes = plt.subplots(1, len(networks), figsize=(6.5 * len(networks), 4),
                             squeeze=False)
    pixel_ratio = ratios[ratios.model == "pixels"].iloc[0]
    for ax, net in zip(axes[0], networks):
        for model in ("trained", "untrained"):
            part = ratios[(ratios.network == net) & (ratios.model == model)]
            ax.errorbar(part.layer, part.ratio, yerr=[part.ratio - part.low,
                        part.high - part.ratio], fmt="o-", capsize=3, label=model,
                        color=MODEL_COLOURS[model])
        ax.axhline(pixel_ratio.ratio, color="tab:green", ls="--", label="pixel PCs")
        ax.axhline(ceiling_min, color="k", lw=0.8, ls=":", label="rule (A)")
        ax.set_ylabel("mean linear EV / mean reference EV")
        ax.set_title(net, loc="left")
        ax.tick_params(axis="x", rotation=70)
        ax.legend()
    fig.tight_layout()
    return fig


def subset_figure(subsets: pd.DataFrame, size: int, networks: Sequence[str]):
    """Identification among 50 from random sets of ``size`` units per layer (median
    and 95% range over draws; ``subsets`` from :func:`study.subset_table`), one panel
    per network, with the random pixels' median and chance."""
    fig, axes = plt.subplots(1, len(networks), figsize=(6.5 * len(networks), 4),
                             squeeze=False)
    pixel_subsets = subsets[subsets.model == "pixels"]
    for ax, net in zip(axes[0], networks):
        sns.pointplot(subsets[subsets.network == net], x="layer",
                      y="identification_50", hue="model", errorbar=("pi", 95), ax=ax,
                      palette=["tab:blue", "tab:orange"])
        ax.axhline(pixel_subsets.identification_50.median(), color="tab:green",
                   ls="--", label=f"{size} random pixels")
        ax.axhline(1 / 50, color="k", ls=":", label="chance")
        ax.set_ylabel(f"identification among 50 ({size} units)")
        ax.set_title(net, loc="left")
        ax.tick_params(axis="x", rotation=70)
        ax.legend()
    fig.tight_layout()
    return fig


def descriptor_identification_figure(headline: Mapping, curves: Mapping,
                                     candidates: Sequence[int],
                                     networks: Sequence[str]):
    """Per network: identification accuracy against the number of candidates
    (``headline[(net, name)]["identification"]``) and, among 50, against the number
    of units (``curves[(net, name)]``, mean +- SD over draws), for the trained and
    untrained descriptor and the pixel components."""
    fig, axes = plt.subplots(len(networks), 2, figsize=(13, 4 * len(networks)),
                             squeeze=False)
    for net, (ax_n, ax_units) in zip(networks, axes):
        for name, colour in MODEL_COLOURS.items():
            ax_n.plot(candidates, headline[(net, name)]["identification"], "o-",
                      color=colour, label=name)
            curve = curves[(net, name)]
            accuracy = curve[curve.n_candidates == 50].groupby("units").accuracy
            ax_units.errorbar(accuracy.mean().index, accuracy.mean(),
                              yerr=accuracy.std(), color=colour, capsize=2,
                              label=f"{name}, N=50")
        ax_n.plot(candidates, 1 / np.array(candidates), "k:", label="chance")
        ax_n.set(xlabel="number of candidate faces N",
                 ylabel="identification accuracy")
        ax_n.set_title(f"{net}: descriptor", loc="left")
        ax_units.set(xscale="log", xlabel="units (random subsets, mean +- SD)",
                     ylabel="identification among 50")
        ax_n.legend()
        ax_units.legend()
    fig.tight_layout()
    return fig


NUISANCE_PANELS = [("share", "between-face share of variance (median unit)"),
                   ("decoding_nuisance", "decoding EV on nuisance renders"),
                   ("identification_nuisance",
                    "identification among 50, nuisance renders")]


def nuisance_figure(table: pd.DataFrame, pixel_scores: Mapping,
                    networks: Sequence[str]):
    """Per network and layer (``table``: network, layer, model and the columns of
    :data:`NUISANCE_PANELS`, ``share`` as the median unit's), trained and untrained,
    with the pixel components' scores (``pixel_scores``, ``share`` per unit)."""
    fig, axes = plt.subplots(len(networks), 3, figsize=(15, 4 * len(networks)),
                             squeeze=False)
    for net, row_axes in zip(networks, axes):
        part = table[table.network == net]
        for ax, (column, title) in zip(row_axes, NUISANCE_PANELS):
            for model, rows in part.groupby("model"):
                ax.plot(rows.layer, rows[column], "o-", color=MODEL_COLOURS[model],
                        label=model)
            value = pixel_scores[column]
            ax.axhline(np.median(value) if column == "share" else value,
                       color="tab:green", ls="--", label="pixel PCs")
            ax.set_title(f"{net}: {title}", loc="left", fontsize=10)
            ax.tick_params(axis="x", rotation=70)
        row_axes[0].legend()
    fig.tight_layout()
    return fig


def alternatives_figure(alternatives: pd.DataFrame):
    """Median encoding EV and pooled decoding EV of every unit set (rows of
    ``alternatives``: network, layer, model, space, encoding_ev, pooled_ev) in every
    space."""
    table = alternatives.assign(**{"unit set": alternatives.network + " "
                                   + alternatives.layer + " (" + alternatives.model
                                   + ")"})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, column, title in [(axes[0], "encoding_ev", "median encoding EV"),
                              (axes[1], "pooled_ev", "decoding EV (pooled)")]:
        sns.barplot(table, y="unit set", x=column, hue="space", ax=ax)
        ax.set_title(title)
        ax.set_ylabel("")
    axes[1].set_yticklabels([])
    fig.tight_layout()
    return fig


def reconstruction_figure(net: str, true_chips, reconstructions: Mapping,
                          columns: int = 6):
    """True faces (first ``columns`` chips) above the faces rendered from the
    parameters decoded from the trained and untrained descriptor and the pixel
    components (``reconstructions[name]`` chips)."""
    rows = [("true faces", true_chips)] + [
        (f"decoded from the {name} descriptor" if name != "pixels" else
         "decoded from pixel PCs", reconstructions[name])
        for name in ["trained", "untrained", "pixels"]]
    fig, axes = plt.subplots(len(rows), columns, figsize=(2 * columns, 8.5))
    for row_axes, (title, chips) in zip(axes, rows):
        for k, ax in enumerate(row_axes):
            _image(ax, chips[k])
        row_axes[0].set_title(f"{net}: {title}", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def distance_figure(distances: pd.DataFrame, networks: Sequence[str]):
    """Histograms of descriptor distances per kind of pair (``distances``: network,
    pairs, distance), one panel per network."""
    fig, axes = plt.subplots(1, len(networks), figsize=(6.5 * len(networks), 3.8),
                             squeeze=False)
    for ax, net in zip(axes[0], networks):
        sns.histplot(distances[distances.network == net], x="distance", hue="pairs",
                     stat="density", common_norm=False, element="step", ax=ax)
        ax.set_title(f"{net}: descriptor distances (unit length)", loc="left")
    fig.tight_layout()
    return fig
