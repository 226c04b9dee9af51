"""Claim 2's decision rule: is a linear route from the image non-inferior to the CNN,
by paired bootstrap intervals over evaluation identities, in both landmark
conditions?"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..verdicts import VERDICTS

__all__ = ["CONDITIONS", "IMAGE_ROUTES", "GIVEN_PARAMETER_ROUTES", "MARGINS",
           "VERDICT_RULE", "non_inferior", "claim2_verdict"]

CONDITIONS = ("given", "detected")
# routes that start from the image: parameters fitted to it, or responses predicted
# linearly from those parameters
IMAGE_ROUTES = ("fitted params", "encoded (fitted-param fit)",
                "encoded (true-param fit)")
# routes handed the parameters the faces were generated from
GIVEN_PARAMETER_ROUTES = ("true params", "encoded (true params)")
# non-inferiority margins: how much worse than the CNN a route may be and still count
MARGINS = {"rank1": 0.05, "tar@far=0.01": 0.05}


VERDICT_RULE = (
    "A route is non-inferior to the CNN when the upper bound of the 95% paired "
    "bootstrap interval (over evaluation identities) of CNN minus route is below "
    + " and ".join(f"{v:g} for {k}" for k, v in MARGINS.items())
    + ". 'holds': a route that starts from the image (" + ", ".join(IMAGE_ROUTES)
    + ") is non-inferior in both landmark conditions (given and detected); 'partly "
    "holds': an image route is non-inferior in one condition only, or a route handed "
    "the generating parameters (" + ", ".join(GIVEN_PARAMETER_ROUTES) + ") is "
    "non-inferior with given landmarks; 'does not hold': none of these.")


def non_inferior(table: pd.DataFrame, margins: dict = MARGINS) -> pd.Series:
    """True for each route (row of a :func:`bootstrap` table against the CNN) whose
    paired interval of CNN-minus-route lies below the margin for every statistic in
    ``margins``: the route is at most that much worse than the CNN, at 95%
    confidence."""
    missing = [f"{s}_diff_high" for s in margins if f"{s}_diff_high" not in table]
    if missing:
        raise KeyError(f"the table lacks the paired bounds {missing}")
    return pd.concat([table[f"{s}_diff_high"] < m for s, m in margins.items()],
                     axis=1).all(axis=1)


def claim2_verdict(tables: dict, margins: dict = MARGINS,
                   image_routes: Sequence[str] = IMAGE_ROUTES,
                   given_parameter_routes: Sequence[str] = GIVEN_PARAMETER_ROUTES
                   ) -> tuple[str, str]:
    """Claim 2 for one network, from its :func:`bootstrap` tables against the CNN in the
    two landmark conditions (``tables = {"given": ..., "detected": ...}``).

    - "holds": one route that starts from the image (``image_routes``) is non-inferior
      to the CNN (:func:`non_inferior`) in both conditions;
    - "partly holds": otherwise, an image route is non-inferior in one condition only,
      or a route handed the generating parameters (``given_parameter_routes``) is
      non-inferior to the CNN with given landmarks;
    - "does not hold": none of these.

    Returns ``(verdict, reason)``.
    """
    missing = [c for c in CONDITIONS if c not in tables]
    if missing:
        raise KeyError(f"tables lack the conditions {missing}")
    ok = {}
    for condition in CONDITIONS:
        table = tables[condition]
        absent = [r for r in (*image_routes, *given_parameter_routes)
                  if r not in table.index]
        if absent:
            raise KeyError(f"the {condition} table lacks the routes {absent}")
        passed = non_inferior(table, margins)
        ok[condition] = [r for r in passed.index[passed]]
    both = [r for r in image_routes if r in ok["given"] and r in ok["detected"]]
    if both:
        return VERDICTS[0], (f"{both[0]} is within the margins of the CNN in both "
                             "conditions")
    one = [(r, c) for c in CONDITIONS for r in image_routes if r in ok[c]]
    given = [r for r in given_parameter_routes if r in ok["given"]]
    if one:
        route, condition = one[0]
        return VERDICTS[1], (f"{route} is within the margins of the CNN with "
                             f"{condition} landmarks only")
    if given:
        return VERDICTS[1], (f"only {given[0]} (the generating parameters) comes "
                             "within the margins of the CNN; no route from the image "
                             "does")
    return VERDICTS[2], "no route comes within the margins of the CNN"
