"""Populations whose answer is known: pure axis units, pure exemplar units in two
geometries, and the control populations the chapter calibrates its tests on."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .models import whitener
from .._validation import real_matrix
from .tuning_curves import unit_rows

__all__ = [
    "simulate_axis_units", "simulate_exemplar_units", "ExemplarUnits", "GEOMETRIES",
    "control_populations",
]


def _standardise(signal: torch.Tensor, noise: float, gen: torch.Generator
                 ) -> torch.Tensor:
    signal = (signal - signal.mean(0)) / signal.std(0)
    return signal + noise * torch.randn(signal.shape, generator=gen,
                                        dtype=torch.float64)


def simulate_axis_units(params, n_units: int, noise: float = 0.5, seed: int = 0):
    """Pure axis units: random axes in the whitened parameter space, each with a random
    monotone response function (linear, soft-rectified, sigmoid or exponential ramp),
    scaled to unit signal variance, plus Gaussian noise of SD ``noise``.
    Returns (responses (n, n_units), axes (n_units, d) in parameter coordinates)."""
    x = real_matrix(params, "params")
    gen = torch.Generator().manual_seed(seed)
    whiten = whitener(x)
    d = x.shape[1]
    directions = unit_rows(torch.randn(n_units, d, generator=gen, dtype=torch.float64))
    z = whiten(x) @ directions.T  # (n, U), unit variance each
    kind = torch.randint(0, 4, (n_units,), generator=gen)
    shift = torch.randn(n_units, generator=gen, dtype=torch.float64) * 0.5
    shapes = [z, torch.nn.functional.softplus(2 * (z - shift)),
              torch.sigmoid(2 * (z - shift)), torch.exp(0.7 * z)]
    signal = torch.stack(shapes)[kind, :, torch.arange(n_units)].T
    # The same axes in parameter coordinates: w . x with w = W directions.
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    axes = (evecs / evals.sqrt()) @ directions.T
    return _standardise(signal, noise, gen), unit_rows(axes.T)


GEOMETRIES = ("whitened", "normalized")


@dataclass
class ExemplarUnits:
    """Pure exemplar units (see :func:`simulate_exemplar_units`): preferred faces
    ``centres`` (U, d) in parameter coordinates, the linear map ``metric`` (d, d) into
    the space where distance is measured, tuning widths ``sigma`` (U,), and the signal's
    mean and SD over the faces they were simulated on (to scale new responses alike),
    and the SD of their ``noise``."""

    centres: torch.Tensor
    metric: torch.Tensor
    sigma: torch.Tensor
    mean: torch.Tensor
    sd: torch.Tensor
    noise: float

    def signal(self, params) -> torch.Tensor:
        """Noise-free responses (m, U) to faces ``params`` (m, d), in the units of the
        simulated responses (signal SD 1 over the simulated faces)."""
        x = real_matrix(params, "params")
        dist = torch.cdist(x @ self.metric, self.centres @ self.metric)
        return (torch.exp(-dist ** 2 / (2 * self.sigma ** 2)) - self.mean) / self.sd

    def sample(self, params, seed: int = 0) -> torch.Tensor:
        """Noisy responses (m, U) to faces (m, d), as simulated."""
        signal = self.signal(params)
        gen = torch.Generator().manual_seed(seed)
        return signal + self.noise * torch.randn(signal.shape, generator=gen,
                                                 dtype=torch.float64)


def simulate_exemplar_units(params, n_units: int, noise: float = 0.5,
                            width: float = 0.5, geometry: str = "whitened",
                            seed: int = 0):
    """Pure exemplar units: each prefers one face ``x0`` (a randomly chosen face of the
    set, so within the range of real faces) and responds as a Gaussian of the distance
    to it, ``exp(-d^2 / (2 (width * median d)^2))``, scaled to unit signal variance,
    plus Gaussian noise of SD ``noise``. ``geometry`` says where distance is measured:
    ``"whitened"`` (every direction of the face distribution counts alike: isotropic
    tuning in whitened space) or ``"normalized"`` (the parameters as given, so the
    tuning is narrow along low-variance directions and broad along the long ones).
    Returns (responses (n, n_units), :class:`ExemplarUnits`)."""
    x = real_matrix(params, "params")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    gen = torch.Generator().manual_seed(seed)
    if geometry == "whitened":
        evals, evecs = torch.linalg.eigh(torch.cov(x.T))
        metric = evecs / evals.clamp_min(evals.max() * 1e-12).sqrt()
    else:
        metric = torch.eye(x.shape[1], dtype=torch.float64)
    chosen = torch.randint(0, x.shape[0], (n_units,), generator=gen)
    dist = torch.cdist(x @ metric, x[chosen] @ metric)  # (n, U)
    sigma = width * dist.median(0).values
    raw = torch.exp(-dist ** 2 / (2 * sigma ** 2))
    units = ExemplarUnits(centres=x[chosen], metric=metric, sigma=sigma,
                          mean=raw.mean(0), sd=raw.std(0), noise=noise)
    return units.sample(x, seed + 1), units


def control_populations(params, n_units: int = 100, axis_noises=(0.3, 0.5),
                        widths=(0.4, 0.6, 0.9), exemplar_noise: float = 0.3,
                        seed: int = 0) -> dict:
    """Simulated populations with a known answer, on the faces ``params``: pure axis
    units at each of ``axis_noises``, and pure exemplar units in each geometry
    (:data:`GEOMETRIES`) at each tuning width (times the median distance). Returns
    {label: {"kind", "geometry", "width", "noise", "responses", "units"}}."""
    out = {}
    for k, noise in enumerate(axis_noises):
        r, axes = simulate_axis_units(params, n_units, noise=noise, seed=seed + k)
        out[f"axis, noise {noise}"] = {"kind": "axis", "geometry": "whitened",
                                       "width": None, "noise": noise, "responses": r,
                                       "units": axes}
    for g, geometry in enumerate(GEOMETRIES):
        for k, width in enumerate(widths):
            r, units = simulate_exemplar_units(params, n_units, noise=exemplar_noise,
                                               width=width, geometry=geometry,
                                               seed=seed + 100 + 10 * g + k)
            out[f"exemplar, {geometry}, width {width}"] = {
                "kind": "exemplar", "geometry": geometry, "width": width,
                "noise": exemplar_noise, "responses": r, "units": units}
    return out
