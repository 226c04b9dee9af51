"""Claim 3's decision rule: every unit beside its matched null, which units depart
from the axis model (by effect size), each layer's departing fraction with a bootstrap
interval over units, the network's verdict, and how often the rule labels the control
populations right."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..bootstrap import bootstrap_fraction, bootstrap_statistic
from .models import chunks, compare_models, matched_null
from .._validation import real_matrix
from .tuning_curves import flatness, paired

__all__ = [
    "unit_table", "departing", "layer_verdict", "verdict_rule", "claim3_verdict",
    "control_accuracy",
]


def unit_table(params, layers: dict, cv: int = 5, n_centres: int = 300, seed: int = 0,
               progress: bool = False) -> pd.DataFrame:
    """Every unit of every layer beside its matched null (:func:`matched_null`), through
    :func:`flatness` and :func:`compare_models` (one call for all units and nulls).

    ``layers`` maps a name to responses (n, U). One row per unit: ``layer``, ``unit``
    (column in its layer), the four models' EVs, ``gain`` (reference EV minus axis EV),
    ``exemplar_on_bound``, ``reference_scale``, ``reference_alpha``, ``depth_ratio`` and
    ``flat``, and the null's ``gain_null``, ``depth_ratio_null``, ``flat_null``,
    ``axis_null``, ``reference_null``."""
    x = real_matrix(params, "params")
    real = {name: paired(x, r)[1] for name, r in layers.items()}
    if not real:
        raise ValueError("no layers given")
    nulls = {name: matched_null(x, r, seed=seed) for name, r in real.items()}
    both = torch.cat(list(real.values()) + list(nulls.values()), 1)
    models = compare_models(x, both, cv=cv, n_centres=n_centres, seed=seed,
                            progress=progress)
    flat = pd.concat([flatness(x, both[:, s]) for s in chunks(both.shape[1])],
                     ignore_index=True)
    total = both.shape[1] // 2
    table = models.iloc[:total].reset_index(drop=True)
    table.insert(0, "layer", [n for n, r in real.items() for _ in range(r.shape[1])])
    table.insert(1, "unit",
                 np.concatenate([np.arange(r.shape[1]) for r in real.values()]))
    table["gain"] = table.reference - table.axis
    table["depth_ratio"] = flat.depth_ratio.iloc[:total].to_numpy()
    table["flat"] = flat.flat.iloc[:total].to_numpy()
    null = models.iloc[total:].reset_index(drop=True)
    table["axis_null"] = null.axis.to_numpy()
    table["reference_null"] = null.reference.to_numpy()
    table["gain_null"] = (null.reference - null.axis).to_numpy()
    table["depth_ratio_null"] = flat.depth_ratio.iloc[total:].to_numpy()
    table["flat_null"] = flat.flat.iloc[total:].to_numpy()
    return table


def departing(table: pd.DataFrame, effect_size: float = 0.05, quantile: float = 0.95
              ) -> pd.DataFrame:
    """Which units depart from the axis model, by the chapter's rule: ``by_gain`` when
    the reference's gain over the axis model exceeds the unit's matched null's gain by
    at least ``effect_size`` (EV), ``by_orthogonal`` when its orthogonal/STA depth ratio
    exceeds the ``quantile`` of its layer's matched nulls' ratios, ``departs`` when
    either holds. ``table`` needs ``layer``, ``gain``, ``gain_null``, ``depth_ratio``
    and ``depth_ratio_null`` (as :func:`unit_table` gives)."""
    needed = {"layer", "gain", "gain_null", "depth_ratio", "depth_ratio_null"}
    missing = needed - set(table)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}")
    if not 0 < quantile < 1 or effect_size < 0:
        raise ValueError("need 0 < quantile < 1 and effect_size >= 0")
    values = table[["gain", "gain_null", "depth_ratio", "depth_ratio_null"]].to_numpy()
    if not np.isfinite(values).all():
        raise ValueError("table holds NaN or Inf in the gain or depth-ratio columns")
    limit = table.groupby("layer").depth_ratio_null.transform(
        lambda v: v.quantile(quantile))
    by_gain = (table.gain - table.gain_null) >= effect_size
    by_orthogonal = table.depth_ratio > limit
    return pd.DataFrame({"layer": table.layer, "by_gain": by_gain,
                         "by_orthogonal": by_orthogonal,
                         "departs": by_gain | by_orthogonal})



def layer_verdict(low: float, high: float, holds_at: float = 0.5, fails_at: float = 0.2
                  ) -> str:
    """A layer's verdict from the interval of its departing fraction: ``"holds"`` when
    even its lower end reaches ``holds_at`` (a majority of units depart), ``"does not
    hold"`` when even its upper end stays at or below ``fails_at``, otherwise ``"partly
    holds"``."""
    if not 0 <= low <= high <= 1:
        raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
    if low >= holds_at:
        return "holds"
    if high <= fails_at:
        return "does not hold"
    return "partly holds"


