"""The reproduction scorecard: each claim and anchor number beside what the book measured.

Every measured value is read from the findings files that the chapters write when they
execute (:mod:`facelin.findings`); a chapter that has not been executed, or that did not
save a quantity, shows as "not measured" rather than failing. A chapter may save its own
``verdict`` ("holds", "partly", "does not hold") and ``verdict_reason``; otherwise the
row's stated rule decides, from the saved numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import findings

__all__ = ["Row", "ROWS", "table", "claim3_verdict", "lookup"]

NOT_MEASURED = "not measured"
VERDICTS = ("holds", "partly", "does not hold")


def lookup(data: dict | None, *path):
    """``data[path[0]][path[1]]...``, or None when the chapter or any key is missing."""
    value = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def claim3_verdict(data: dict, deep=("pool", "descriptor"), majority: float = 0.5) -> tuple:
    """Claim 3 from the axis chapter's findings: in the deep layers, does a majority of the
    trained network's units fail the axis model beyond their matched nulls by the model
    comparison (``beyond_null_deficit``) and by Chang & Tsao's flatness test
    (``tuned_orth_real`` above ``tuned_orth_null``)? Both: "holds"; one: "partly";
    neither: "does not hold". Returns (verdict, reason)."""
    trained = data.get("trained", {})
    missing = [layer for layer in deep if layer not in trained]
    if missing:
        raise KeyError(f"the axis chapter's findings lack layers {missing}")
    by_models = all(trained[l]["beyond_null_deficit"] > majority for l in deep)
    by_flatness = all(trained[l]["tuned_orth_real"] - trained[l]["tuned_orth_null"] > majority
                      for l in deep)
    verdict = VERDICTS[0] if by_models and by_flatness else (
        VERDICTS[1] if by_models or by_flatness else VERDICTS[2])
    reason = (f"model comparison {'rejects' if by_models else 'does not reject'} the axis "
              f"model for most deep units; orthogonal flatness "
              f"{'rejects' if by_flatness else 'does not reject'} it")
    return verdict, reason


@dataclass
class Row:
    """One scorecard row: what is compared, the anchor's value and source, the chapter
    that measures ours, and ``measure(findings) -> (text, verdict or None)``."""

    item: str
    anchor: str
    source: str
    chapter: str
    measure: Callable[[dict], tuple]


def _claim1(d):
    ev = lookup(d, "median_encoding_ev", "descriptor")
    pooled = lookup(d, "decoding_pooled_ev")
    units = lookup(d, "units_for_80pct_n50", "trained")
    text = (f"descriptor median encoding EV {_fmt(ev)}; decoding EV (pooled) "
            f"{_fmt(pooled)}; units for 80% identification among 50: {_fmt(units)}")
    return text, None


def _claim2(d):
    sets = lookup(d, "feature_sets") or {}
    parts = [f"{name}: rank-1 {_fmt(lookup(row, 'rank1'))}, AUC {_fmt(lookup(row, 'auc'))}"
             for name, row in sets.items()]
    return ("; ".join(parts) if parts else NOT_MEASURED), None


def _claim3(d):
    descriptor = lookup(d, "trained", "descriptor") or {}
    text = (f"descriptor: {_fmt(descriptor.get('beyond_null_deficit'))} of units beyond "
            f"their matched axis null (model comparison), "
            f"{_fmt(descriptor.get('tuned_orth_real'))} not flat orthogonally "
            f"(null {_fmt(descriptor.get('tuned_orth_null'))}); median EV axis "
            f"{_fmt(descriptor.get('ev_axis'))}, reference {_fmt(descriptor.get('ev_reference'))}")
    verdict, reason = claim3_verdict(d)
    return f"{text} ({reason})", verdict


def _flat(d):
    trained = lookup(d, "trained") or {}
    flat = {layer: 1 - v["tuned_orth_real"] for layer, v in trained.items()}
    if not flat:
        return NOT_MEASURED, None
    change_axis = lookup(d, "engineered_change_axis")
    change_orth = lookup(d, "engineered_change_orthogonal")
    text = (f"flat in {min(flat.values()):.2f}-{max(flat.values()):.2f} of units per layer; "
            f"engineered faces change a unit's response {_fmt(change_orth, 1)} SD "
            f"orthogonally vs {_fmt(change_axis, 1)} SD along its axis")
    return text, VERDICTS[1] if min(flat.values()) > 0.5 else VERDICTS[2]


def _faces(d):
    faces, dims = lookup(d, "faces"), lookup(d, "dims")
    return (f"{_fmt(faces)} faces, {_fmt(dims)}-d ({_fmt(lookup(d, 'shape_dims'))} shape + "
            f"{_fmt(lookup(d, 'appearance_dims'))} appearance)"), None


def _units(d):
    n, layers = lookup(d, "units_per_layer"), lookup(d, "layers")
    if n is None or layers is None:
        return NOT_MEASURED, None
    return f"{n} units per layer in {len(layers)} layers (axis tests)", None


def _recon_units(d):
    return f"units for 80% identification among 50: {_fmt(lookup(d, 'units_for_80pct_n50'))}", None


def _lfw(d):
    """LFW is not at hand, so dlib's figure is quoted; what the book measures is whether the
    port computes dlib's descriptors (``descriptor_max_abs_diff``, saved by the CNN
    chapter)."""
    diff = lookup(d, "descriptor_max_abs_diff")
    if diff is None:
        return NOT_MEASURED, None
    return f"LFW not re-measured; port vs dlib, largest descriptor difference {diff:.1e}", None


ROWS = [
    Row("Claim 1: linear encoding and decoding in the parameter space", "linear code in IT",
        "Chang & Tsao 2017", "claim1_linear_code", _claim1),
    Row("Claim 2: recognition by the linear model close to the CNN", "-", "the paper",
        "claim2_recognition", _claim2),
    Row("Claim 3: CNN units not adequately modelled by the axis model",
        "IT cells are axis units", "Chang & Tsao 2017", "claim3_axis_model", _claim3),
    Row("face space and stimuli", "50-d (25 shape + 25 appearance); 2,000 faces",
        "Chang & Tsao 2017", "claim3_axis_model", _faces),
    Row("units recorded", "205 cells (AM 99, ML/MF 106)", "Chang & Tsao 2017",
        "claim3_axis_model", _units),
    Row("cells needed to reconstruct faces linearly", "about 200", "Chang & Tsao 2017",
        "claim1_linear_code", _recon_units),
    Row("orthogonal tuning", "flat", "Chang & Tsao 2017", "claim3_axis_model", _flat),
    Row("dlib ResNet on LFW", "99.38%", "dlib's model notes", "face_cnn", _lfw),
]


def table(folder: Path | None = None, rows=ROWS) -> pd.DataFrame:
    """The scorecard: one row per claim and anchor, columns ``item``, ``anchor``,
    ``source``, ``measured``, ``chapter`` and ``verdict``. A chapter without a findings
    file gives "not measured"; a chapter's own saved ``verdict`` wins over the row's rule;
    no verdict is "-"."""
    out = []
    for row in rows:
        try:
            data = findings.load(row.chapter, folder=folder)
        except FileNotFoundError:
            data = None
        if data is None:
            measured, verdict = NOT_MEASURED, None
        else:
            try:
                measured, verdict = row.measure(data)
            except (KeyError, TypeError, ValueError) as error:
                measured, verdict = f"{NOT_MEASURED} ({error})", None
            if row.item.startswith("Claim") and data.get("verdict") in VERDICTS:
                verdict = data["verdict"]
                if data.get("verdict_reason"):
                    measured = f"{measured} ({data['verdict_reason']})"
        out.append({"item": row.item, "anchor": row.anchor, "source": row.source,
                    "measured": measured, "chapter": row.chapter,
                    "verdict": verdict or "-"})
    return pd.DataFrame(out)
