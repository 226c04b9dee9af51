"""Linear encoding/decoding on planted populations whose answer is known."""

import numpy as np
import pytest
import torch

from facelin import bootstrap, encoding
from facelin.verdicts import VERDICTS


@pytest.fixture(scope="module")
def planted():
    """600 faces in 8 dimensions, 60 units r = W x + b + noise with known SNR per
    unit."""
    g = torch.Generator().manual_seed(0)
    n, d, units = 600, 8, 60
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(
        2, 0.5, d, dtype=torch.float64
    )
    w = torch.randn(units, d, generator=g, dtype=torch.float64)
    signal = x @ w.T + 3.0
    noise_sd = torch.linspace(0.2, 2.0, units, dtype=torch.float64) * signal.std(0)
    r = signal + noise_sd * torch.randn(n, units, generator=g, dtype=torch.float64)
    snr_ev = signal.var(0) / (signal.var(0) + noise_sd**2)
    return x, r, w, snr_ev


def test_encoder_recovers_weights_and_planted_ev(planted):
    x, r, w, snr_ev = planted
    enc = encoding.LinearEncoder(cv=10).fit(x, r)
    # Units with little noise: weights recovered to a few per cent.
    good = snr_ev > 0.9
    err = (enc.coef_[good] - w[good]).norm(dim=1) / w[good].norm(dim=1)
    assert err.max() < 0.08
    # Cross-validated EV tracks the planted signal fraction of every unit.
    assert (enc.explained_variance_ - snr_ev).abs().max() < 0.08
    torch.testing.assert_close(enc.predict(x), x @ enc.coef_.T + enc.intercept_)


def test_shuffled_parameters_give_no_encoding(planted):
    x, r, _, _ = planted
    shuffled = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))]
    enc = encoding.LinearEncoder(cv=10).fit(shuffled, r)
    assert enc.explained_variance_.max() < 0.05


def test_decoder_loo_and_pooled_ev(planted):
    x, r, w, _ = planted
    dec = encoding.LinearDecoder(alphas=None, cv="loo").fit(r, x)
    assert dec.explained_variance_.shape == (x.shape[1],)
    # The lowest-variance dimension is the hardest to decode, as in the face space.
    assert dec.explained_variance_.min() > 0.6 and dec.explained_variance_[0] > 0.95
    pooled = encoding.pooled_explained_variance(x, dec.cv_predictions_)
    assert pooled > 0.9
    ridge = encoding.LinearDecoder(cv=10).fit(r, x)
    assert (ridge.explained_variance_ - dec.explained_variance_).abs().max() < 0.05


def test_decoder_copes_with_rank_deficient_responses(planted):
    x, r, _, _ = planted
    duplicated = torch.cat(
        [r, r[:, :10], torch.zeros(len(r), 3, dtype=torch.float64)], dim=1
    )
    dec = encoding.LinearDecoder(alphas=None, cv="loo").fit(duplicated, x)
    ref = encoding.LinearDecoder(alphas=None, cv="loo").fit(r, x)
    assert torch.isfinite(dec.explained_variance_).all()
    assert (dec.explained_variance_ - ref.explained_variance_).abs().max() < 0.02


def test_identification_accuracy_extremes():
    g = torch.Generator().manual_seed(2)
    true = torch.randn(300, 5, generator=g, dtype=torch.float64)
    assert encoding.identification_accuracy(true, true, 50) == 1.0
    noise = torch.randn(300, 5, generator=g, dtype=torch.float64)
    chance = encoding.identification_accuracy(noise, true, [2, 10], n_trials=4000)
    assert abs(chance[0] - 0.5) < 0.04 and abs(chance[1] - 0.1) < 0.03
    partial = encoding.identification_accuracy(true + 0.5 * noise, true, [2, 50])
    assert 0.5 < partial[1] < partial[0] < 1.0


def test_identification_curve_grows_with_units(planted):
    x, r, _, _ = planted
    curve = encoding.identification_curve(
        r,
        x,
        unit_counts=[2, 8, 60],
        n_draws=10,
        n_candidates=(2, 20),
        cv=5,
        progress=False,
    )
    mean = curve.groupby(["n_candidates", "units"]).accuracy.mean()
    assert mean[(2, 2)] < mean[(2, 8)] < mean[(2, 60)]
    assert mean[(20, 60)] > 0.9 and mean[(20, 2)] < 0.6
    assert len(curve) == 3 * 10 * 2
    needed = encoding.units_for_accuracy(curve, 0.8, n_candidates=20)
    assert 2 < needed <= 60


