"""The axis-model toolkit: hand-made cases, and simulated populations it must label."""
import numpy as np
import pytest
import torch

from facelin import axis


@pytest.fixture(scope="module")
def faces():
    """Anisotropic Gaussian parameters, as in the face space (variances fall 30-fold)."""
    g = torch.Generator().manual_seed(0)
    variances = torch.logspace(0, -1.5, 10, dtype=torch.float64)
    return torch.randn(1200, 10, generator=g, dtype=torch.float64) * variances.sqrt()


def test_sta_of_hand_made_case():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    r = torch.tensor([[3.0], [1.0], [2.0], [2.0]], dtype=torch.float64)
    # Shifted responses 2, 0, 1, 1: STA = (2*(1,0) + 1*(0,1) + 1*(0,-1)) / 4.
    torch.testing.assert_close(axis.sta(x, r), torch.tensor([[0.5, 0.0]], dtype=torch.float64))
    # Adding a constant to the responses keeps the STA (the shift removes it).
    torch.testing.assert_close(axis.sta(x, r + 10), axis.sta(x, r))


def test_sta_direction_and_regression_axis_differ_under_anisotropy(faces):
    w = torch.ones(10, dtype=torch.float64)
    r = (faces @ w)[:, None]
    reg = axis.regression_axis(faces, r)
    torch.testing.assert_close(reg[0], w)
    # The STA leans toward high-variance dimensions: not the regression axis.
    assert axis.axis_angle(axis.sta(faces, r), reg)[0] > 20
    isotropic = faces / faces.std(0)
    r_iso = (isotropic @ w)[:, None]
    assert axis.axis_angle(axis.sta(isotropic, r_iso), axis.regression_axis(isotropic, r_iso))[0] < 5


def test_tuning_bins_and_sem():
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)[:, None]
    r = 2 * x
    t = axis.tuning(x, r, torch.ones(1, 1, dtype=torch.float64), n_bins=4)
    assert t.count.sum() == 401 and t.mean.shape == (1, 4)
    assert torch.all(torch.diff(t.mean[0]) > 0)
    torch.testing.assert_close(t.mean[0], 2 * t.centres[0], atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="axis must be"):
        axis.tuning(x, r, torch.ones(2, 1), n_bins=4)


def test_orthogonal_axis_is_orthogonal_and_longest(faces):
    a = torch.randn(5, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    o = axis.orthogonal_axis(faces, a)
    a_unit = a / a.norm(dim=1, keepdim=True)
    torch.testing.assert_close((o * a_unit).sum(1), torch.zeros(5, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    # With the STA along dimension 0, the longest orthogonal axis is dimension 1.
    o = axis.orthogonal_axis(faces, torch.eye(10, dtype=torch.float64)[:1])
    assert o[0, 1].abs() > 0.99


def test_flatness_labels_axis_and_two_axis_units(faces):
    responses, _ = axis.simulate_axis_units(faces, 30, noise=0.5, seed=3)
    flat = axis.flatness(faces, responses)
    assert flat.flat.mean() >= 0.9
    assert flat.depth_ratio.median() < 0.5
    # A unit that ramps along dimension 2 and is U-shaped along the longest axis
    # orthogonal to it (dimension 0) is not an axis unit: its orthogonal tuning is not flat.
    ramp = faces[:, 2] / faces[:, 2].std()
    bowl = (faces[:, 0] / faces[:, 0].std()) ** 2
    two_axis = (ramp + bowl)[:, None] + 0.3 * torch.randn(
        len(faces), 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    two_axis_flatness = axis.flatness(faces, two_axis)
    assert two_axis_flatness.depth_ratio.min() > 0.5
    assert not axis.flatness(faces, two_axis).flat.any()


def test_model_comparison_labels_simulated_populations(faces):
    axis_units, _ = axis.simulate_axis_units(faces, 12, noise=0.3, seed=5)
    exemplar_units, _ = axis.simulate_exemplar_units(faces, 12, noise=0.3, width=0.5, seed=6)
    on_axis = axis.compare_models(faces, axis_units, cv=5)
    on_exemplar = axis.compare_models(faces, exemplar_units, cv=5)
    assert list(on_axis.columns) == ["linear", "axis", "exemplar", "reference"]
    assert (on_axis.axis > on_axis.exemplar).mean() >= 0.9
    assert (on_exemplar.exemplar > on_exemplar.axis).mean() >= 0.9
    # A pure axis unit's axis model sits near the noise ceiling 1 / (1 + 0.3^2).
    assert on_axis.axis.median() > 0.85


def test_matched_null_keeps_noise_level(faces):
    responses, _ = axis.simulate_axis_units(faces, 8, noise=0.5, seed=7)
    null = axis.matched_null(faces, responses)
    assert null.shape == responses.shape
    ratio = null.std(0) / responses.std(0)
    assert torch.all((ratio > 0.85) & (ratio < 1.15))
    assert axis.flatness(faces, null).flat.mean() >= 0.75


def test_shape_preference_index():
    sta = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(axis.shape_preference(sta, n_shape=2),
                               torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="n_shape"):
        axis.shape_preference(sta, n_shape=4)


@pytest.mark.parametrize(
    "params, responses, message",
    [
        (np.ones((5, 2)), np.ones((4, 1)), "5 faces but responses has 4"),
        (np.full((5, 2), np.nan), np.ones((5, 1)), "NaN or Inf"),
        (np.ones((5, 2, 2)), np.ones((5, 1)), "2-d"),
        (np.random.default_rng(0).normal(size=(5, 2)), np.ones((5, 1)), "same response"),
    ],
)
def test_bad_input_is_rejected(params, responses, message):
    with pytest.raises(ValueError, match=message):
        axis.sta(params, responses) if "same" in message else axis.flatness(params, responses)


def test_varying_units_drops_silent_and_constant_units():
    g = torch.Generator().manual_seed(8)
    r = torch.randn(200, 3, generator=g, dtype=torch.float64).clamp_min(0)
    r[:, 1] = 0.0  # constant
    r[:, 2] = 0.0
    r[:3, 2] = 1.0  # active on 1.5% of the faces
    assert axis.varying_units(r).tolist() == [True, False, False]
    assert axis.varying_units(r, min_active=0.01).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="min_active"):
        axis.varying_units(r, min_active=1.5)


def test_tuning_map_of_hand_made_case():
    # Four faces at the corners of a square; the response is 10 * a + b.
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    r = (10 * x[:, 0] + x[:, 1])[:, None]
    mean, half = axis.tuning_map(x, r, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]),
                                 n_bins=2)
    torch.testing.assert_close(mean[0], torch.tensor([[-11.0, -9.0], [9.0, 11.0]],
                                                     dtype=torch.float64))
    torch.testing.assert_close(half, torch.full((1, 2), 1.01, dtype=torch.float64))
    mean, _ = axis.tuning_map(x, r, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]),
                              n_bins=3)
    assert torch.isnan(mean[0, 1]).all()  # no face projects near zero
    with pytest.raises(ValueError, match="axis_b must be"):
        axis.tuning_map(x, r, torch.tensor([[1.0, 0.0]]), torch.ones(2, 2), n_bins=2)


