"""Claim 1's pipelines over networks and layers: the encoding table, the units sampled
for the ceiling, decoding from matched unit sets and from the descriptor, the transfer
of a linear code to nuisance renders and its margins over the controls, other 50-d
spaces, and the descriptor distances that place the stimuli in a network's domain.

``models`` arguments are ``{network: {model name: population}}`` (a population has
``layer(name) -> (faces, units)``, e.g. :class:`facelin.experiment.Population`), and
``layers`` is ``{network: [layer names]}``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import cdist, pdist

from .. import bootstrap
from .._validation import float_matrix
from .identification import (between_face_share, identification_accuracy,
                             identification_curve, identification_from_distances,
                             layer_summary, subset_decoding)
from .ridge import LinearDecoder, LinearEncoder, explained_variance, \
    pooled_explained_variance

__all__ = [
    "varying", "spread_layers", "encoding_evs", "encoding_table", "ev_summary",
    "sample_units", "ceiling_sample", "penalty_choice_bias", "subset_table",
    "draw_summary", "summarise_draws", "pooled_ev_interval", "descriptor_decoding",
    "identification_curves", "nuisance_transfer", "nuisance_margins",
    "alternative_space_table", "unit_rows", "descriptor_distances", "nuisance_table",
    "NUISANCE_COLUMNS", "reconstruction_identification", "descriptor_sentence",
    "claim1_findings",
]


def varying(responses) -> torch.Tensor:
    """The (faces, k) float64 columns of ``responses`` that vary across faces (a ReLU
    unit silent for every face carries no code)."""
    r = torch.as_tensor(responses).double()
    return r[:, r.std(0) > 0]


def spread_layers(layers: Sequence[str], deep: Sequence[str], n_spread: int = 4
                  ) -> list[str]:
    """``n_spread`` layers spread evenly (forward order) over those of ``layers`` not
    in ``deep``, followed by ``deep``."""
    rest = [name for name in layers if name not in deep]
    if len(rest) < 1 or n_spread < 1:
        raise ValueError("need at least one layer outside the deep ones to spread over")
    spread = np.linspace(0, len(rest) - 1, n_spread).round().astype(int)
    return [rest[i] for i in spread] + list(deep)


def encoding_evs(params, responses) -> np.ndarray:
    """Leave-one-out encoding EV of every varying unit of ``responses`` (faces, units)
    from ``params`` (faces, d): (varying units,)."""
    encoder = LinearEncoder(cv="loo").fit(params, varying(responses))
    return encoder.explained_variance_.numpy()


def encoding_table(params, shuffled_params, models: Mapping, layers: Mapping
                   ) -> pd.DataFrame:
    """Encoding EV per unit, one row per (network, layer, model, unit): columns
    ``network, layer, model, ev``. Beside each network's models, the first (trained)
    model fitted to ``shuffled_params`` as the ``"shuffled parameters"`` null."""
    rows = []
    for net, by_name in models.items():
        for layer in layers[net]:
            for name, pop in by_name.items():
                rows += [(net, layer, name, ev)
                         for ev in encoding_evs(params, pop.layer(layer))]
            first = next(iter(by_name.values()))
            rows += [(net, layer, "shuffled parameters", ev)
                     for ev in encoding_evs(shuffled_params, first.layer(layer))]
    return pd.DataFrame(rows, columns=["network", "layer", "model", "ev"])


def ev_summary(ev) -> str:
    """``"median m [low, high], mean u"`` at 3 significant digits, the interval a 95%
    bootstrap interval of the median over the values (units)."""
    median, low, high = bootstrap.median_interval(ev)
    return f"median {median:.3g} [{low:.3g}, {high:.3g}], mean {np.mean(ev):.3g}"


def sample_units(responses, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` varying units drawn at random (all when fewer vary): (faces, count)."""
    r = varying(responses)
    return r[:, torch.randperm(r.shape[1], generator=generator)[:count]]


