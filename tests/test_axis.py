"""The axis-model toolkit: hand-made cases, and simulated populations it must label."""
import numpy as np
import pytest
import pandas as pd
import torch

from facelin import axis, bootstrap, linalg
from facelin.verdicts import VERDICTS


@pytest.fixture(scope="module")
def faces():
    """Anisotropic Gaussian parameters, as in the face space (variances fall 30x)."""
    g = torch.Generator().manual_seed(0)
    variances = torch.logspace(0, -1.5, 10, dtype=torch.float64)
    return torch.randn(1200, 10, generator=g, dtype=torch.float64) * variances.sqrt()


def test_sta_of_hand_made_case():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]],
                     dtype=torch.float64)
    r = torch.tensor([[3.0], [1.0], [2.0], [2.0]], dtype=torch.float64)
    # Shifted responses 2, 0, 1, 1: STA = (2*(1,0) + 1*(0,1) + 1*(0,-1)) / 4.
    torch.testing.assert_close(axis.sta(x, r),
                               torch.tensor([[0.5, 0.0]], dtype=torch.float64))
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
    assert axis.axis_angle(axis.sta(isotropic, r_iso),
                           axis.regression_axis(isotropic, r_iso))[0] < 5


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
    a = torch.randn(5, 10, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
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
    # orthogonal to it (dimension 0) is not an axis unit: its orthogonal tuning is not
    # flat.
    ramp = faces[:, 2] / faces[:, 2].std()
    bowl = (faces[:, 0] / faces[:, 0].std()) ** 2
    two_axis = (ramp + bowl)[:, None] + 0.3 * torch.randn(
        len(faces), 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    two_axis_flatness = axis.flatness(faces, two_axis)
    assert two_axis_flatness.depth_ratio.min() > 0.5
    assert not axis.flatness(faces, two_axis).flat.any()


def test_model_comparison_labels_simulated_populations(faces):
    axis_units, _ = axis.simulate_axis_units(faces, 12, noise=0.3, seed=5)
    exemplar_units, _ = axis.simulate_exemplar_units(faces, 12, noise=0.3, width=0.5,
                                                     seed=6)
    on_axis = axis.compare_models(faces, axis_units, cv=5)
    on_exemplar = axis.compare_models(faces, exemplar_units, cv=5)
    assert list(on_axis.columns)[:4] == ["linear", "axis", "exemplar", "reference"]
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
    sta = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0],
                        [1.0, 0.0, 1.0, 0.0]])
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
        (np.random.default_rng(0).normal(size=(5, 2)), np.ones((5, 1)),
         "same response"),
    ],
)
def test_bad_input_is_rejected(params, responses, message):
    with pytest.raises(ValueError, match=message):
        if "same" in message:
            axis.sta(params, responses)
        else:
            axis.flatness(params, responses)


def test_varying_units_drops_silent_and_constant_units():
    g = torch.Generator().manual_seed(8)
    r = torch.randn(200, 3, generator=g, dtype=torch.float64).clamp_min(0)
    r[:, 1] = 0.0  # constant
    r[:, 2] = 0.0
    r[:3, 2] = 1.0  # active on 1.5% of the faces
    assert axis.varying_units(r).tolist() == [True, False, False]
    tiny = torch.cat([r[:, :1], 1e-40 * r[:, :1]], 1)  # varies by denormals only
    assert axis.varying_units(tiny).tolist() == [True, False]
    stuck = torch.full((200, 1), 0.5, dtype=torch.float64)
    stuck[7] = 0.0  # above its minimum on every face but one, yet constant there
    assert axis.varying_units(torch.cat([r[:, :1], stuck], 1)).tolist() == [True, False]
    assert axis.varying_units(r, min_active=0.01).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="min_active"):
        axis.varying_units(r, min_active=1.5)


def test_tuning_map_of_hand_made_case():
    # Four faces at the corners of a square; the response is 10 * a + b.
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]],
                     dtype=torch.float64)
    r = (10 * x[:, 0] + x[:, 1])[:, None]
    a_axis, b_axis = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mean, half = axis.tuning_map(x, r, a_axis, b_axis, n_bins=2)
    torch.testing.assert_close(mean[0], torch.tensor([[-11.0, -9.0], [9.0, 11.0]],
                                                     dtype=torch.float64))
    torch.testing.assert_close(half, torch.full((1, 2), 1.01, dtype=torch.float64))
    mean, _ = axis.tuning_map(x, r, a_axis, b_axis, n_bins=3)
    assert torch.isnan(mean[0, 1]).all()  # no face projects near zero
    with pytest.raises(ValueError, match="axis_b must be"):
        axis.tuning_map(x, r, torch.tensor([[1.0, 0.0]]), torch.ones(2, 2), n_bins=2)


