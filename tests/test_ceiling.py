"""The nonlinear ceiling of the linear encoder, on units whose answer is planted."""

import numpy as np
import pytest
import torch

from facelin import ceiling


@pytest.fixture(scope="module")
def planted():
    """20 linear units and 20 units tuned to a preferred face (a Gaussian bump), with
    noise, over 800 faces in 8 dimensions."""
    g = torch.Generator().manual_seed(0)
    n, d = 800, 8
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    signal = x @ torch.randn(d, 20, generator=g, dtype=torch.float64)
    linear = signal + signal.std(0) * torch.randn(
        n, 20, generator=g, dtype=torch.float64
    )
    centres = torch.randn(20, d, generator=g, dtype=torch.float64)
    bump = torch.exp(-((x[:, None, :] - centres[None]) ** 2).sum(-1) / 8)
    tuned = bump + 0.2 * bump.std(0) * torch.randn(
        n, 20, generator=g, dtype=torch.float64
    )
    return x, linear, tuned


def test_ceiling_matches_linear_units_and_exceeds_on_tuned_units(planted):
    x, linear, tuned = planted
    result = ceiling.encoding_ceiling(
        x, torch.cat([linear, tuned], 1), n_centres=200, bandwidths=(0.1, 0.3, 1.0)
    )
    assert result.linear_ev.shape == (40,) and result.chosen.shape == (5, 40)
    assert result.models[0] == "linear" and len(result.models) == 4
    # linear units: the planted EV is 0.5 and the reference cannot beat the linear model
    assert abs(result.linear_ev[:20].mean() - 0.5) < 0.05
    ratio, low, high = ceiling.ceiling_ratio(
        result.linear_ev[:20], result.reference_ev[:20]
    )
    assert low <= ratio <= high and abs(ratio - 1) < 0.03
    # tuned units: the reference explains far more than the linear model
    ratio, low, high = ceiling.ceiling_ratio(
        result.linear_ev[20:], result.reference_ev[20:]
    )
    assert high < 0.75
    assert (result.chosen[:, 20:] > 0).mean() > 0.9


def test_ceiling_rejects_bad_input(planted):
    x, linear, _ = planted
    silent = torch.cat([linear[:, :2], torch.zeros(len(x), 1, dtype=torch.float64)], 1)
    with pytest.raises(ValueError, match="vary"):
        ceiling.encoding_ceiling(x, silent)
    with pytest.raises(ValueError, match="n_centres"):
        ceiling.encoding_ceiling(x, linear, n_centres=700)
    with pytest.raises(ValueError, match="faces"):
        ceiling.encoding_ceiling(x[:10], linear)
    with pytest.raises(ValueError, match="NaN"):
        ceiling.encoding_ceiling(x, linear.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="reference explains nothing"):
        ceiling.ceiling_ratio(np.array([0.1, 0.2]), np.array([-0.1, -0.2]))