def ceiling_sample(models: Mapping, layers: Mapping, pixels, count: int,
                   generator: torch.Generator):
    """The units of the ceiling: ``count`` per (network, layer, model), then ``count``
    columns of ``pixels``, drawn in that order with ``generator``. Returns the
    (faces, total) responses and a frame of their ``network, layer, model`` labels."""
    blocks, labels = [], []
    for net, by_name in models.items():
        for layer in layers[net]:
            for name, pop in by_name.items():
                blocks.append(sample_units(pop.layer(layer), count, generator))
                labels += [(net, layer, name)] * blocks[-1].shape[1]
    blocks.append(sample_units(pixels, count, generator))
    labels += [("pixels", "pixel PCs", "pixels")] * blocks[-1].shape[1]
    frame = pd.DataFrame(labels, columns=["network", "layer", "model"])
    return torch.cat(blocks, dim=1), frame


def penalty_choice_bias(params, responses, cv: int = 5) -> dict:
    """How much choosing the penalty on the scored predictions biases EV up:
    leave-one-out EV with the penalty chosen on its own predictions minus nested
    ``cv``-fold EV, per unit (encoding) and per parameter dimension (decoding).
    Returns ``{"encoding": (median, largest), "decoding": (median, largest)}``."""
    r = varying(responses)
    out = {}
    for kind, model, x, y in [("encoding", LinearEncoder, params, r),
                              ("decoding", LinearDecoder, r, params)]:
        plain = model(cv="loo").fit(x, y).explained_variance_
        nested = model(cv=cv, nested=True).fit(x, y).explained_variance_
        bias = plain - nested
        out[kind] = (float(bias.median()), float(bias.max()))
    return out


def subset_table(models: Mapping, layers: Mapping, params, pixel_units, size: int,
                 n_draws: int, cv: int = 5) -> pd.DataFrame:
    """:func:`subset_decoding` of every (network, layer, model) and of ``pixel_units``
    (labelled ``pixels, raw pixels, pixels``): its rows with ``network, layer, model``
    columns added."""
    parts = []
    for net, by_name in models.items():
        for layer in layers[net]:
            for name, pop in by_name.items():
                table = subset_decoding(pop.layer(layer), params, size, n_draws, cv=cv)
                parts.append(table.assign(network=net, layer=layer, model=name))
    table = subset_decoding(pixel_units, params, size, n_draws, cv=cv)
    parts.append(table.assign(network="pixels", layer="raw pixels", model="pixels"))
    return pd.concat(parts, ignore_index=True)


def draw_summary(values) -> tuple[float, float, float]:
    """Median of random draws with their 2.5-97.5 percentile range."""
    low, high = np.percentile(values, [2.5, 97.5])
    return float(np.median(values)), float(low), float(high)


def summarise_draws(table: pd.DataFrame, columns: Sequence[str]) -> dict:
    """:func:`draw_summary` of ``columns`` per (network, layer, model) of ``table`` in
    its order: ``{(net, layer, model): {column: (median, low, high)}}``."""
    return {key: {c: draw_summary(part[c]) for c in columns}
            for key, part in table.groupby(["network", "layer", "model"], sort=False)}


def pooled_ev_interval(true, predicted, groups) -> tuple[float, float, float]:
    """Variance-weighted EV of ``predicted`` (n, d) against ``true`` (n, d) with a 95%
    bootstrap interval over ``groups`` (n,): ``(ev, low, high)``."""
    def pooled(rows):
        return pooled_explained_variance(true[rows], predicted[rows])

    draws = bootstrap.bootstrap_groups(pooled, groups)
    return (pooled(np.arange(len(true))), *bootstrap.interval(draws))


def descriptor_decoding(populations: Mapping, params, candidates: Sequence[int],
                        cv: int = 5):
    """Decode ``params`` (n, d) from each of ``populations`` ``{name: (n, units)}``
    with nested ``cv``-fold ridge. Returns ``({name: {"units", "pooled_ev": (ev, low,
    high) over faces, "identification": one accuracy per N in candidates}}, {name:
    held-out decoded (n, d)})``."""
    scores, decoded = {}, {}
    for name, r in populations.items():
        decoder = LinearDecoder(cv=cv, nested=True).fit(r, params)
        decoded[name] = decoder.cv_predictions_
        scores[name] = {
            "units": r.shape[1],
            "pooled_ev": pooled_ev_interval(params, decoded[name],
                                            np.arange(len(params))),
            "identification": identification_accuracy(decoded[name], params,
                                                       candidates)}
    return scores, decoded