def test_engineered_series_moves_only_orthogonally(faces):
    a = torch.randn(1, 10, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(9))
    steps = [-2.0, 0.0, 2.0]
    series = axis.engineered_series(faces, a, steps, n_orthogonal=3)
    assert series.shape == (4, 3, 10)
    moves = series - faces.mean(0)
    a_unit = a[0] / a[0].norm()
    # The axis series moves along the axis; the others leave the projection unchanged.
    assert (moves[0] @ a_unit).abs()[[0, 2]].min() > 0
    torch.testing.assert_close(moves[1:] @ a_unit,
                               torch.zeros(3, 3, dtype=torch.float64), atol=1e-10,
                               rtol=0)
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


def test_compare_models_names_units_constant_in_a_training_fold(faces):
    r = torch.randn(len(faces), 2, generator=torch.Generator().manual_seed(21),
                    dtype=torch.float64)
    r[:, 1] = 1.0
    r[0, 1] = 2.0  # varies over all faces, but not without face 0
    with pytest.raises(ValueError, match=r"units \[1\] are constant on the training"):
        axis.compare_models(faces, r, cv=3)


def test_fold_indices_give_every_requested_fold():
    # torch.chunk gave 9 folds for 25 faces and cv=10; every fold must exist.
    for n, cv in ((25, 10), (2000, 10), (7, 7), (11, 3)):
        folds = axis.fold_indices(n, cv, seed=1)
        sizes = [len(f) for f in folds]
        assert len(folds) == cv and max(sizes) - min(sizes) <= 1
        assert sorted(torch.cat(folds).tolist()) == list(range(n))
    with pytest.raises(ValueError, match="cv must be"):
        axis.fold_indices(5, 6)


def test_kernel_reference_loo_errors_are_leave_one_out_refits(faces):
    # Exact leave-one-out of ridge with an unpenalised intercept: refit without each
    # face in turn. The intercept's 1/n leverage was once left out of the shortcut.
    x, g = faces[:60], torch.Generator().manual_seed(13)
    noise = torch.randn(60, 2, generator=g, dtype=torch.float64)
    r = torch.sin(2 * x[:, :2]) + 0.1 * noise
    alphas = (0.1, 1.0)
    fit = axis.kernel_reference(x, r, x[:5], scales=(1.0,), alphas=alphas, n_centres=20)
    phi = axis.kernel_features(x, 1.0, n_centres=20)(x)
    brute = torch.zeros(len(alphas), 2, dtype=torch.float64)
    for a, alpha in enumerate(alphas):
        for i in range(60):
            keep = torch.arange(60) != i
            p_mean, r_mean = phi[keep].mean(0), r[keep].mean(0)
            pc = phi[keep] - p_mean
            penalty = alpha * torch.eye(20, dtype=torch.float64)
            coef = torch.linalg.solve(pc.T @ pc + penalty, pc.T @ (r[keep] - r_mean))
            brute[a] += ((phi[i] - p_mean) @ coef + r_mean - r[i]) ** 2 / 60
    torch.testing.assert_close(fit.loo_mse[0], brute, rtol=1e-8, atol=1e-12)
    reference = linalg.ridge_cv(phi, r, alphas, cv="loo").cv_mse
    torch.testing.assert_close(fit.loo_mse[0], reference)


def test_kernel_reference_tunes_bandwidth_per_unit(faces):
    # Narrow exemplar units are fitted best by a narrow kernel, a ramp by a broad one.
    x = faces / faces.std(0)
    narrow, _ = axis.simulate_exemplar_units(x, 3, noise=0.0, width=0.4, seed=1)
    fit = axis.kernel_reference(x, torch.cat([narrow, x[:, 2:3]], 1), x[:10],
                                scales=(0.4, 3.0), alphas=(1e-2, 1.0), n_centres=200)
    assert fit.scale.tolist() == [0.4, 0.4, 0.4, 3.0]
    assert fit.loo_mse.shape == (2, 2, 4) and fit.prediction.shape == (10, 4)