def verdict_rule(effect_size: float = 0.05, quantile: float = 0.95,
                 holds_at: float = 0.5, fails_at: float = 0.2) -> str:
    """The decision rule of :func:`claim3_verdict`, in words, with its thresholds."""
    return (f"A unit departs from the axis model when its reference-minus-axis gain "
            f"in cross-validated EV exceeds its matched null's by at least "
            f"{effect_size:g}, or its orthogonal/STA depth ratio exceeds the "
            f"{quantile:.0%} quantile of its layer's matched nulls. A layer holds when "
            f"the lower end of the 95% bootstrap interval (over units) of its "
            f"departing fraction is at least {holds_at:g}, does not hold when the "
            f"upper end is at most {fails_at:g}, and partly holds otherwise. Claim 3 "
            f"holds for a network when every deep layer holds, does not hold when "
            f"every deep layer does not hold, and partly holds otherwise.")


def claim3_verdict(table: pd.DataFrame, deep_layers, effect_size: float = 0.05,
                   quantile: float = 0.95, holds_at: float = 0.5, fails_at: float = 0.2,
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """Claim 3 ("CNN units are not well described by the axis model") for one network.

    Each unit departs or not by :func:`departing`; each layer gets its departing
    fraction with a bootstrap interval over units and a :func:`layer_verdict`; the claim
    ``"holds"`` when every layer of ``deep_layers`` holds, ``"does not hold"`` when none
    of them departs (every one "does not hold"), and ``"partly holds"`` otherwise.
    Returns {"layers": {layer: {units, departing_fraction, low, high, by_gain,
    by_orthogonal, excess_gain (median of the unit's gain minus its null's, with
    excess_gain_low and excess_gain_high, its bootstrap interval), verdict}},
    "verdict": str}."""
    flags = departing(table, effect_size, quantile)
    deep_layers = list(deep_layers)
    missing = [name for name in deep_layers if name not in set(flags.layer)]
    if not deep_layers or missing:
        raise ValueError(f"deep layers {missing or deep_layers} have no units in the "
                         "table")
    excess = table.gain - table.gain_null
    layers = {}
    for name, part in flags.groupby("layer", sort=False):
        fraction, low, high = bootstrap_fraction(part.departs, n_boot, seed=seed)
        gain, gain_low, gain_high = bootstrap_statistic(excess[part.index], np.median,
                                                        n_boot, seed=seed)
        layers[name] = {"units": len(part), "departing_fraction": fraction, "low": low,
                        "high": high, "by_gain": float(part.by_gain.mean()),
                        "by_orthogonal": float(part.by_orthogonal.mean()),
                        "excess_gain": gain, "excess_gain_low": gain_low,
                        "excess_gain_high": gain_high,
                        "verdict": layer_verdict(low, high, holds_at, fails_at)}
    deep = [layers[name]["verdict"] for name in deep_layers]
    if all(v == "holds" for v in deep):
        verdict = "holds"
    elif all(v == "does not hold" for v in deep):
        verdict = "does not hold"
    else:
        verdict = "partly holds"
    return {"layers": layers, "verdict": verdict}



def control_accuracy(table: pd.DataFrame, populations: dict, effect_size: float = 0.05,
                     quantile: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How often each test labels the simulated units of :func:`control_populations`
    correctly, from their :func:`unit_table` (its layers named as the populations). One
    row per population: ``flatness`` (share called flat if axis units, not flat if
    exemplar units), ``comparison`` (axis EV above exemplar EV, or below), ``rule`` (not
    departing, or departing, by :func:`departing`), the departing fraction with its
    bootstrap interval and the layer verdict, and ``exemplar_on_bound``."""
    flags = departing(table, effect_size, quantile)
    rows = []
    for label, meta in populations.items():
        part, flag = table[table.layer == label], flags[flags.layer == label]
        if part.empty:
            raise ValueError(f"population {label!r} has no units in the table")
        is_axis = meta["kind"] == "axis"
        fraction, low, high = bootstrap_fraction(flag.departs, seed=seed)
        right_model = (part.axis > part.exemplar) == is_axis
        rows.append({"population": label, "kind": meta["kind"],
                     "geometry": meta["geometry"], "width": meta["width"],
                     "noise": meta["noise"],
                     "flatness": float((part.flat == is_axis).mean()),
                     "comparison": float(right_model.mean()),
                     "rule": float((flag.departs != is_axis).mean()),
                     "departing_fraction": fraction, "low": low, "high": high,
                     "verdict": layer_verdict(low, high),
                     "exemplar_on_bound": float(part.exemplar_on_bound.mean())})
    return pd.DataFrame(rows)
