"""The reproduction scorecard and the verdict table: each claim and anchor beside what
the book measured, one column per network.

Measured values are read from the findings files that the chapters write when they
execute (`facelin.findings`); anchor values come from `facelin.anchors`. A chapter that
has not been executed, or that did not save a quantity, shows "not measured" rather than
failing.

The findings contract, per claim chapter (``claim1_linear_code``,
``claim2_recognition``, ``claim3_axis_model``):

- ``"verdict"``: ``{network: "holds" | "partly holds" | "does not hold"}`` and
  ``"verdict_rule"``: the rule, in words. A plain string verdict (older files) is the
  ``dlib-resnet`` verdict; ``"partly"`` reads as "partly holds".
- Per-network measurements: under ``"networks": {network: {...}}``; a file without that
  key holds the ``dlib-resnet`` measurements at its top level.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import anchors, findings

__all__ = ["Row", "ROWS", "CLAIMS", "NETWORKS", "VERDICTS", "table", "verdict_table",
           "verdict_rules", "saved_verdicts", "network_findings", "claim3_verdict",
           "lookup", "NOT_MEASURED"]

NOT_MEASURED = "not measured"
VERDICTS = ("holds", "partly holds", "does not hold")
#: The face CNNs the book studies (the columns of the tables).
NETWORKS = ("dlib-resnet", "mobileface", "faceres")
#: The paper's claims: (name, chapter that judges it).
CLAIMS = (("Claim 1: a linear code", "claim1_linear_code"),
          ("Claim 2: recognition by the linear model", "claim2_recognition"),
          ("Claim 3: not the axis model", "claim3_axis_model"))
_DEFAULT_NETWORK = (
    "dlib-resnet"  # the network of findings files without per-network parts
)


def lookup(data: dict | None, *path):
    """``data[path[0]][path[1]]...``, or None when the chapter or any key is missing."""
    value = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _verdict(value) -> str | None:
    """A verdict string in the book's words, or None when ``value`` is not one."""
    if value == "partly":
        return "partly holds"
    return value if value in VERDICTS else None


def saved_verdicts(data: dict | None) -> dict:
    """``{network: verdict}`` from a chapter's saved ``verdict`` (a dict by network, or
    a plain string meaning the dlib-resnet verdict); empty when there is none."""
    saved = lookup(data, "verdict")
    if isinstance(saved, dict):
        return {str(net): _verdict(v) for net, v in saved.items() if _verdict(v)}
    if _verdict(saved):
        return {_DEFAULT_NETWORK: _verdict(saved)}
    return {}


def network_findings(data: dict | None, network: str) -> dict | None:
    """The findings of one network: ``data["networks"][network]`` over the top level, or
    the top level itself for dlib-resnet in a file without per-network parts; None when
    the chapter did not measure that network."""
    if data is None:
        return None
    parts = data.get("networks")
    if isinstance(parts, dict):
        part = parts.get(network)
        return None if not isinstance(part, dict) else {**data, **part}
    return data if network == _DEFAULT_NETWORK else None


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def claim3_verdict(
    data: dict, deep=("pool", "descriptor"), majority: float = 0.5
) -> tuple:
    """Claim 3 from the axis chapter's findings: in the deep layers, does a majority of
    the trained network's units fail the axis model beyond their matched nulls by the
    model comparison (``beyond_null_deficit``) and by Chang & Tsao's flatness test
    (``tuned_orth_real`` above ``tuned_orth_null``)? Both: "holds"; one: "partly holds";
    neither: "does not hold". Returns (verdict, reason). Used where the chapter saved no
    verdict of its own."""
    trained = data.get("trained", {})
    missing = [layer for layer in deep if layer not in trained]
    if missing:
        raise KeyError(f"the axis chapter's findings lack layers {missing}")
    by_models = all(trained[layer]["beyond_null_deficit"] > majority for layer in deep)
    by_flatness = all(
        trained[layer]["tuned_orth_real"] - trained[layer]["tuned_orth_null"] > majority
        for layer in deep)
    verdict = VERDICTS[0] if by_models and by_flatness else (
        VERDICTS[1] if by_models or by_flatness else VERDICTS[2])
    reason = (
        f"model comparison {'rejects' if by_models else 'does not reject'} the axis "
        f"model for most deep units; orthogonal flatness "
        f"{'rejects' if by_flatness else 'does not reject'} it"
    )
    return verdict, reason


@dataclass
class Row:
    """One scorecard row: what is compared, the `facelin.anchors` key of its literature
    value, the chapter that measures it, and ``measure(findings) -> (text, verdict or
    None)`` applied to one network's findings."""

    item: str
    anchor: str
    chapter: str
    measure: Callable[[dict], tuple]


def _claim1(d):
    encoding = lookup(d, "median_encoding_ev", "descriptor")
    text = (f"descriptor median encoding EV {_fmt(encoding)}; "
            f"decoding EV (pooled) {_fmt(lookup(d, 'decoding_pooled_ev'))}")
    return text, None


def _claim2(d):
    sets = lookup(d, "feature_sets") or {}
    parts = [
        f"{name}: rank-1 {_fmt(lookup(row, 'rank1'))}, AUC {_fmt(lookup(row, 'auc'))}"
        for name, row in sets.items()
    ]
    return ("; ".join(parts) if parts else NOT_MEASURED), None


def _claim3(d):
    descriptor = lookup(d, "trained", "descriptor") or {}
    text = (
        f"descriptor: {_fmt(descriptor.get('beyond_null_deficit'))} of units beyond "
        f"their matched axis null (model comparison), "
        f"{_fmt(descriptor.get('tuned_orth_real'))} not flat orthogonally "
        f"(null {_fmt(descriptor.get('tuned_orth_null'))})"
    )
    verdict, reason = claim3_verdict(d)
    return f"{text} ({reason})", verdict


