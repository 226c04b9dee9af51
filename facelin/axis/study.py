"""The claim-3 study of whole networks: which units of each layer are studied, every
unit's model comparison beside its matched null, the tables and findings the chapter
reports per network and layer, and Chang & Tsao's engineered-face test of sampled
units beside their matched nulls and simulated exemplar units.

A network's studied variants are keyed ``(network, pretrained)``; the functions take
the layer responses as arrays, so they run on any network (or on simulated units)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..bootstrap import bootstrap_statistic
from .engineered import engineered_ratio, engineered_test
from .models import fit_axis_model
from .simulate import GEOMETRIES, simulate_exemplar_units
from .._validation import real_matrix
from .tuning_curves import (axis_angle, regression_axis, sample_units,
                            shape_preference, sta)
from .verdict import claim3_verdict, unit_table

__all__ = [
    "training_state", "short_layer", "choose_units", "NetworkStudy", "study_network",
    "study_sizes", "variant_verdicts", "verdict_table", "verdict_spans",
    "model_medians", "share_beyond_null", "axes_summary", "engineered_units",
    "engineered_exemplars", "engineered_summary", "layer_findings",
    "engineered_findings", "control_findings", "MODEL_COLUMNS",
]

# The columns of a unit table whose per-layer medians the chapter shows.
MODEL_COLUMNS = ("linear", "axis", "exemplar", "reference", "gain", "gain_null",
                 "exemplar_on_bound", "reference_scale")


def training_state(pretrained: bool) -> str:
    """``"trained"`` or ``"untrained"``: how tables and findings name a variant."""
    return "trained" if pretrained else "untrained"


def short_layer(layer: str) -> str:
    """A layer's name as the figures label it: its first dotted part, without the
    TF.js clipped-rectifier suffix."""
    return layer.split(".")[0].replace("_relu_clip_by_value", "")


def choose_units(layers: dict, n_units: int, whole=(), max_whole: int = 256,
                 seed: int = 0) -> dict:
    """The columns studied in each layer: every varying unit (:func:`sample_units`) of
    the layers named in ``whole`` and of layers of at most ``max_whole`` units, else
    ``n_units`` drawn at random. ``layers`` maps a name to responses (n, units); the
    i-th layer is drawn with ``seed + i``. Returns {name: sorted columns (U,)}."""
    whole = set(whole)
    chosen = {}
    for i, (name, r) in enumerate(layers.items()):
        r = real_matrix(r, f"responses of {name}")
        take_all = name in whole or r.shape[1] <= max_whole
        chosen[name] = sample_units(r, r.shape[1] if take_all else n_units,
                                    seed=seed + i)
    return chosen


@dataclass
class NetworkStudy:
    """One network variant's studied units: ``columns`` {layer: (U,) columns in the
    recorded layer}, ``responses`` {layer: (n, U) float64}, ``table`` (the
    :func:`unit_table` of all of them) and ``seconds`` (wall time of that table: the
    model comparison and flatness tests of every unit and its matched null)."""

    columns: dict
    responses: dict
    table: pd.DataFrame
    seconds: float


def study_network(params, layers: dict, n_units: int, whole=(), max_whole: int = 256,
                  cv: int = 5, seed: int = 0, progress: bool = False) -> NetworkStudy:
    """Every studied unit of one network (:func:`choose_units` of ``layers``, a dict
    {name: responses (n, units)}) beside its matched null, in one :func:`unit_table`
    over the faces ``params`` (n, d)."""
    layers = {name: real_matrix(r, f"responses of {name}")
              for name, r in layers.items()}
    chosen = choose_units(layers, n_units, whole, max_whole, seed=seed)
    responses = {name: layers[name][:, c] for name, c in chosen.items()}
    start = time.perf_counter()
    table = unit_table(params, responses, cv=cv, seed=seed, progress=progress)
    return NetworkStudy(chosen, responses, table, time.perf_counter() - start)


def study_sizes(studies: dict) -> pd.DataFrame:
    """One row per ``(network, pretrained)`` study: ``network``, ``trained``, ``units``,
    ``fits (with nulls)`` and ``seconds`` (rounded)."""
    return pd.DataFrame([{"network": net, "trained": pretrained, "units": len(s.table),
                          "fits (with nulls)": 2 * len(s.table),
                          "seconds": round(s.seconds)}
                         for (net, pretrained), s in studies.items()])


def variant_verdicts(studies: dict, deep_layers: dict, effect_size: float = 0.05,
                     seed: int = 0) -> dict:
    """:func:`claim3_verdict` of every ``(network, pretrained)`` study, judged in its
    network's deep layers (``deep_layers`` maps a network to their names)."""
    return {(net, pretrained): claim3_verdict(s.table, deep_layers[net],
                                              effect_size=effect_size, seed=seed)
            for (net, pretrained), s in studies.items()}