def test_engineered_series_moves_only_orthogonally(faces):
    a = torch.randn(1, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    steps = [-2.0, 0.0, 2.0]
    series = axis.engineered_series(faces, a, steps, n_orthogonal=3)
    assert series.shape == (4, 3, 10)
    moves = series - faces.mean(0)
    a_unit = a[0] / a[0].norm()
    # The axis series moves along the axis; the others leave the projection unchanged.
    assert (moves[0] @ a_unit).abs()[[0, 2]].min() > 0
    torch.testing.assert_close(moves[1:] @ a_unit, torch.zeros(3, 3, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    # Each series spans +-2 SD of the faces along its own direction.
    for row in moves:
        direction = row[2] / row[2].norm()
        sd = (faces - faces.mean(0)) @ direction
        torch.testing.assert_close(row[2].norm(), 2 * sd.std(), rtol=1e-9, atol=0)
    # An axis unit does not see the orthogonal series.
    w = a_unit
    response = torch.tanh(series @ w)
    assert float(response[0].max() - response[0].min()) > 0.5
    assert float((response[1:].amax(1) - response[1:].amin(1)).max()) < 1e-9
    with pytest.raises(ValueError, match="one vector"):
        axis.engineered_series(faces, torch.ones(2, 10), steps)


def test_calibrated_verdict_separates_axis_units_from_two_axis_units(faces):
    g = torch.Generator().manual_seed(10)
    axis_units, _ = axis.simulate_axis_units(faces, 20, noise=0.5, seed=11)
    ramp = faces[:, 2] / faces[:, 2].std()
    bowl = (faces[:, 0] / faces[:, 0].std()) ** 2
    two_axis = (ramp + bowl)[:, None] + 0.5 * torch.randn(len(faces), 20, generator=g,
                                                          dtype=torch.float64)
    verdicts = {}
    for name, r in (("axis", axis_units), ("two_axis", two_axis)):
        null = axis.matched_null(faces, r, seed=12)
        both = axis.compare_models(faces, torch.cat([r, null], 1), cv=3, n_centres=300)
        verdicts[name] = axis.calibrated_verdict(
            axis.flatness(faces, r), axis.flatness(faces, null),
            both.iloc[:20].reset_index(drop=True), both.iloc[20:].reset_index(drop=True))
    assert verdicts["axis"]["beyond_null_deficit"] <= 0.25
    assert verdicts["two_axis"]["beyond_null_deficit"] >= 0.9
    assert verdicts["two_axis"]["beyond_null_ratio"] >= 0.9
    assert verdicts["two_axis"]["tuned_orth_real"] > verdicts["two_axis"]["tuned_orth_null"]
    with pytest.raises(ValueError, match="one row per unit"):
        axis.calibrated_verdict(axis.flatness(faces, axis_units), axis.flatness(faces, axis_units),
                                both.iloc[:3], both)