def _flat(d):
    trained = lookup(d, "trained") or {}
    flat = {layer: 1 - v["tuned_orth_real"] for layer, v in trained.items()}
    if not flat:
        return NOT_MEASURED, None
    change_axis = lookup(d, "engineered_change_axis")
    change_orth = lookup(d, "engineered_change_orthogonal")
    text = (
        f"flat in {min(flat.values()):.2f}-{max(flat.values()):.2f} of units per "
        f"layer; "
        f"engineered faces change a unit's response {_fmt(change_orth, 1)} SD "
        f"orthogonally vs {_fmt(change_axis, 1)} SD along its axis"
    )
    return text, None


def _faces(d):
    faces, dims = lookup(d, "faces"), lookup(d, "dims")
    return (
        f"{_fmt(faces)} faces, {_fmt(dims)}-d ({_fmt(lookup(d, 'shape_dims'))} shape + "
        f"{_fmt(lookup(d, 'appearance_dims'))} appearance)"
    ), None


def _units(d):
    n, layers = lookup(d, "units_per_layer"), lookup(d, "layers")
    if n is None or layers is None:
        return NOT_MEASURED, None
    return f"{n} units per layer in {len(layers)} layers (axis tests)", None


def _recon_units(d):
    units = lookup(d, "units_for_80pct_n50", "trained")
    return f"units for 80% identification among 50: {_fmt(units, 0)}", None


def _decoding_ev(d):
    return f"pooled decoding EV {_fmt(lookup(d, 'decoding_pooled_ev'))} from " \
           f"{_fmt(lookup(d, 'decoding_units'))} units", None


def _identification(d):
    return (
        f"identification among 50: {_fmt(lookup(d, 'identification_n50', 'trained'))}",
        None,
    )


def _lfw(d):
    """LFW is not at hand, so dlib's figure is quoted; what the book measures is whether
    the port computes dlib's descriptors (``descriptor_max_abs_diff``, saved by the CNN
    chapter)."""
    diff = lookup(d, "descriptor_max_abs_diff")
    if diff is None:
        return NOT_MEASURED, None
    return (
        f"LFW not re-measured; port vs dlib, largest descriptor difference {diff:.1e}",
        None,
    )


ROWS = [
    Row(CLAIMS[0][0], "claim1", CLAIMS[0][1], _claim1),
    Row(CLAIMS[1][0], "claim2", CLAIMS[1][1], _claim2),
    Row(CLAIMS[2][0], "claim3", CLAIMS[2][1], _claim3),
    Row("face space and stimuli", "face_space", "claim3_axis_model", _faces),
    Row("units recorded", "cells", "claim3_axis_model", _units),
    Row(
        "units needed to reconstruct faces linearly",
        "cells_to_reconstruct",
        "claim1_linear_code",
        _recon_units,
    ),
    Row(
        "decoding explained variance", "decoding_ev", "claim1_linear_code", _decoding_ev
    ),
    Row(
        "identification from the population",
        "identification_205",
        "claim1_linear_code",
        _identification,
    ),
    Row("orthogonal tuning", "orthogonal_tuning", "claim3_axis_model", _flat),
    Row("dlib ResNet on LFW", "dlib_lfw", "face_cnn", _lfw),
]


def _load(chapter: str, folder) -> dict | None:
    try:
        return findings.load(chapter, folder=folder)
    except FileNotFoundError:
        return None


def _cell(row: Row, data: dict | None, network: str) -> tuple[str, str | None]:
    """(measured text, verdict) of one row for one network; a chapter's saved verdict
    wins over the row's rule."""
    part = network_findings(data, network)
    measured, verdict = NOT_MEASURED, None
    if part is not None:
        try:
            measured, verdict = row.measure(part)
        except (KeyError, TypeError, ValueError) as error:
            measured, verdict = f"{NOT_MEASURED} ({error})", None
    if row.item in dict(CLAIMS):
        verdict = saved_verdicts(data).get(network, verdict)
    return measured, verdict


def table(folder: Path | None = None, rows=ROWS, networks=NETWORKS) -> pd.DataFrame:
    """The scorecard: one row per claim and anchor; columns ``item``, ``anchor`` (the
    literature value), ``source``, ``chapter``, and one column per network holding what
    was measured, led by the verdict (``"holds: ..."``) on the claim rows."""
    out = []
    for row in rows:
        anchor = anchors.get(row.anchor)
        data = _load(row.chapter, folder)
        record = {"item": row.item, "anchor": anchor.value, "source": anchor.source,
                  "chapter": row.chapter}
        for network in networks:
            measured, verdict = _cell(row, data, network)
            record[network] = f"{verdict}: {measured}" if verdict else measured
        out.append(record)
    return pd.DataFrame(out)


def verdict_table(folder: Path | None = None, networks=NETWORKS) -> pd.DataFrame:
    """The verdicts, claim by network: index the claims' names, one column per network,
    each cell "holds", "partly holds", "does not hold" or "not measured"."""
    rows = {row.item: row for row in ROWS}
    out = {}
    for name, chapter in CLAIMS:
        data = _load(chapter, folder)
        out[name] = {network: _cell(rows[name], data, network)[1] or NOT_MEASURED
                     for network in networks}
    frame = pd.DataFrame.from_dict(out, orient="index", columns=list(networks))
    frame.index.name = "claim"
    return frame


def verdict_rules(folder: Path | None = None) -> dict:
    """``{claim name: the rule its chapter saved as verdict_rule}`` (None where
    none)."""
    return {name: lookup(_load(chapter, folder), "verdict_rule")
            for name, chapter in CLAIMS}