def verdict_table(verdicts: dict) -> pd.DataFrame:
    """The layers of :func:`variant_verdicts` in one table, indexed (network, trained
    or untrained, layer), a column per entry of a layer's verdict (object dtype, as the
    entries mix numbers and words)."""
    parts = {(net, training_state(p)): pd.DataFrame(v["layers"]).T
             for (net, p), v in verdicts.items()}
    return pd.concat(parts, names=["network", "", "layer"])


def verdict_spans(verdict: dict, layers, value: str = "departing_fraction",
                  low: str = "low", high: str = "high") -> str:
    """One line naming, for each of ``layers`` of a :func:`claim3_verdict`, its
    ``value`` and interval ``[low, high]`` at 3 significant digits, e.g.
    ``"pool 0.0898 [0.0547, 0.129], descriptor 0.125 [0.0703, 0.18]"``."""
    missing = [name for name in layers if name not in verdict["layers"]]
    if missing:
        raise ValueError(f"layers {missing} are not in the verdict")
    return ", ".join(f"{short_layer(name)} {verdict['layers'][name][value]:.3g} "
                     f"[{verdict['layers'][name][low]:.3g}, "
                     f"{verdict['layers'][name][high]:.3g}]" for name in layers)


def model_medians(studies: dict, columns=MODEL_COLUMNS) -> pd.DataFrame:
    """Median of each of ``columns`` over the units of each layer, indexed (network,
    trained or untrained, layer), layers in the order studied."""
    return pd.concat({(net, training_state(p)): s.table.groupby("layer", sort=False)
                      [list(columns)].median() for (net, p), s in studies.items()},
                     names=["network", "", "layer"])