def identification_curves(populations: Mapping, params, unit_counts: Sequence[int],
                          n_draws: int, cv: int = 5) -> dict:
    """:func:`identification_curve` (N = 2 and 50) of each population ``{name: (n,
    units)}`` over the ``unit_counts`` below its size and its full size:
    ``{name: curve frame}``."""
    curves = {}
    for name, r in populations.items():
        counts = [c for c in unit_counts if c < r.shape[1]] + [r.shape[1]]
        curves[name] = identification_curve(r, params, counts, n_draws=n_draws,
                                            n_candidates=(2, 50), cv=cv,
                                            progress=False)
    return curves


def nuisance_transfer(params, train_r, new_params, faces, clean_r, nuisance_r) -> dict:
    """Scores of linear maps fitted (leave-one-out penalty) on the stimuli
    (``params`` (n, d), ``train_r`` (n, k)) on new faces: their clean renders
    (``new_params`` (m, d), ``clean_r`` (m, k)) and nuisance renders (``nuisance_r``
    (m * v, k), face of each render in ``faces``). Units that are constant in any of
    the three sets are dropped. Returns ``share`` (between-face share of each unit's
    variance over the nuisance renders), and per kind (clean, nuisance) the median
    unit's ``encoding_<kind>`` EV, the ``decoded_<kind>`` parameters, their pooled
    ``decoding_<kind>`` EV and ``identification_<kind>`` among 50 new faces."""
    keep = (train_r.std(0) > 0) & (nuisance_r.std(0) > 0) & (clean_r.std(0) > 0)
    train_r, clean_r, nuisance_r = (t[:, keep].double()
                                    for t in (train_r, clean_r, nuisance_r))
    out = {"share": between_face_share(nuisance_r, faces).numpy()}
    test_params = {"clean": new_params, "nuisance": new_params[faces]}
    encoder = LinearEncoder(cv="loo").fit(params, train_r)
    decoder = LinearDecoder(cv="loo").fit(train_r, params)
    for kind, r in [("clean", clean_r), ("nuisance", nuisance_r)]:
        predicted = encoder.predict(test_params[kind])
        out[f"encoding_{kind}"] = np.median(explained_variance(r, predicted))
        decoded = decoder.predict(r)
        out[f"decoded_{kind}"] = decoded
        out[f"decoding_{kind}"] = pooled_explained_variance(test_params[kind], decoded)
        targets = np.arange(len(r)) if kind == "clean" else faces
        distances = cdist(decoded.numpy(), np.asarray(new_params))
        out[f"identification_{kind}"] = identification_from_distances(distances, 50,
                                                                      targets)
    return out


def nuisance_margins(compared: Mapping, truth, faces) -> dict:
    """Pooled decoding EV on nuisance renders of the first entry of ``compared``
    (``{name: decoded (renders, d)}``) minus each other's, with 95% bootstrap intervals
    over ``faces`` (every face with all its renders): ``{name: (difference, low,
    high)}`` for the names after the first."""
    decoded = list(compared.values())

    def evs(rows):
        return np.array([pooled_explained_variance(truth[rows], d[rows])
                         for d in decoded])

    draws = bootstrap.bootstrap_groups(evs, faces)
    full = evs(np.arange(len(truth)))
    out = {}
    for j, name in enumerate(list(compared)[1:], start=1):
        low, high = bootstrap.interval(draws[:, 0] - draws[:, j])
        out[name] = (full[0] - full[j], low, high)
    return out


def alternative_space_table(spaces: Mapping, descriptors: Mapping, pixels,
                            n_shape: int) -> pd.DataFrame:
    """:func:`layer_summary` (leave-one-out) of every unit set in every 50-d space:
    ``spaces`` ``{space: (n, d)}``, ``descriptors`` ``{(network, layer, model): (n,
    units)}``, then ``pixels`` (labelled ``pixels, pixel PCs, pixels``). One row per
    (space, unit set): ``space, network, layer, model`` and the summary's columns."""
    sets = {**descriptors, ("pixels", "pixel PCs", "pixels"): pixels}
    rows = []
    for space, x in spaces.items():
        for (net, layer, model), r in sets.items():
            summary = layer_summary(x, r, n_shape=n_shape, cv="loo")
            rows.append({"space": space, "network": net, "layer": layer,
                         "model": model, **summary})
    return pd.DataFrame(rows)


