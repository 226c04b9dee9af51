"""The claim-3 chapter's figures: departing fractions per layer, each unit's gain
beside its matched null's, Chang & Tsao's tuning curves of sampled units, and the
engineered faces. Each function returns its matplotlib Figure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .engineered import engineered_ratio
from .models import matched_null
from .study import short_layer, training_state
from .._validation import real_matrix
from .tuning_curves import orthogonal_axis, sta, tuning

__all__ = [
    "departing_figure", "gain_figure", "tuning_figure", "engineered_figure",
    "engineered_example_figure",
]


def _networks(keys) -> list:
    """The networks of ``(network, ...)`` keys, in order of first appearance."""
    return list(dict.fromkeys(key[0] for key in keys))


def departing_figure(verdicts: dict, holds_at: float = 0.5, fails_at: float = 0.2):
    """One panel per network: each layer's departing fraction with its 95% interval,
    trained and untrained side by side, over the bands where a layer "holds" (red) and
    "does not hold" (green). ``verdicts``: {(network, pretrained): claim3_verdict}."""
    import matplotlib.pyplot as plt
    networks = _networks(verdicts)
    fig, axes = plt.subplots(1, len(networks), figsize=(6 * len(networks), 3.4),
                             squeeze=False)
    for ax, net in zip(axes[0], networks):
        for shift, pretrained in ((-0.15, True), (0.15, False)):
            if (net, pretrained) not in verdicts:
                continue
            t = pd.DataFrame(verdicts[(net, pretrained)]["layers"]).T
            t = t.astype({"departing_fraction": float, "low": float, "high": float})
            f = t.departing_fraction
            ax.errorbar(np.arange(len(t)) + shift, f, yerr=[f - t.low, t.high - f],
                        fmt="o", capsize=3, label=training_state(pretrained))
        ax.axhspan(holds_at, 1, color="tab:red", alpha=0.08)
        ax.axhspan(0, fails_at, color="tab:green", alpha=0.08)
        ax.set_xticks(range(len(t)), [short_layer(n) for n in t.index], rotation=30)
        ax.set(title=net, ylabel="departing fraction (95% CI)", ylim=(0, 1))
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def gain_figure(studies: dict, deep_layers: dict, effect_size: float = 0.05,
                pretrained: bool = True):
    """One panel per network: each deep unit's gain (reference minus axis EV) against
    its matched null's, coloured by layer, with the line the rule's ``effect_size``
    above the null's gain. ``studies``: {(network, pretrained): NetworkStudy};
    ``deep_layers``: {network: layer names}."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    networks = [net for net in _networks(studies) if (net, pretrained) in studies]
    fig, axes = plt.subplots(1, len(networks), figsize=(6 * len(networks), 3.4),
                             squeeze=False)
    for ax, net in zip(axes[0], networks):
        t = studies[(net, pretrained)].table
        t = t[t.layer.isin(deep_layers[net])]
        sns.scatterplot(data=t, x="gain_null", y="gain", hue="layer", s=10, ax=ax)
        lo, hi = float(t.gain_null.min()), float(t.gain_null.max())
        ax.plot([lo, hi], [lo + effect_size, hi + effect_size], "k--", lw=1)
        ax.set(title=f"{net}, {training_state(pretrained)}, deep layers",
               xlabel="gain of the matched null (EV)",
               ylabel="gain of the CNN unit (EV)")
    fig.tight_layout()
    return fig


def tuning_figure(params, studies: dict, layers: dict, n_units: int = 3,
                  seed: int = 0):
    """A row per network: for ``n_units`` units drawn at random (numpy generator
    ``seed``) from its layer ``layers[network]``, the binned tuning along the unit's
    STA and along the longest orthogonal axis (:func:`tuning`, with standard errors),
    the matched null's curves (drawn with ``seed``) in grey. ``studies``: {network:
    NetworkStudy}; panels are titled with the unit's column in its layer."""
    import matplotlib.pyplot as plt
    x = real_matrix(params, "params")
    fig, axes = plt.subplots(len(studies), 2 * n_units,
                             figsize=(2.5 * n_units * 2, 2.6 * len(studies)),
                             squeeze=False)
    for row, (net, study) in zip(axes, studies.items()):
        r = study.responses[layers[net]]
        picks = np.random.default_rng(seed).choice(r.shape[1], n_units, replace=False)
        for k, j in enumerate(picks):
            unit = r[:, j:j + 1]
            null = matched_null(x, unit, seed=seed)
            axis_sta = sta(x, unit)
            orthogonal = orthogonal_axis(x, axis_sta)
            column = int(study.columns[layers[net]][j])
            for ax, direction, label in ((row[2 * k], axis_sta, "STA"),
                                         (row[2 * k + 1], orthogonal, "orthogonal")):
                for responses, colour in ((null, "0.6"), (unit, "tab:blue")):
                    t = tuning(x, responses, direction)
                    ax.errorbar(t.centres[0], t.mean[0], t.sem[0], color=colour, lw=1)
                ax.set_title(f"{net} #{column}: {label}", fontsize=8)
    fig.tight_layout()
    return fig


def engineered_figure(tests: dict):
    """Box plots of the orthogonal/axis response-change ratio (log scale) per group and
    kind of units of ``tests`` ({(network, layer): {kind: engineered_test table}})."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    long = pd.concat([engineered_ratio(t).rename("ratio").to_frame().assign(
        group=f"{net}\n{short_layer(layer)}", units=kind)
        for (net, layer), by_kind in tests.items() for kind, t in by_kind.items()])
    fig, ax = plt.subplots(figsize=(12, 3.5))
    sns.boxplot(data=long, x="group", y="ratio", hue="units", fliersize=2, ax=ax)
    ax.set(xlabel="", ylabel="orthogonal / axis response change", yscale="log")
    fig.tight_layout()
    return fig


def engineered_example_figure(chips, responses, steps, sd: float):
    """One unit's engineered faces and its responses to them: ``chips`` (D * S, C, H,
    W) the faces of D series of S ``steps`` (series after series, the first along the
    axis), ``responses`` (D, S) the unit's responses, drawn in units of its response SD
    ``sd`` over the stimuli. A row per series: its faces, then the response curve."""
    import matplotlib.pyplot as plt
    curve = np.asarray(responses, dtype=float) / sd
    steps = np.asarray(steps, dtype=float)
    n_series, n_steps = curve.shape
    if n_steps != len(steps) or len(chips) != n_series * n_steps:
        raise ValueError(f"need {n_series} x {len(steps)} responses and as many chips, "
                         f"got responses {curve.shape} and {len(chips)} chips")
    fig, axes = plt.subplots(n_series, n_steps + 1, squeeze=False,
                             figsize=(11 * (n_steps + 1) / 6, 5.6 * n_series / 3))
    for d in range(n_series):
        for s in range(n_steps):
            axes[d, s].imshow(np.asarray(chips[d * n_steps + s, 0]), cmap="gray")
            axes[d, s].set_xticks([]), axes[d, s].set_yticks([])
        axes[d, 0].set_ylabel("axis" if d == 0 else f"orthogonal {d}")
        axes[d, n_steps].plot(steps, curve[d], "o-")
        axes[d, n_steps].set(ylim=(curve.min() - 0.2, curve.max() + 0.2),
                             xlabel="step (SD)")
    fig.tight_layout()
    return fig
