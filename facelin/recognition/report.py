"""Tables, figures and findings of claim 2's comparison: the chapter's reporting,
from :class:`Comparison` objects and :func:`nuisance_sweep` tables."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import STATISTICS, verify
from .routes import Comparison
from .verdict import CONDITIONS, MARGINS, VERDICT_RULE

__all__ = ["SHOWN_ROUTES", "NUISANCE_KINDS", "route_palette", "interval_text",
           "summary_table", "rank1_by_distance", "roc_figure", "sweep_figure",
           "sweep_rank1_at", "claim2_findings"]

# the routes the figures draw: the CNN, the two controls and one of each kind of route
SHOWN_ROUTES = ("CNN", "untrained CNN", "pixels (PCA)", "decoded params",
                "fitted params", "encoded (fitted-param fit)", "true params")
# the three ways the sweep grows the nuisance (`nuisance_sweep`'s ``nuisance`` column)
NUISANCE_KINDS = ("image", "jitter", "both")


def route_palette(routes: Sequence[str] = SHOWN_ROUTES) -> dict:
    """Route name -> RGB colour, matplotlib's ``tab10`` in the order of ``routes`` (at
    most ten)."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    if len(routes) > len(colours):
        raise ValueError(f"at most {len(colours)} routes get a colour, got "
                         f"{len(routes)}")
    return dict(zip(routes, colours))


def _palette(routes: Sequence[str], palette: dict | None) -> dict:
    """``palette``, or :func:`route_palette` of :data:`SHOWN_ROUTES` followed by any
    other of ``routes``: a route keeps its colour from figure to figure."""
    if palette is not None:
        return palette
    return route_palette([*SHOWN_ROUTES, *(r for r in routes if r not in SHOWN_ROUTES)])


def interval_text(row, stat: str, digits: int = 3) -> str:
    """``"value [low, high]"`` of ``stat`` in a :func:`bootstrap` row (a Series or dict
    with ``stat``, ``stat_low`` and ``stat_high``), each with ``digits`` decimals."""
    return (f"{row[stat]:.{digits}f} [{row[f'{stat}_low']:.{digits}f}, "
            f"{row[f'{stat}_high']:.{digits}f}]")


def summary_table(results: pd.DataFrame, statistics: Sequence[str] = STATISTICS
                  ) -> pd.DataFrame:
    """A :class:`Comparison`'s ``results`` as text, one row per route: its distance and
    gallery size, then for each statistic ``"value [low, high]"`` and the paired
    difference ``"CNN - route, <stat>"`` with its interval."""
    out = pd.DataFrame({"distance": results["distance"], "gallery": results["gallery"]})
    for stat in statistics:
        out[stat] = [interval_text(row, stat) for _, row in results.iterrows()]
        out[f"CNN - route, {stat}"] = [interval_text(row, f"{stat}_diff")
                                       for _, row in results.iterrows()]
    return out


def rank1_by_distance(comparison: Comparison) -> pd.DataFrame:
    """Evaluation rank-1 of every route (rows, in the order of ``results``) with every
    distance (columns) as text with 3 decimals; ``" *"`` marks the distance chosen on
    the fitting identities."""
    table = comparison.distances.copy()
    table["rank1"] = [f"{r:.3f}{' *' if c else ''}"
                      for r, c in zip(table.rank1, table.chosen)]
    wide = table.pivot(index="route", columns="distance", values="rank1")
    return wide.loc[comparison.results.index]


