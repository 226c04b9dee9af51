"""2-d tuning maps and Chang & Tsao's engineered faces: series along a unit's axis
and orthogonal to it, and how much the unit's response changes along each."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .models import fit_axis_model
from .._validation import real_matrix
from .tuning_curves import orthogonal_axis, paired, project, unit_rows

__all__ = [
    "tuning_map", "engineered_series", "engineered_faces", "engineered_test",
    "engineered_ratio",
]


def tuning_map(params, responses, axis_a, axis_b, n_bins: int = 10):
    """Mean response of each unit over a 2-d grid: the faces projected on ``axis_a`` and
    ``axis_b`` (each (U, d)), each projection cut into ``n_bins`` equal bins over +-1.01
    x its largest magnitude. Returns (mean (U, n_bins, n_bins) with NaN in empty cells,
    indexed [unit, bin along a, bin along b]; half-widths (U, 2) of the two ranges)."""
    x, r = paired(params, responses)
    a, b = real_matrix(axis_a, "axis_a"), real_matrix(axis_b, "axis_b")
    for name, ax in (("axis_a", a), ("axis_b", b)):
        if ax.shape != (r.shape[1], x.shape[1]):
            raise ValueError(f"{name} must be (units, dims) = "
                             f"{(r.shape[1], x.shape[1])}, got {tuple(ax.shape)}")
    units = r.shape[1]
    index, halves = [], []
    for ax in (a, b):
        p = project(x, ax)
        half = 1.01 * p.abs().max(0).values
        cells = ((p + half) / (2 * half / n_bins)).floor().long()
        index.append(cells.clamp(0, n_bins - 1))
        halves.append(half)
    cell = (index[0] * n_bins + index[1]).T + torch.arange(units)[:, None] * n_bins ** 2
    count = torch.zeros(units * n_bins ** 2, dtype=torch.float64).index_add_(
        0, cell.flatten(), torch.ones(cell.numel(), dtype=torch.float64))
    total = torch.zeros_like(count).index_add_(0, cell.flatten(), r.T.flatten())
    mean = (total / count).view(units, n_bins, n_bins)
    return mean, torch.stack(halves, 1)


def engineered_series(params, axis, steps, n_orthogonal: int = 3, seed: int = 0
                      ) -> torch.Tensor:
    """Chang & Tsao's engineered faces, as parameter vectors: from the mean face, a
    series of faces along the unit's ``axis`` (d,) and along ``n_orthogonal`` directions
    orthogonal to it (the longest orthogonal axis of the faces first, then random
    orthogonal directions). ``steps`` are in standard deviations of the faces along each
    direction, so every series spans the same share of the face distribution. Returns (1
    + n_orthogonal, len(steps), d): row 0 along the axis, the others orthogonal. An axis
    unit responds to row 0 only."""
    x = real_matrix(params, "params")
    a = unit_rows(real_matrix(axis, "axis"))
    if a.shape != (1, x.shape[1]):
        raise ValueError(f"axis must be one vector of {x.shape[1]} dims, "
                         f"got {tuple(a.shape)}")
    if n_orthogonal < 1:
        raise ValueError("n_orthogonal must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    directions = [a[0], orthogonal_axis(x, a)[0]]
    while len(directions) < 1 + n_orthogonal:
        v = torch.randn(x.shape[1], generator=gen, dtype=torch.float64)
        for u in directions:  # Gram-Schmidt against the axis and the directions so far
            v = v - (v @ u) * u
        directions.append(v / v.norm())
    d = torch.stack(directions)  # (1 + n_orthogonal, d)
    sd = ((x - x.mean(0)) @ d.T).std(0)
    t = torch.as_tensor(np.asarray(steps, dtype=np.float64))
    return x.mean(0) + t[None, :, None] * (sd[:, None, None] * d[:, None, :])


def engineered_faces(params, axes, steps, n_orthogonal: int = 2, seed: int = 0
                     ) -> torch.Tensor:
    """:func:`engineered_series` for each of several units' ``axes`` (U, d): returns
    (U, 1 + n_orthogonal, len(steps), d), unit u's orthogonal directions drawn with
    ``seed + u``."""
    a = real_matrix(axes, "axes")
    return torch.stack([engineered_series(params, a[u:u + 1], steps, n_orthogonal,
                                          seed + u) for u in range(a.shape[0])])


def engineered_test(params, responses, respond, steps=(-2.0, -1.0, 0.0, 1.0, 2.0),
                    n_orthogonal: int = 2, seed: int = 0) -> pd.DataFrame:
    """Chang & Tsao's engineered-face test of U units.

    Each unit's regression axis is fitted on the faces ``params`` (n, d) and its
    ``responses`` (n, U); :func:`engineered_faces` builds its series along the axis and
    along ``n_orthogonal`` orthogonal directions; ``respond`` maps faces (m, d) to the
    responses (m, U) of the same units (for a CNN: render, run the network; for a
    simulated unit: its response function); faces shared by several series (the mean
    face) are passed once. One row per unit and direction: ``change``,
    the response range over the series in units of the unit's response SD over
    ``params``. An axis unit's orthogonal change is its noise alone."""
    x, r = paired(params, responses)
    axes = fit_axis_model(x, r).axes
    series = engineered_faces(x, axes, steps, n_orthogonal, seed)
    units, directions, n_steps, d = series.shape
    # Every series passes through the mean face: it is rendered once.
    faces, index = torch.unique(series.reshape(-1, d), dim=0, return_inverse=True)
    out = real_matrix(respond(faces), "responses to the engineered faces")
    if out.shape != (len(faces), units):
        raise ValueError(f"respond must return ({len(faces)}, {units}), "
                         f"got {tuple(out.shape)}")
    every = out[index].reshape(units, directions, n_steps, units)
    own = every[torch.arange(units), :, :, torch.arange(units)]  # each unit, own faces
    change = (own.amax(2) - own.amin(2)) / r.std(0)[:, None]  # (U, directions)
    names = ["axis"] + [f"orthogonal {k}" for k in range(1, directions)]
    return pd.DataFrame({"unit": np.repeat(np.arange(units), directions),
                         "direction": names * units,
                         "change": change.flatten().numpy()})


def engineered_ratio(table: pd.DataFrame) -> pd.Series:
    """Per unit of an :func:`engineered_test` table: the median response change along
    its orthogonal directions divided by its change along the axis (0 for an ideal axis
    unit, about 1 or more for a unit that notices orthogonal moves as much). Units whose
    response does not change along their axis either (a rectified unit silent on every
    engineered face) have no ratio and are left out."""
    wide = table.pivot(index="unit", columns="direction", values="change")
    wide = wide[wide["axis"] > 0]
    return wide.drop(columns="axis").median(axis=1) / wide["axis"]
