"""Linear encoding/decoding on planted populations whose answer is known."""
import numpy as np
import pytest
import torch

from facelin import encoding


@pytest.fixture(scope="module")
def planted():
    """600 faces in 8 dimensions, 60 units r = W x + b + noise with known SNR per unit."""
    g = torch.Generator().manual_seed(0)
    n, d, units = 600, 8, 60
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(2, 0.5, d,
                                                                           dtype=torch.float64)
    w = torch.randn(units, d, generator=g, dtype=torch.float64)
    signal = x @ w.T + 3.0
    noise_sd = torch.linspace(0.2, 2.0, units, dtype=torch.float64) * signal.std(0)
    r = signal + noise_sd * torch.randn(n, units, generator=g, dtype=torch.float64)
    snr_ev = signal.var(0) / (signal.var(0) + noise_sd ** 2)
    return x, r, w, snr_ev


def test_encoder_recovers_weights_and_planted_ev(planted):
    x, r, w, snr_ev = planted
    enc = encoding.LinearEncoder(cv=10).fit(x, r)
    # Units with little noise: weights recovered to a few per cent.
    good = snr_ev > 0.9
    err = (enc.coef_.T[good] - w[good]).norm(dim=1) / w[good].norm(dim=1)
    assert err.max() < 0.08
    # Cross-validated EV tracks the planted signal fraction of every unit.
    assert (enc.ev_ - snr_ev).abs().max() < 0.08
    torch.testing.assert_close(enc.predict(x), x @ enc.coef_ + enc.intercept_)


def test_shuffled_parameters_give_no_encoding(planted):
    x, r, _, _ = planted
    shuffled = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))]
    enc = encoding.LinearEncoder(cv=10).fit(shuffled, r)
    assert enc.ev_.max() < 0.05


def test_decoder_loo_and_pooled_ev(planted):
    x, r, w, _ = planted
    dec = encoding.LinearDecoder(alphas=None, cv="loo").fit(r, x)
    assert dec.ev_.shape == (x.shape[1],)
    # The lowest-variance dimension is the hardest to decode, as in the face space.
    assert dec.ev_.min() > 0.6 and dec.ev_[0] > 0.95
    pooled = encoding.pooled_explained_variance(x, dec.cv_predictions_)
    assert pooled > 0.9
    ridge = encoding.LinearDecoder(cv=10).fit(r, x)
    assert (ridge.ev_ - dec.ev_).abs().max() < 0.05


def test_decoder_copes_with_rank_deficient_responses(planted):
    x, r, _, _ = planted
    duplicated = torch.cat([r, r[:, :10], torch.zeros(len(r), 3, dtype=torch.float64)], dim=1)
    dec = encoding.LinearDecoder(alphas=None, cv="loo").fit(duplicated, x)
    ref = encoding.LinearDecoder(alphas=None, cv="loo").fit(r, x)
    assert torch.isfinite(dec.ev_).all()
    assert (dec.ev_ - ref.ev_).abs().max() < 0.02


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
    curve = encoding.identification_curve(r, x, unit_counts=[2, 8, 60], n_draws=10,
                                          n_candidates=(2, 20), cv=5, progress=False)
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
    null = encoding.layer_summary(x[torch.randperm(len(x))], r, n_shape=4, cv=5,
                                  n_candidates=(2, 20))
    assert null["encoding_ev"] < 0.05 and null["pooled_ev"] < 0.05
    assert null["identification_2"] < 0.6
    with pytest.raises(ValueError, match="no unit varies"):
        encoding.layer_summary(x, torch.zeros(len(x), 3, dtype=torch.float64))