def roc_figure(comparisons: dict, networks: Sequence[str],
               routes: Sequence[str] = SHOWN_ROUTES,
               conditions: Sequence[str] = CONDITIONS, palette: dict | None = None):
    """ROC curves (true-accept rate against false-accept rate on a log axis, with the
    operating points 1e-2 and 1e-3 marked) of ``routes`` on the evaluation identities,
    each with its chosen distance: one row of panels per network, one panel per
    landmark condition. ``comparisons`` maps (network, condition) -> Comparison.
    Returns the figure."""
    import matplotlib.pyplot as plt

    palette = _palette(routes, palette)
    fig, axes = plt.subplots(len(networks), len(conditions),
                             figsize=(5.5 * len(conditions), 4.2 * len(networks)),
                             squeeze=False)
    for row, net in zip(axes, networks):
        for ax, condition in zip(row, conditions):
            comparison = comparisons[net, condition]
            for name in routes:
                x, metric, _ = comparison.chosen[name]
                v = verify(x, labels=comparison.labels, metric=metric)
                # a FAR of 0 has no place on a log axis: drawn at 1e-6, left of the view
                ax.plot(np.maximum(v.far, 1e-6), v.tar, color=palette[name], lw=1.4,
                        label=f"{name} (AUC {v.auc:.3f})")
            for far in (1e-2, 1e-3):
                ax.axvline(far, color="grey", lw=0.5, ls=":")
            ax.set(xscale="log", xlim=(1e-5, 1), ylim=(0, 1.01),
                   xlabel="false-accept rate", ylabel="true-accept rate",
                   title=f"{net}, {condition} landmarks")
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def sweep_figure(sweep: pd.DataFrame, network: str, routes: Sequence[str],
                 conditions: Sequence[str] = CONDITIONS, palette: dict | None = None):
    """Rank-1 against nuisance strength for one network of a sweep (the rows of
    :func:`nuisance_sweep` with a ``network`` column), with its bootstrap band: one
    row of panels per landmark condition, one column per kind of nuisance
    (:data:`NUISANCE_KINDS`), one line per route. Returns the figure."""
    import matplotlib.pyplot as plt

    palette = _palette(routes, palette)
    fig, axes = plt.subplots(len(conditions), len(NUISANCE_KINDS), figsize=(12, 7),
                             sharex=True, sharey=True, squeeze=False)
    mine = sweep[sweep.network == network]
    if mine.empty:
        raise ValueError(f"the sweep has no rows of {network!r}")
    for ax_row, condition in zip(axes, conditions):
        for ax, kind in zip(ax_row, NUISANCE_KINDS):
            part = mine[(mine.condition == condition) & (mine.nuisance == kind)]
            for name in routes:
                line = part[part.route == name].sort_values("strength")
                ax.plot(line.strength, line.rank1, "o-", ms=3, color=palette[name],
                        label=name)
                ax.fill_between(line.strength, line.rank1_low, line.rank1_high,
                                color=palette[name], alpha=0.15, lw=0)
            ax.set(title=f"{kind} nuisance, {condition} landmarks", ylim=(0, 1.02))
    for ax in axes[-1]:
        ax.set_xlabel("nuisance strength (1 = default)")
    for ax in axes[:, 0]:
        ax.set_ylabel("rank-1 identification")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(network)
    fig.tight_layout()
    return fig


def sweep_rank1_at(sweep: pd.DataFrame, strength: float) -> dict:
    """Rank-1 of every route at one nuisance strength of a sweep (the rows of
    :func:`nuisance_sweep` with a ``network`` column): (network, condition), in the
    sweep's order -> table of routes (rows) by kind of nuisance (columns, in the order
    of :data:`NUISANCE_KINDS`)."""
    at = sweep[np.isclose(sweep.strength, strength)]
    if at.empty:
        raise ValueError(f"the sweep has no strength {strength}; it has "
                         f"{sorted(sweep.strength.unique())}")
    return {key: part.pivot(index="route", columns="nuisance", values="rank1")[
        list(NUISANCE_KINDS)]
        for key, part in at.groupby(["network", "condition"], sort=False)}


def _by_route(table: pd.DataFrame) -> dict:
    return {route: row.to_dict() for route, row in table.iterrows()}


def claim2_findings(*, labels, fitting, undetected, comparisons: dict, swapped: dict,
                    detected_only: dict, best: dict, agreement: dict,
                    sweep_at_max: dict, verdicts: dict, reasons: dict,
                    n_per_identity: int, n_resamples: int) -> dict:
    """What claim 2's chapter saves (`facelin.findings.save`).

    labels : (n,) identity of each image; fitting : (n,) bool, the fitting images;
    undetected : indices of the images dlib's detector missed; comparisons, swapped :
    (network, condition) -> :class:`Comparison` on the split and the swapped split;
    detected_only : network -> :meth:`Comparison.on` table of the detected faces;
    best : (network, condition) -> best image route (:func:`best_route`); agreement :
    network -> :func:`real_face_agreement`; sweep_at_max : :func:`sweep_rank1_at`;
    verdicts, reasons : network -> :func:`claim2_verdict`'s verdict and reason.
    The networks are those of ``verdicts``.
    """
    labels = np.asarray(labels)
    fitting = np.asarray(fitting, dtype=bool)
    if fitting.shape != labels.shape:
        raise ValueError(f"fitting {fitting.shape} must mark the labels {labels.shape}")
    return {
        "n_fitting_identities": int(len(np.unique(labels[fitting]))),
        "n_evaluation_identities": int(len(np.unique(labels[~fitting]))),
        "n_per_identity": int(n_per_identity), "n_resamples": int(n_resamples),
        "undetected_by_dlib": int(len(undetected)), "n_images": int(len(labels)),
        "networks": {net: {
            **{c: _by_route(comparisons[net, c].results) for c in CONDITIONS},
            "detected_faces_only": _by_route(detected_only[net]),
            "swapped_split": {c: _by_route(swapped[net, c].results)
                              for c in CONDITIONS},
            "best_image_route": {c: best[net, c] for c in CONDITIONS},
        } for net in verdicts},
        "real_faces_rank_correlation": {net: {k: list(v) for k, v in values.items()}
                                        for net, values in agreement.items()},
        "sweep_rank1_at_max": {f"{net}, {c}": table.to_dict()
                               for (net, c), table in sweep_at_max.items()},
        "margins": MARGINS,
        "verdict": dict(verdicts), "verdict_reason": dict(reasons),
        "verdict_rule": VERDICT_RULE,
    }
