"""Claim 1's decision rule: is the descriptor layer's code linear (near the nonlinear
ceiling), decoded, and a face code (beating its untrained and pixel controls)?"""
from __future__ import annotations

import numpy as np

from ..verdicts import VERDICTS

__all__ = [
    "claim1_verdict", "VERDICT_RULE", "verdict_rule", "claim1_report",
]

CONTROLS = ("untrained", "pixels")


VERDICT_RULE = (
    "Per network, from its descriptor layer. (A) linear is near the ceiling: the lower "
    "95% bound of the linear / nonlinear encoding EV ratio is at least {ceiling_min}. "
    "(B) the parameters are decoded: the lower 95% bound of the variance-weighted "
    "decoding EV is at least {decoding_min}. (C) the code is a face code: a decoder "
    "fitted on clean renders decodes nuisance renders better from the trained network "
    "than from its untrained control and than from pixel PCs (matched feature count), "
    "the lower 95% bounds of both differences in variance-weighted EV above {margin}. "
    "'holds' when A, B and C; 'partly holds' when B and one of A or C; 'does not hold' "
    "otherwise."
)


def verdict_rule(
    ceiling_min: float = 0.8, decoding_min: float = 0.5, margin: float = 0.0
) -> str:
    """:data:`VERDICT_RULE` with its thresholds filled in."""
    return VERDICT_RULE.format(
        ceiling_min=ceiling_min, decoding_min=decoding_min, margin=margin
    )


def claim1_verdict(
    ceiling_ratio_low: float,
    decoding_ev_low: float,
    nuisance_margin_low: dict,
    ceiling_min: float = 0.8,
    decoding_min: float = 0.5,
    margin: float = 0.0,
) -> str:
    """Claim 1's verdict for one network by :func:`verdict_rule` (with the same
    thresholds). ``nuisance_margin_low`` holds the lower bounds of (trained - control)
    nuisance-decoding EV for the controls ``"untrained"`` and ``"pixels"``."""
    values = {
        "ceiling_ratio_low": ceiling_ratio_low,
        "decoding_ev_low": decoding_ev_low,
        **{f"nuisance_margin_low[{k}]": v for k, v in nuisance_margin_low.items()},
    }
    for name, value in values.items():
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    missing = {"untrained", "pixels"} - set(nuisance_margin_low)
    if missing:
        raise ValueError(f"nuisance_margin_low lacks the controls {sorted(missing)}")
    near_ceiling = ceiling_ratio_low >= ceiling_min
    decoded = decoding_ev_low >= decoding_min
    face_code = all(nuisance_margin_low[k] > margin for k in ("untrained", "pixels"))
    if decoded and near_ceiling and face_code:
        return VERDICTS[0]
    if decoded and (near_ceiling or face_code):
        return VERDICTS[1]
    return VERDICTS[2]


def claim1_report(
    ceiling: tuple,
    decoding: tuple,
    margins: dict,
    domain_ratio: float,
    ceiling_min: float = 0.8,
    decoding_min: float = 0.5,
    margin: float = 0.0,
):
    """:func:`claim1_verdict` for one network from its interval estimates, each
    ``(value, low, high)``: the linear / reference EV ratio of the descriptor
    (``ceiling``), its pooled decoding EV (``decoding``) and, per control in
    ``margins``, the trained-minus-control nuisance decoding EV. ``domain_ratio`` is
    the median descriptor distance of different synthetic faces over that of different
    real faces. Returns ``(verdict, inputs, lines)``: the verdict, its inputs as lists
    (for the findings) and the criteria's report, one line each."""
    rule = dict(ceiling_min=ceiling_min, decoding_min=decoding_min, margin=margin)
    if any(len(v) != 3 for v in (ceiling, decoding, *margins.values())):
        raise ValueError("every estimate must be (value, low, high)")
    verdict = claim1_verdict(ceiling[1], decoding[1],
                             {c: margins[c][1] for c in margins}, **rule)
    inputs = {"ceiling_ratio": list(ceiling), "decoding_pooled_ev": list(decoding),
              **{f"nuisance_margin_{c}": list(margins[c]) for c in CONTROLS}}

    def met(passed):
        return "met" if passed else "not met"

    r, d = ceiling, decoding
    lines = [f"claim 1 {verdict}.",
             f"  (A) linear / reference EV in the descriptor {r[0]:.3g} [{r[1]:.3g}, "
             f"{r[2]:.3g}], needed >= {ceiling_min}: {met(r[1] >= ceiling_min)}",
             f"  (B) pooled decoding EV {d[0]:.3g} [{d[1]:.3g}, {d[2]:.3g}], needed "
             f">= {decoding_min}: {met(d[1] >= decoding_min)}"]
    for control in CONTROLS:
        value, low, high = margins[control]
        lines.append(f"  (C) nuisance decoding, trained minus {control}: {value:.3g} "
                     f"[{low:.3g}, {high:.3g}]: {met(low > margin)}")
    lines.append(f"  domain: different synthetic faces lie at {domain_ratio:.3g} times "
                 "the median descriptor distance of different real faces")
    return verdict, inputs, lines