def unit_rows(values) -> np.ndarray:
    """Rows of ``values`` (n, k) scaled to unit Euclidean length, float64."""
    values = float_matrix(values, "values").numpy()
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a row of values is all zeros: it has no direction")
    return values / norms


def descriptor_distances(descriptors: Mapping, faces, n_faces: int = 50
                         ) -> pd.DataFrame:
    """Euclidean distances between unit-length descriptors, per network:
    ``descriptors`` ``{network: (clean, renders, real)}`` with different synthetic
    faces ``clean`` (m, k), their renders ``renders`` (m * v, k) with face labels
    ``faces`` (pairs of renders of one face among the first ``n_faces`` faces) and
    different real faces ``real`` (r, k). Columns ``network, pairs, distance``."""
    faces = np.asarray(faces)
    rows = []
    for net, (clean, renders, real) in descriptors.items():
        clean, renders, real = unit_rows(clean), unit_rows(renders), unit_rows(real)
        same = np.concatenate([pdist(renders[faces == f]) for f in range(n_faces)])
        for kind, values in [("different synthetic faces", pdist(clean)),
                             ("renders of one synthetic face", same),
                             ("different real faces (LFW subset)", pdist(real))]:
            rows += [(net, kind, v) for v in values]
    return pd.DataFrame(rows, columns=["network", "pairs", "distance"])


NUISANCE_COLUMNS = ["encoding_clean", "encoding_nuisance", "decoding_clean",
                    "decoding_nuisance", "identification_clean",
                    "identification_nuisance"]


def nuisance_table(scores: Mapping) -> pd.DataFrame:
    """One row per (network, layer, model) of ``scores`` (from
    :func:`nuisance_transfer`) whose model is not ``"pixels"``: ``network, layer,
    model``, the median unit's ``share`` and the :data:`NUISANCE_COLUMNS`."""
    return pd.DataFrame([
        {"network": net, "layer": layer, "model": model,
         "share": np.median(s["share"]), **{k: s[k] for k in NUISANCE_COLUMNS}}
        for (net, layer, model), s in scores.items() if model != "pixels"])


def reconstruction_identification(chips, originals, own, truth,
                                  candidates: Sequence[int] = (2, 10, 50)) -> dict:
    """Identification of reconstructions among their originals, by N in
    ``candidates``: in pixels (grey ``chips`` (n, 3, S, S) against ``originals``
    (n, S * S) grey pixels) and in a descriptor (the reconstructions' ``own`` (n, k)
    against the originals' ``truth`` (n, k)), Euclidean. ``{"pixels": accuracies,
    "descriptor": accuracies}``, one accuracy per N."""
    grey = torch.as_tensor(chips).double().mean(1).flatten(1).numpy()
    return {"pixels": identification_from_distances(cdist(grey, originals),
                                                    list(candidates)),
            "descriptor": identification_from_distances(cdist(own, truth),
                                                        list(candidates))}


def _above(a, b) -> str:
    return "above" if a > b else "below"


def descriptor_sentence(net: str, descriptor: str, table: pd.DataFrame,
                        ratios: pd.DataFrame, share_summary: Mapping,
                        alternatives: pd.DataFrame) -> str:
    """One network's descriptor set beside its controls, in words: median encoding EV
    (``table`` from :func:`encoding_table`) and linear / reference ratio (``ratios``)
    of the trained and untrained descriptor, the median unit's between-face share
    (``share_summary[(net, layer, model)][0]``, with the matched pixel components) and
    the 50-d space in which the trained descriptor is encoded best
    (``alternatives``)."""
    models = ("trained", "untrained")
    part = table[(table.network == net) & (table.layer == descriptor)]
    ev = {m: part[part.model == m].ev.median() for m in models}
    indexed = ratios.set_index(["network", "layer", "model"])
    rat = {m: indexed.loc[(net, descriptor, m)].ratio for m in models}
    shares = {m: share_summary[(net, descriptor, m)][0] for m in models}
    shares["pixels"] = share_summary[(net, "matched pixel PCs", "pixels")][0]
    alt = alternatives[(alternatives.network == net)
                       & (alternatives.model == "trained")]
    best = alt.set_index("space").encoding_ev
    return (f"{net}: the trained descriptor's median encoding EV, {ev['trained']:.3g}, "
            f"is {_above(ev['trained'], ev['untrained'])} the untrained one's "
            f"({ev['untrained']:.3g}); its linear / reference ratio, "
            f"{rat['trained']:.3g}, is {_above(rat['trained'], rat['untrained'])} the "
            f"untrained one's ({rat['untrained']:.3g}). The median unit's between-face "
            f"share is {shares['trained']:.3g} (untrained {shares['untrained']:.3g}, "
            f"pixel PCs {shares['pixels']:.3g}). Among the three 50-d spaces the "
            f"trained descriptor is encoded best in the {best.idxmax()} space ("
            + ", ".join(f"{k} {v:.3g}" for k, v in best.items()) + ").")