def test_bad_input():
    with pytest.raises(ValueError, match="600 faces but"):
        encoding.LinearEncoder().fit(np.ones((600, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="n_candidates"):
        encoding.identification_accuracy(np.ones((5, 2)), np.ones((5, 2)), 6)
    with pytest.raises(RuntimeError, match="fit"):
        encoding.LinearEncoder().predict(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        encoding.LinearEncoder().fit(np.full((10, 2), np.nan), np.ones((10, 2)))


def test_layer_summary_separates_signal_from_shuffled(planted):
    x, r, _, _ = planted
    silent = torch.cat([r, torch.zeros(len(r), 4, dtype=torch.float64)], dim=1)
    summary = encoding.layer_summary(x, silent, n_shape=4, cv=5, n_candidates=(2, 20))
    assert summary["units"] == r.shape[1]
    assert summary["encoding_ev"] > 0.3 and summary["pooled_ev"] > 0.9
    assert summary["identification_20"] > 0.9
    null = encoding.layer_summary(
        x[torch.randperm(len(x))], r, n_shape=4, cv=5, n_candidates=(2, 20)
    )
    assert null["encoding_ev"] < 0.05 and null["pooled_ev"] < 0.05
    assert null["identification_2"] < 0.6
    with pytest.raises(ValueError, match="no unit varies"):
        encoding.layer_summary(x, torch.zeros(len(x), 3, dtype=torch.float64))


# ------------------------------------------------------------------ nested penalty choi


def test_explained_variance_is_sklearns_r2(planted):
    from sklearn.metrics import r2_score

    x, r, _, _ = planted
    noisy = r + torch.randn(
        r.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    np.testing.assert_allclose(
        encoding.explained_variance(r, noisy).numpy(),
        r2_score(r.numpy(), noisy.numpy(), multioutput="raw_values"),
    )
    with pytest.raises(ValueError, match="constant"):
        encoding.explained_variance(
            torch.ones(5, 2, dtype=torch.float64),
            torch.zeros(5, 2, dtype=torch.float64),
        )


def test_nested_cv_tracks_planted_ev_and_never_scores_a_selecting_row(planted):
    x, r, _, snr_ev = planted
    predictions, alphas = encoding.nested_cv_predictions(x, r, folds=5)
    assert predictions.shape == r.shape and alphas.shape == (5, r.shape[1])
    ev = encoding.explained_variance(r, predictions)
    assert (ev - snr_ev).abs().max() < 0.08
    # Changing the targets of fold 0 must not change the predictions of fold 0: they
    # come from models fitted (and penalised) on the other folds only.
    changed = r.clone()
    changed[:120] = torch.randn(
        120, r.shape[1], generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    again, _ = encoding.nested_cv_predictions(x, changed, folds=5)
    torch.testing.assert_close(again[:120], predictions[:120])
    encoder = encoding.LinearEncoder(cv=5, nested=True).fit(x, r)
    torch.testing.assert_close(encoder.explained_variance_, ev)
    assert encoder.coef_.shape == (r.shape[1], x.shape[1])
    with pytest.raises(ValueError, match="outer folds"):
        encoding.LinearEncoder(cv="loo", nested=True)
    with pytest.raises(ValueError, match="folds"):
        encoding.nested_cv_predictions(x, r, folds=1)


def test_layer_summary_nested_and_plain_agree_on_planted_units(planted):
    x, r, _, _ = planted
    plain = encoding.layer_summary(x, r, n_shape=4, cv=5)
    nested = encoding.layer_summary(x, r, n_shape=4, cv=5, nested=True)
    for key in ["encoding_ev", "encoding_ev_mean", "encoding_ev_pooled", "pooled_ev"]:
        assert abs(plain[key] - nested[key]) < 0.02
    assert nested["encoding_ev_pooled"] > nested["encoding_ev_mean"] - 0.3


# ------------------------------------------------------------------ population size


def test_subset_decoding_improves_with_units_and_caps_the_size(planted):
    x, r, _, _ = planted
    few = encoding.subset_decoding(r, x, 4, n_draws=6, cv=5, n_candidates=(2, 20))
    many = encoding.subset_decoding(r, x, 40, n_draws=6, cv=5, n_candidates=(2, 20))
    capped = encoding.subset_decoding(r, x, 500, n_draws=2, cv=5)
    assert list(few.columns) == [
        "units",
        "draw",
        "mean_ev",
        "pooled_ev",
        "identification_2",
        "identification_20",
    ]
    assert len(few) == 6 and (capped.units == r.shape[1]).all()
    assert many.pooled_ev.median() > few.pooled_ev.median() + 0.2
    assert many.identification_20.median() > few.identification_20.median()
    # all units in every draw: the draws are the same decoder
    assert capped.pooled_ev.nunique() == 1


def test_units_for_accuracy_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    rows = [
        (units, draw, 50, min(1.0, units / 100 + rng.normal(0, 0.05)))
        for units in (20, 50, 80, 100)
        for draw in range(20)
    ]
    import pandas as pd

    curve = pd.DataFrame(rows, columns=["units", "draw", "n_candidates", "accuracy"])
    value, low, high = encoding.units_for_accuracy_interval(curve, 0.6, 50, n_boot=200)
    assert low <= value <= high and 50 < value < 80
    never, low, high = encoding.units_for_accuracy_interval(curve, 1.5, 50, n_boot=50)
    assert np.isnan(never) and np.isnan(high)


# ------------------------------------------------------------------ nuisance


def test_between_face_share_recovers_planted_variance_components():
    rng = np.random.default_rng(0)
    n_faces, per_face = 400, 4
    faces = np.repeat(np.arange(n_faces), per_face)
    face_effect = rng.normal(0, 1, (n_faces, 3))[faces] * np.array([1.0, 1.0, 0.0])
    noise = rng.normal(0, 1, (n_faces * per_face, 3)) * np.array([0.5, 2.0, 1.0])
    share = encoding.between_face_share(face_effect + noise, faces).numpy()
    np.testing.assert_allclose(share, [1 / 1.25, 1 / 5, 0.0], atol=0.06)
    with pytest.raises(ValueError, match="equally often"):
        encoding.between_face_share(noise[:-1], faces[:-1])
    with pytest.raises(ValueError, match="one label per row"):
        encoding.between_face_share(noise, faces[:10])


def test_identification_from_distances_extremes_and_ties():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(60, 5))
    exact = np.linalg.norm(true[:, None] - true[None], axis=-1)
    assert encoding.identification_from_distances(exact, 50) == 1.0
    random = rng.random((60, 60))
    chance = encoding.identification_from_distances(random, [2, 10], n_trials=4000)
    np.testing.assert_allclose(chance, [0.5, 0.1], atol=0.04)
    assert encoding.identification_from_distances(np.ones((60, 60)), 2) == 0.0
    # probes grouped by reference: three renders per face
    probes = np.repeat(true, 3, axis=0) + 0.01
    targets = np.repeat(np.arange(60), 3)
    dist = np.linalg.norm(probes[:, None] - true[None], axis=-1)
    assert encoding.identification_from_distances(dist, 20, targets=targets) == 1.0
    with pytest.raises(ValueError, match="n_candidates"):
        encoding.identification_from_distances(exact, 61)



# ------------------------------------------------------------------ other spaces


def test_random_tanh_map_is_fixed_bounded_and_nonlinear(planted):
    x, _, _, _ = planted
    warped = encoding.random_tanh_map(x.numpy(), out_dims=12, seed=5)
    assert warped.shape == (len(x), 12) and np.abs(warped).max() < 1
    np.testing.assert_array_equal(
        warped, encoding.random_tanh_map(x.numpy(), 12, seed=5)
    )
    assert not np.allclose(warped, encoding.random_tanh_map(x.numpy(), 12, seed=6))
    fit = encoding.LinearEncoder(cv=5).fit(x, torch.from_numpy(warped))
    linear = encoding.pooled_explained_variance(
        torch.from_numpy(warped), fit.cv_predictions_
    )
    assert 0.2 < linear < 0.95


def test_pixel_pca_projects_new_chips():
    gen = torch.Generator().manual_seed(0)
    chips = (torch.rand(40, 3, 12, 12, generator=gen) * 255).to(torch.uint8)
    pca = encoding.PixelPCA(5).fit(chips)
    scores = pca.transform(chips)
    assert scores.shape == (40, 5) and scores.dtype == torch.float64
    np.testing.assert_allclose(scores.mean(0).numpy(), 0, atol=1e-3)
    assert (scores.var(0)[:-1] >= scores.var(0)[1:] - 1e-6).all()
    with pytest.raises(ValueError, match="chips"):
        pca.transform(chips[:, 0])
    with pytest.raises(RuntimeError, match="fit"):
        encoding.PixelPCA(3).transform(chips)


# ------------------------------------------------------------------ the verdict

FACE_CODE = {"untrained": 0.1, "pixels": 0.05}
NOT_FACE_CODE = {"untrained": 0.1, "pixels": -0.02}


@pytest.mark.parametrize(
    "ratio, decoding, margins, expected",
    [
        (0.9, 0.7, FACE_CODE, "holds"),
        (
            0.9,
            0.7,
            NOT_FACE_CODE,
            "partly holds",
        ),  # linear and decodable, not face-specific
        (
            0.5,
            0.7,
            FACE_CODE,
            "partly holds",
        ),  # face-specific but far below the ceiling
        (0.5, 0.7, NOT_FACE_CODE, "does not hold"),  # decodable only
        (0.9, 0.3, FACE_CODE, "does not hold"),  # not decoded
        (
            0.8,
            0.5,
            {"untrained": 0.0, "pixels": 0.1},
            "partly holds",
        ),  # bounds: >=, >=, >
    ],
)
def test_claim1_verdict_outcomes(ratio, decoding, margins, expected):
    assert encoding.claim1_verdict(ratio, decoding, margins) == expected
    assert expected in VERDICTS


def test_claim1_verdict_rejects_bad_input_and_states_its_thresholds():
    with pytest.raises(ValueError, match="finite"):
        encoding.claim1_verdict(float("nan"), 0.7, FACE_CODE)
    with pytest.raises(ValueError, match="pixels"):
        encoding.claim1_verdict(0.9, 0.7, {"untrained": 0.1})
    rule = encoding.verdict_rule(ceiling_min=0.85, decoding_min=0.6, margin=0.01)
    assert "0.85" in rule and "0.6" in rule and "0.01" in rule
    assert (
        encoding.claim1_verdict(0.84, 0.7, FACE_CODE, ceiling_min=0.85)
        == "partly holds"
    )
