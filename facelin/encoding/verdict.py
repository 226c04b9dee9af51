"""Claim 1's decision rule: is the descriptor layer's code linear (near the nonlinear
ceiling), decoded, and a face code (beating its untrained and pixel controls)?"""
from __future__ import annotations

import numpy as np

from ..verdicts import VERDICTS

__all__ = [
    "claim1_verdict", "VERDICT_RULE", "verdict_rule",
]


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