def _keyed(key) -> str:
    return " | ".join(key)


def claim1_findings(stimuli: int, descriptors: Mapping, encoding_table: pd.DataFrame,
                    ratios: pd.DataFrame, nuisance_share: Mapping,
                    nuisance_scores: Mapping, alternatives: pd.DataFrame,
                    alternative_columns: Sequence[str], subset_summary: Mapping,
                    headline: Mapping, units_80: Mapping, reconstructions: Mapping,
                    domain: Mapping, verdicts: Mapping, verdict_inputs: Mapping,
                    rule: str) -> dict:
    """Claim 1's findings record (``facelin.findings.save``) from the chapter's tables:
    ``descriptors`` ``{network: descriptor layer}``; ``nuisance_share``,
    ``subset_summary`` keyed by (network, layer, model), ``headline``, ``units_80``,
    ``reconstructions`` (identification scores) by (network, model); ``domain`` holds
    the detection rates and ``median_distance`` keyed by (network, pairs). The
    per-network headline numbers the scorecard reads are under ``"networks"``."""
    ceiling = {}
    for row in ratios.itertuples():
        key = "pixels" if row.model == "pixels" else row.network
        ceiling.setdefault(key, {}).setdefault(row.model, {})[row.layer] = [
            row.ratio, row.low, row.high]
    trained = encoding_table[encoding_table.model == "trained"]
    networks = {net: {
        "median_encoding_ev": {"descriptor": float(np.median(trained[
            (trained.network == net) & (trained.layer == layer)].ev))},
        "decoding_pooled_ev": headline[(net, "trained")]["pooled_ev"][0],
        "decoding_units": headline[(net, "trained")]["units"],
        "units_for_80pct_n50": {m: units_80[(net, m)][0]
                                for m in ("trained", "untrained")},
        "verdict_inputs": verdict_inputs[net]} for net, layer in descriptors.items()}
    return {
        "faces": stimuli,
        "networks": networks,
        "ceiling_ratio": ceiling,
        "nuisance_share": {_keyed(k): list(v) for k, v in nuisance_share.items()},
        "nuisance_generalisation": {
            _keyed(k): {c: s[c] for c in NUISANCE_COLUMNS}
            for k, s in nuisance_scores.items()},
        "alternative_spaces": {
            _keyed((r.network, r.layer, r.model, r.space)): {
                c: getattr(r, c) for c in alternative_columns}
            for r in alternatives.itertuples()},
        "subsets_205": {_keyed(k): {c: list(v) for c, v in stats.items()}
                        for k, stats in subset_summary.items()},
        "descriptor_decoding": {_keyed(k): {
            "units": r["units"], "pooled_ev": list(r["pooled_ev"]),
            "identification_n2": r["identification"][0],
            "identification_n50": r["identification"][-1],
            "units_for_80pct_n50": list(units_80[k])} for k, r in headline.items()},
        "reconstruction_identification": {
            _keyed(k): {c: list(v) for c, v in s.items()}
            for k, s in reconstructions.items()},
        "domain": {**{k: v for k, v in domain.items() if k != "median_distance"},
                   "median_distance": {_keyed(k): v for k, v in
                                       domain["median_distance"].items()}},
        "verdict": dict(verdicts),
        "verdict_rule": rule,
    }