def test_exemplar_geometries_and_their_response_function(faces):
    for geometry in axis.GEOMETRIES:
        r, units = axis.simulate_exemplar_units(faces, 6, noise=0.0, width=0.5,
                                                geometry=geometry, seed=14)
        torch.testing.assert_close(units.signal(faces), r)
        torch.testing.assert_close(r.std(0), torch.ones(6, dtype=torch.float64))
        # Each unit peaks at its own preferred face.
        peak = units.signal(units.centres).diagonal()
        assert torch.all(peak >= r.max(0).values - 1e-9)
    with pytest.raises(ValueError, match="geometry"):
        axis.simulate_exemplar_units(faces, 2, geometry="pixels")


def test_compare_models_reports_exemplars_on_the_bound(faces):
    # A linear unit has no curvature: its exemplar runs off to the bound. A bump centred
    # on the mean face has its exemplar inside.
    x = faces / faces.std(0)
    g = torch.Generator().manual_seed(15)
    ramp = x[:, :1] + 0.1 * torch.randn(len(x), 1, generator=g, dtype=torch.float64)
    bump = torch.exp(-(x ** 2).sum(1, keepdim=True) / 20)
    table = axis.compare_models(x, torch.cat([ramp, bump], 1), cv=3, n_centres=100)
    assert table.exemplar_on_bound.tolist() == [1.0, 0.0]
    assert set(table.columns) >= {"linear", "axis", "exemplar", "reference",
                                  "reference_scale", "reference_alpha"}


def test_engineered_test_sees_orthogonal_change_of_exemplars_only(faces):
    axis_units, axes = axis.simulate_axis_units(faces, 5, noise=0.0, seed=16)
    # A noise-free axis unit: the response is a function of the projection on its axis.
    fit = axis.fit_axis_model(faces, axis_units)
    on_axis = axis.engineered_test(faces, axis_units, fit.predict)
    assert set(on_axis.direction) == {"axis", "orthogonal 1", "orthogonal 2"}
    ratio = axis.engineered_ratio(on_axis)
    assert ratio.max() < 1e-6
    assert on_axis[on_axis.direction == "axis"].change.min() > 0.5
    exemplar, units = axis.simulate_exemplar_units(faces, 5, noise=0.0, width=0.5,
                                                   seed=17)
    on_exemplar = axis.engineered_test(faces, exemplar, units.signal)
    assert axis.engineered_ratio(on_exemplar).min() > 0.1
    silent = on_axis.assign(change=np.where(on_axis.unit == 0, 0.0, on_axis.change))
    assert axis.engineered_ratio(silent).index.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="respond must return"):
        axis.engineered_test(faces, exemplar, lambda f: torch.zeros(len(f), 2))


def _made_up(layer, n, gain, gain_null, ratio, ratio_null):
    return pd.DataFrame({"layer": layer, "gain": np.full(n, gain),
                         "gain_null": np.full(n, gain_null), "depth_ratio": ratio,
                         "depth_ratio_null": ratio_null})