def share_beyond_null(table: pd.DataFrame, layers, quantile: float = 0.95) -> float:
    """Share of the units of ``layers`` whose gain (reference minus axis EV) exceeds
    the ``quantile`` of the gains of their layer's matched nulls: the significance
    reading of the model comparison, beside the rule's effect size."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    inside = table.layer.isin(list(layers))
    if not inside.any():
        raise ValueError(f"no units of layers {list(layers)} in the table")
    limit = table.groupby("layer").gain_null.transform(lambda v: v.quantile(quantile))
    return float((table.gain > limit)[inside].mean())


def axes_summary(params, responses: dict, n_shape: int) -> pd.DataFrame:
    """Per layer (``responses`` maps a name to (n, U)): the median angle in degrees
    between a unit's STA and its regression axis (``STA-regression angle``) and the
    median shape preference index of its STA (``SPI``, the first ``n_shape``
    dimensions the shape block)."""
    rows = {}
    for name, r in responses.items():
        axis_sta = sta(params, r)
        angle = axis_angle(axis_sta, regression_axis(params, r))
        spi = shape_preference(axis_sta, n_shape)
        rows[name] = {"STA-regression angle": float(angle.median()),
                      "SPI": float(spi.median())}
    return pd.DataFrame(rows).T


def engineered_units(params, responses, columns, respond, n_units: int, steps,
                     seed: int = 0, label: str = "CNN unit") -> dict:
    """Chang & Tsao's engineered-face test of ``n_units`` units drawn at random
    (:func:`sample_units`) among ``responses`` (n, U), beside their matched nulls.

    ``columns`` (U,) says where each column of ``responses`` sits in what ``respond``
    returns: ``respond`` maps faces (m, d) to the responses (m, units) of the whole
    layer (for a CNN: render the faces, run the network). The matched nulls are each
    unit's :func:`fit_axis_model` with its residual noise (drawn with ``seed``, new
    faces with ``seed + 1``). Returns {label: table, "matched null": table} of
    :func:`engineered_test` tables."""
    x = real_matrix(params, "params")
    r = real_matrix(responses, "responses")
    pick = sample_units(r, n_units, seed=seed)
    r, own = r[:, pick], torch.as_tensor(np.asarray(columns))[pick]
    unit = engineered_test(x, r, lambda f: real_matrix(respond(f), "responses")[:, own],
                           steps, seed=seed)
    fit = fit_axis_model(x, r)
    null = engineered_test(x, fit.sample(x, seed), lambda f: fit.sample(f, seed + 1),
                           steps, seed=seed)
    return {label: unit, "matched null": null}


def engineered_exemplars(params, n_units: int, steps, noise: float = 0.3,
                         width: float = 0.6, seed: int = 0) -> dict:
    """The engineered-face test of simulated exemplar units of each geometry
    (:func:`simulate_exemplar_units`, drawn with ``seed + 7``, their responses to the
    engineered faces with ``seed + 8``). Returns {("simulated", geometry): {"exemplar
    unit": :func:`engineered_test` table}}."""
    x = real_matrix(params, "params")
    out = {}
    for geometry in GEOMETRIES:
        r, units = simulate_exemplar_units(x, n_units, noise=noise, width=width,
                                           geometry=geometry, seed=seed + 7)
        out[("simulated", geometry)] = {"exemplar unit": engineered_test(
            x, r, lambda f, units=units: units.sample(f, seed + 8), steps, seed=seed)}
    return out


def engineered_summary(tests: dict, seed: int = 0) -> pd.DataFrame:
    """One row per group and kind of units of ``tests`` ({(network, layer): {kind:
    :func:`engineered_test` table}}): ``network``, ``layer``, ``units`` (the kind),
    ``n`` (units with a ratio), ``median ratio`` (of :func:`engineered_ratio`) with its
    bootstrap interval over units ``low`` and ``high``, and ``axis change`` (median
    response change along the axis, in response SDs)."""
    rows = []
    for (net, layer), by_kind in tests.items():
        for kind, t in by_kind.items():
            ratio = engineered_ratio(t).to_numpy()
            if len(ratio) == 0:
                raise ValueError(f"no unit of {net} {layer} ({kind}) changes along its "
                                 "axis: no ratio to summarise")
            median, low, high = bootstrap_statistic(ratio, seed=seed)
            rows.append({"network": net, "layer": layer, "units": kind,
                         "n": len(ratio), "median ratio": median, "low": low,
                         "high": high,
                         "axis change": t[t.direction == "axis"].change.median()})
    return pd.DataFrame(rows)


def layer_findings(table: pd.DataFrame, verdict: dict) -> dict:
    """Per layer of one study, what the findings record: its :func:`claim3_verdict`
    entries (units, departing fraction and interval, excess gain, verdict) and, from
    its unit ``table``, the shares of exemplars on their bound and of units (and nulls)
    called flat."""
    grouped = table.groupby("layer")
    bound = grouped.exemplar_on_bound.mean()
    flat = grouped[["flat", "flat_null"]].mean()
    return {name: {"units": v["units"], "departing_fraction": v["departing_fraction"],
                   "departing_low": v["low"], "departing_high": v["high"],
                   "excess_gain": v["excess_gain"], "verdict": v["verdict"],
                   "exemplar_on_bound": float(bound[name]),
                   "flat": float(flat.flat[name]),
                   "flat_null": float(flat.flat_null[name])}
            for name, v in verdict["layers"].items()}


def engineered_findings(summary: pd.DataFrame, network: str) -> dict:
    """The rows of an :func:`engineered_summary` for one ``network`` (or
    ``"simulated"``), keyed "layer, units"."""
    rows = summary[summary.network == network]
    return {f"{row.layer}, {row.units}": {"median_ratio": row["median ratio"],
                                          "low": row.low, "high": row.high,
                                          "axis_change": row["axis change"]}
            for _, row in rows.iterrows()}


def control_findings(controls: pd.DataFrame, kind: str) -> dict:
    """The :func:`control_accuracy` rows of one ``kind`` of population: axis
    populations keyed by noise, exemplar populations by geometry, then width."""
    rows = controls[controls.kind == kind]
    if rows.empty:
        raise ValueError(f"no control populations of kind {kind!r}")
    keys = ["flatness", "comparison", "rule", "departing_fraction", "low", "high",
            "exemplar_on_bound"]
    if kind == "axis":
        return {f"noise {row.noise}": row[keys].to_dict() for _, row in rows.iterrows()}
    return {g: {f"width {row.width}": row[keys].to_dict() for _, row in part.iterrows()}
            for g, part in rows.groupby("geometry")}
