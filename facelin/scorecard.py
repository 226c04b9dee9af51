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
           "verdict_rules", "saved_verdicts", "network_findings",
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


def _interval(values, digits: int = 2) -> str:
    """``"estimate [low, high]"`` from a saved ``[estimate, low, high]`` triple."""
    if values is None:
        return NOT_MEASURED
    estimate, low, high = values
    return f"{_fmt(estimate, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


@dataclass
class Row:
    """One scorecard row: what is compared, the `facelin.anchors` key of its literature
    value, the chapter that measures it, and ``measure(findings, network) -> (text,
    verdict or None)`` applied to one network's findings."""

    item: str
    anchor: str
    chapter: str
    measure: Callable[[dict, str], tuple]


def _claim1(d, network):
    inputs = d["verdict_inputs"]
    return (
        f"descriptor: linear/nonlinear EV ratio {_interval(inputs['ceiling_ratio'])}; "
        f"decoding EV {_interval(inputs['decoding_pooled_ev'])}; on nuisance renders, "
        f"decoding EV minus the untrained control's "
        f"{_interval(inputs['nuisance_margin_untrained'])}, minus pixels' "
        f"{_interval(inputs['nuisance_margin_pixels'])}"
    ), None


def _claim2(d, network):
    parts = []
    for condition in ("given", "detected"):
        route = d["best_image_route"][condition]
        cnn, best = d[condition]["CNN"], d[condition][route]
        difference = [best[f"rank1_diff{end}"] for end in ("", "_low", "_high")]
        parts.append(
            f"{condition} landmarks: CNN rank-1 {_fmt(cnn['rank1'], 3)}, {route} "
            f"{_fmt(best['rank1'], 3)}, CNN minus route {_interval(difference, 3)} "
            f"(gallery {int(cnn['gallery'])})")
    return "; ".join(parts), None


def _deep(d) -> list:
    return d["layers"][-2:]


def _claim3(d, network):
    keys = ("departing_fraction", "departing_low", "departing_high")
    parts = []
    for layer in _deep(d):
        saved = d["trained"][layer]
        parts.append(f"{layer}: {_interval([saved[k] for k in keys])} of "
                     f"{saved['units']} units depart")
    return "; ".join(parts) + " from the axis model beyond their matched nulls", None


def _flat(d, network):
    trained = d["trained"]
    flat = [trained[layer]["flat"] for layer in d["layers"]]
    null = [trained[layer]["flat_null"] for layer in d["layers"]]
    layer = d["layers"][-1]
    unit = d["engineered"][f"{layer}, CNN unit"]
    matched = d["engineered"][f"{layer}, matched null"]
    return (
        f"flat in {min(flat):.2f}-{max(flat):.2f} of units per layer (matched axis "
        f"nulls {min(null):.2f}-{max(null):.2f}); engineered faces, {layer}: median "
        f"orthogonal/axis response change "
        f"{_interval([unit['median_ratio'], unit['low'], unit['high']])} (nulls "
        f"{_interval([matched['median_ratio'], matched['low'], matched['high']])})"
    ), None


def _faces(d, network):
    faces, dims = lookup(d, "faces"), lookup(d, "dims")
    return (
        f"{_fmt(faces)} faces, {_fmt(dims)}-d ({_fmt(lookup(d, 'shape_dims'))} shape + "
        f"{_fmt(lookup(d, 'appearance_dims'))} appearance)"
    ), None


def _units(d, network):
    n, layers = lookup(d, "units_per_layer"), lookup(d, "layers")
    if n is None or layers is None:
        return NOT_MEASURED, None
    return f"up to {n} units per layer in {len(layers)} layers (axis tests)", None


def _descriptor(d, network) -> dict:
    return d["descriptor_decoding"][f"{network} | trained"]


def _recon_units(d, network):
    units = _descriptor(d, network)["units_for_80pct_n50"]
    if units[0] is None:
        return (f"80% identification among 50 not reached with all "
                f"{_descriptor(d, network)['units']} descriptor units"), None
    return (f"descriptor units for 80% identification among 50: "
            f"{_interval(units, 0)}"), None


def _decoding_ev(d, network):
    part = _descriptor(d, network)
    return (f"decoding EV (variance-weighted) {_interval(part['pooled_ev'])} from "
            f"{part['units']} descriptor units"), None


def _identification(d, network):
    part = _descriptor(d, network)
    return (f"identification among 50 from {part['units']} descriptor units: "
            f"{_fmt(part['identification_n50'])}"), None


def _reference(d, network):
    """LFW is not at hand, so dlib's figure is quoted; what the book measures is whether
    each network computes its reference's descriptors (the CNN chapter's findings)."""
    difference, reference = d["max_relative_difference"], d["reference"]
    return (f"LFW not re-measured; against {reference}, largest relative descriptor "
            f"difference {difference:.1e}"), None


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
    Row("agreement with the reference implementation", "dlib_lfw", "face_cnn",
        _reference),
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
            measured, verdict = row.measure(part, network)
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