def test_departing_rule_on_made_up_units():
    null_ratios = np.linspace(0.1, 0.3, 100)
    t = pd.concat([
        _made_up("a", 100, 0.10, 0.0, 0.2, null_ratios),  # gain 0.10 beyond the null
        _made_up("b", 100, 0.04, 0.0, 0.2, null_ratios),  # 0.04: below the effect size
        _made_up("c", 100, 0.0, 0.0, 0.5, null_ratios),  # orthogonal tuning beyond null
    ], ignore_index=True)
    flags = axis.departing(t, effect_size=0.05)
    by_layer = flags.groupby("layer")[["by_gain", "by_orthogonal", "departs"]].mean()
    assert by_layer.loc["a"].tolist() == [1.0, 0.0, 1.0]
    assert by_layer.loc["b"].tolist() == [0.0, 0.0, 0.0]
    assert by_layer.loc["c"].tolist() == [0.0, 1.0, 1.0]
    looser = axis.departing(t, effect_size=0.03)
    assert looser.groupby("layer").departs.mean()["b"] == 1.0
    with pytest.raises(ValueError, match="lacks columns"):
        axis.departing(t.drop(columns="gain_null"))
    bad = t.copy()
    bad.loc[0, "gain"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        axis.departing(bad)


def _layer(name, departing_share, n=200):
    k = int(round(departing_share * n))
    gain = np.r_[np.full(k, 0.2), np.zeros(n - k)]
    return pd.DataFrame({"layer": name, "gain": gain, "gain_null": 0.0,
                         "depth_ratio": 0.1,
                         "depth_ratio_null": np.linspace(0.1, 0.3, n)})


@pytest.mark.parametrize("shares, expected", [
    ((0.9, 0.8, 0.7), "holds"),
    ((0.02, 0.05, 0.0), "does not hold"),
    ((0.9, 0.05, 0.7), "partly holds"),
    ((0.35, 0.35, 0.35), "partly holds"),
])
def test_claim3_verdict_for_each_outcome(shares, expected):
    table = pd.concat([_layer(f"deep{i}", s) for i, s in enumerate(shares)]
                      + [_layer("early", 0.0)], ignore_index=True)
    out = axis.claim3_verdict(table, ["deep0", "deep1", "deep2"])
    assert out["verdict"] == expected and expected in VERDICTS
    layer = out["layers"]["deep0"]
    assert layer["low"] <= layer["departing_fraction"] <= layer["high"]
    assert layer["departing_fraction"] == pytest.approx(shares[0], abs=1e-9)
    assert layer["excess_gain_low"] <= layer["excess_gain"] <= layer["excess_gain_high"]
    with pytest.raises(ValueError, match="no units"):
        axis.claim3_verdict(table, ["missing"])


def test_layer_verdict_thresholds_and_bootstrap_interval():
    assert axis.layer_verdict(0.5, 0.7) == "holds"
    assert axis.layer_verdict(0.1, 0.2) == "does not hold"
    assert axis.layer_verdict(0.15, 0.25) == "partly holds"
    with pytest.raises(ValueError):
        axis.layer_verdict(0.6, 0.5)
    flags = np.r_[np.ones(50), np.zeros(150)]
    fraction, low, high = bootstrap.bootstrap_fraction(flags)
    assert fraction == 0.25 and 0.18 < low < 0.25 < high < 0.32


def test_unit_table_and_controls_label_axis_and_exemplar_units(faces):
    populations = axis.control_populations(faces, n_units=16, axis_noises=(0.3,),
                                           widths=(0.6,), seed=18)
    table = axis.unit_table(faces, {k: v["responses"] for k, v in populations.items()},
                            cv=3, n_centres=200)
    assert len(table) == 16 * 3
    assert {"gain", "gain_null", "depth_ratio_null", "flat_null"} <= set(table)
    accuracy = axis.control_accuracy(table, populations).set_index("population")
    assert accuracy.loc["axis, noise 0.3", "rule"] >= 0.8
    assert accuracy.loc["axis, noise 0.3", "comparison"] >= 0.9
    for geometry in axis.GEOMETRIES:
        assert accuracy.loc[f"exemplar, {geometry}, width 0.6", "rule"] >= 0.8


def test_study_layers_and_sample_units():
    layers = [f"l{i}" for i in range(10)] + ["d1", "d2"]
    chosen = axis.study_layers(layers, ["d1", "d2"], n_early=4)
    assert chosen == ["l0", "l3", "l6", "l9", "d1", "d2"]
    assert axis.study_layers(["a", "d"], ["d"], n_early=4) == ["a", "d"]
    r = torch.randn(100, 6, generator=torch.Generator().manual_seed(19),
                    dtype=torch.float64)
    r[:, 2] = 0.0  # silent: never sampled
    chosen = axis.sample_units(r, 3, seed=1)
    assert len(chosen) == 3 and 2 not in chosen.tolist()
    assert chosen.tolist() == sorted(chosen.tolist())
    assert axis.sample_units(r, 50).tolist() == [0, 1, 3, 4, 5]


def test_null_and_exemplar_samples_keep_their_noise(faces):
    r, units = axis.simulate_exemplar_units(faces, 4, noise=0.5, seed=20)
    residual = units.sample(faces, seed=3) - units.signal(faces)
    assert 0.45 < float(residual.std()) < 0.55
    fit = axis.fit_axis_model(faces, r)
    torch.testing.assert_close((fit.sample(faces, 4) - fit.predict(faces)).std(0),
                               fit.residual_sd, rtol=0.1, atol=0)



def test_verdict_rule_states_the_thresholds():
    text = axis.verdict_rule(effect_size=0.07, holds_at=0.6, fails_at=0.1)
    assert "0.07" in text and "0.6" in text and "0.1" in text and "95%" in text


# The chapter's study of whole networks (axis.study) and its figures (axis.figures).

def test_choose_units_takes_whole_and_small_layers_and_samples_the_rest():
    g = torch.Generator().manual_seed(30)
    big = torch.randn(60, 300, generator=g, dtype=torch.float64)
    big[:, 7] = 0.0  # silent: never chosen
    small = torch.randn(60, 20, generator=g, dtype=torch.float64)
    layers = {"big": big, "small": small, "descriptor": big.clone()}
    chosen = axis.choose_units(layers, 50, whole=["descriptor"], max_whole=256, seed=4)
    assert len(chosen["big"]) == 50 and 7 not in chosen["big"].tolist()
    assert chosen["big"].tolist() == sorted(chosen["big"].tolist())
    assert chosen["small"].tolist() == list(range(20))
    assert len(chosen["descriptor"]) == 299
    # The i-th layer is drawn with seed + i, as sample_units would draw it alone.
    assert chosen["big"].tolist() == axis.sample_units(big, 50, seed=4).tolist()
    again = axis.choose_units({"small": small, "big": big}, 50, seed=4)
    assert again["big"].tolist() == axis.sample_units(big, 50, seed=5).tolist()
    with pytest.raises(ValueError, match="NaN"):
        axis.choose_units({"bad": torch.full((5, 3), float("nan"))}, 2)


def test_study_network_keeps_the_chosen_columns_beside_their_table(faces):
    x = faces[:240]
    r, _ = axis.simulate_axis_units(x, 12, noise=0.3, seed=31)
    layers = {"wide": r.float(), "descriptor": r[:, :5]}
    study = axis.study_network(x, layers, 4, whole=["descriptor"], max_whole=8, cv=3,
                               seed=2)
    assert [len(c) for c in study.columns.values()] == [4, 5]
    cols = study.columns["wide"]
    torch.testing.assert_close(study.responses["wide"], r.float().double()[:, cols])
    assert study.responses["wide"].dtype == torch.float64
    assert study.table.layer.tolist() == ["wide"] * 4 + ["descriptor"] * 5
    assert study.seconds >= 0
    sizes = axis.study_sizes({("net", True): study, ("net", False): study})
    assert sizes.columns.tolist() == ["network", "trained", "units",
                                      "fits (with nulls)", "seconds"]
    assert sizes.units.tolist() == [9, 9]
    assert sizes["fits (with nulls)"].tolist() == [18, 18]


def _studies(shares_by_variant):
    """Made-up studies ({(network, pretrained): NetworkStudy}) whose layers deep0,
    deep1, ... depart at the given shares (and layer early not at all)."""
    out = {}
    for key, shares in shares_by_variant.items():
        table = pd.concat([_layer("early", 0.0)] + [_layer(f"deep{i}", s)
                                                    for i, s in enumerate(shares)],
                          ignore_index=True)
        table["exemplar_on_bound"] = np.linspace(0, 1, len(table))
        table["flat"] = np.arange(len(table)) % 2 == 0
        table["flat_null"] = True
        out[key] = axis.NetworkStudy({}, {}, table, 1.0)
    return out


def test_variant_verdicts_tables_and_spans():
    studies = _studies({("a", True): (0.9, 0.8), ("a", False): (0.02, 0.0),
                        ("b", True): (0.9, 0.05)})
    deep = {"a": ["deep0", "deep1"], "b": ["deep0", "deep1"]}
    verdicts = axis.variant_verdicts(studies, deep, effect_size=0.05, seed=0)
    assert [v["verdict"] for v in verdicts.values()] == [
        "holds", "does not hold", "partly holds"]
    assert verdicts[("a", True)] == axis.claim3_verdict(studies[("a", True)].table,
                                                        deep["a"])
    table = axis.verdict_table(verdicts)
    assert table.index.names == ["network", "", "layer"]
    assert table.index[:3].tolist() == [("a", "trained", "early"),
                                        ("a", "trained", "deep0"),
                                        ("a", "trained", "deep1")]
    assert table.loc[("b", "trained", "deep1"), "verdict"] == "does not hold"
    layer = verdicts[("a", True)]["layers"]["deep0"]
    spans = axis.verdict_spans(verdicts[("a", True)], ["deep0"])
    assert spans == (f"deep0 {layer['departing_fraction']:.3g} "
                     f"[{layer['low']:.3g}, {layer['high']:.3g}]")
    gains = axis.verdict_spans(verdicts[("a", True)], ["deep0", "deep1"],
                               "excess_gain", "excess_gain_low", "excess_gain_high")
    assert gains.count("[") == 2 and gains.startswith("deep0 ")
    with pytest.raises(ValueError, match="not in the verdict"):
        axis.verdict_spans(verdicts[("a", True)], ["missing"])


def test_layer_names_and_states():
    assert axis.short_layer("stage5.block1.relu") == "stage5"
    assert axis.short_layer("conv_pw_13_relu_clip_by_value") == "conv_pw_13"
    assert [axis.training_state(p) for p in (True, False)] == ["trained", "untrained"]


def test_model_medians_and_share_beyond_null():
    table = pd.DataFrame({"layer": ["b"] * 4 + ["a"] * 4,
                          "gain": [0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0, 1.0],
                          "gain_null": np.r_[np.zeros(4), np.linspace(0, 0.1, 4)]})
    for column in set(axis.MODEL_COLUMNS) - set(table):
        table[column] = 2 * table.gain
    studies = {("n", False): axis.NetworkStudy({}, {}, table, 0.0)}
    medians = axis.model_medians(studies)
    assert medians.index.tolist() == [("n", "untrained", "b"), ("n", "untrained", "a")]
    assert medians.loc[("n", "untrained", "b"), "gain"] == pytest.approx(0.25)
    # Layer b's nulls all gain 0: all four units beat their 95th percentile; in layer
    # a only the unit gaining 1.0 does.
    assert axis.share_beyond_null(table, ["b"]) == 1.0
    assert axis.share_beyond_null(table, ["a"]) == 0.25
    assert axis.share_beyond_null(table, ["a", "b"]) == 0.625
    with pytest.raises(ValueError, match="no units"):
        axis.share_beyond_null(table, ["c"])
    with pytest.raises(ValueError, match="quantile"):
        axis.share_beyond_null(table, ["a"], quantile=1.5)


def test_axes_summary_of_shape_and_appearance_units(faces):
    isotropic = faces / faces.std(0)
    shape_unit = isotropic[:, :5].sum(1, keepdim=True)
    appearance_unit = isotropic[:, 5:].sum(1, keepdim=True)
    summary = axis.axes_summary(isotropic, {"shape": shape_unit,
                                            "appearance": appearance_unit}, n_shape=5)
    assert summary.columns.tolist() == ["STA-regression angle", "SPI"]
    assert summary.loc["shape", "SPI"] > 0.8 and summary.loc["appearance", "SPI"] < -0.8
    assert summary["STA-regression angle"].max() < 5
    # Under the raw anisotropy the STA leans away from the regression axis.
    raw = axis.axes_summary(faces, {"shape": faces[:, :5].sum(1, keepdim=True)}, 5)
    assert raw.loc["shape", "STA-regression angle"] > 10


def test_engineered_units_read_their_own_columns_of_the_layer(faces):
    layer_responses, units = axis.simulate_exemplar_units(faces, 6, noise=0.2, seed=32)
    columns = torch.tensor([4, 1, 3, 0])
    responses = layer_responses[:, columns]
    out = axis.engineered_units(faces, responses, columns,
                                lambda f: units.signal(f), 3, (-2.0, 0.0, 2.0),
                                seed=5, label="exemplar")
    assert list(out) == ["exemplar", "matched null"]
    pick = axis.sample_units(responses, 3, seed=5)
    direct = axis.engineered_test(faces, responses[:, pick],
                                  lambda f: units.signal(f)[:, columns[pick]],
                                  (-2.0, 0.0, 2.0), seed=5)
    pd.testing.assert_frame_equal(out["exemplar"], direct)
    assert len(out["matched null"]) == 3 * 3
    with pytest.raises(ValueError, match="respond must return"):
        axis.engineered_units(faces, responses, columns, lambda f: units.signal(f)[:1],
                              3, (-2.0, 0.0, 2.0))


def test_engineered_exemplars_and_summary(faces):
    steps = (-2.0, 0.0, 2.0)
    tests = axis.engineered_exemplars(faces, 8, steps, seed=6)
    assert list(tests) == [("simulated", g) for g in axis.GEOMETRIES]
    r, _ = axis.simulate_axis_units(faces, 8, noise=0.05, seed=33)
    fit = axis.fit_axis_model(faces, r)
    tests[("axis", "pure")] = {"axis unit": axis.engineered_test(
        faces, r, fit.predict, steps, seed=6)}
    summary = axis.engineered_summary(tests, seed=0).set_index(["network", "layer"])
    assert summary.columns.tolist() == ["units", "n", "median ratio", "low", "high",
                                        "axis change"]
    assert (summary.low <= summary["median ratio"]).all()
    assert (summary["median ratio"] <= summary.high).all()
    # Noise-free axis units do not change orthogonally; exemplar units do.
    assert summary.loc[("axis", "pure"), "median ratio"] < 1e-6
    assert (summary.loc["simulated", "median ratio"] > 0.1).all()
    found = axis.engineered_findings(summary.reset_index(), "simulated")
    assert set(found) == {f"{g}, exemplar unit" for g in axis.GEOMETRIES}
    assert set(found["whitened, exemplar unit"]) == {"median_ratio", "low", "high",
                                                     "axis_change"}
    silent = pd.DataFrame({"unit": [0, 0], "direction": ["axis", "orthogonal 1"],
                           "change": [0.0, 0.0]})
    with pytest.raises(ValueError, match="no ratio"):
        axis.engineered_summary({("n", "l"): {"unit": silent}})


def test_layer_and_control_findings():
    studies = _studies({("a", True): (0.9, 0.05)})
    table = studies[("a", True)].table
    verdict = axis.claim3_verdict(table, ["deep0", "deep1"])
    found = axis.layer_findings(table, verdict)
    assert list(found) == ["early", "deep0", "deep1"]
    deep0, judged = found["deep0"], verdict["layers"]["deep0"]
    assert deep0["departing_fraction"] == judged["departing_fraction"]
    assert deep0["flat"] == pytest.approx(table[table.layer == "deep0"].flat.mean())
    assert deep0["flat_null"] == 1.0
    controls = pd.DataFrame({
        "kind": ["axis", "exemplar", "exemplar"], "noise": [0.3, 0.3, 0.3],
        "geometry": ["whitened", "whitened", "normalized"], "width": [None, 0.6, 0.6],
        **{k: [0.9, 0.8, 0.7] for k in ["flatness", "comparison", "rule",
                                        "departing_fraction", "low", "high",
                                        "exemplar_on_bound"]}})
    assert list(axis.control_findings(controls, "axis")) == ["noise 0.3"]
    exemplar = axis.control_findings(controls, "exemplar")
    assert exemplar["normalized"]["width 0.6"]["rule"] == 0.7
    with pytest.raises(ValueError, match="no control"):
        axis.control_findings(controls, "other")


# seaborn's box plot passes matplotlib an argument it deprecates: not ours to fix.
@pytest.mark.filterwarnings("ignore:vert. bool was deprecated")
def test_figures_have_a_panel_per_network_and_unit(faces):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    studies = _studies({("a", True): (0.9, 0.8), ("a", False): (0.1, 0.0),
                        ("b", True): (0.3, 0.3)})
    deep = {"a": ["deep0", "deep1"], "b": ["deep0", "deep1"]}
    verdicts = axis.variant_verdicts(studies, deep)
    fig = axis.departing_figure(verdicts)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    fig = axis.gain_figure(studies, deep, effect_size=0.05)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "a, trained, deep layers"
    r, _ = axis.simulate_axis_units(faces, 6, seed=34)
    unit_studies = {"n": axis.NetworkStudy({"d": torch.arange(10, 16)}, {"d": r},
                                           pd.DataFrame(), 0.0)}
    fig = axis.tuning_figure(faces, unit_studies, {"n": "d"}, n_units=2, seed=0)
    assert len(fig.axes) == 4 and fig.axes[1].get_title().endswith(": orthogonal")
    assert all(" #1" in ax.get_title() for ax in fig.axes)  # columns 10 to 15
    tests = axis.engineered_exemplars(faces, 5, (-2.0, 0.0, 2.0), seed=1)
    fig = axis.engineered_figure(tests)
    assert fig.axes[0].get_yscale() == "log"
    chips = np.zeros((3 * 4, 3, 8, 8), dtype=np.uint8)
    fig = axis.engineered_example_figure(chips, np.ones((3, 4)), np.linspace(-2, 2, 4),
                                         sd=2.0)
    assert len(fig.axes) == 3 * 5
    with pytest.raises(ValueError, match="responses"):
        axis.engineered_example_figure(chips, np.ones((3, 5)), np.linspace(-2, 2, 4),
                                       sd=1.0)
    plt.close("all")
