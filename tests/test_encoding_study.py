"""Claim 1's pipelines over networks and layers, on small planted populations whose
answer is known: a linear code of the parameters, pure noise, constant units."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from facelin import ceiling, encoding, renders  # noqa: E402
from facelin.encoding import plots  # noqa: E402
from facelin.verdicts import VERDICTS  # noqa: E402

N, D = 240, 6


class Population:
    """Two layers of (faces, units) responses, as experiment.Population exposes them."""

    def __init__(self, **layers):
        self.layers = layers

    def layer(self, name):
        return self.layers[name]


@pytest.fixture(scope="module")
def planted():
    """params (N, D); a linear population (with one silent unit) and a noise one."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    linear = x @ torch.randn(D, 30, generator=g, dtype=torch.float64)
    linear = linear + 0.3 * torch.randn(N, 30, generator=g, dtype=torch.float64)
    linear[:, 0] = 0.0  # a silent unit
    noise = torch.randn(N, 30, generator=g, dtype=torch.float64)
    models = {"net": {"trained": Population(early=noise, deep=linear),
                      "untrained": Population(early=noise, deep=noise)}}
    return x, linear, noise, models, {"net": ["early", "deep"]}


def test_varying_drops_silent_units_as_float64(planted):
    _, linear, _, _, _ = planted
    kept = encoding.varying(linear.float())
    assert kept.dtype == torch.float64 and kept.shape == (N, 29)


def test_spread_layers_spreads_the_early_layers_and_keeps_the_deep_ones():
    names = [f"l{i}" for i in range(10)] + ["pool", "fc"]
    assert encoding.spread_layers(names, ["pool", "fc"]) == ["l0", "l3", "l6", "l9",
                                                            "pool", "fc"]
    with pytest.raises(ValueError, match="outside the deep"):
        encoding.spread_layers(["pool"], ["pool"])


def test_encoding_table_scores_linear_units_high_and_nulls_low(planted):
    x, _, _, models, layers = planted
    shuffled = x[torch.randperm(N, generator=torch.Generator().manual_seed(1))]
    table = encoding.encoding_table(x, shuffled, models, layers)
    assert list(table.columns) == ["network", "layer", "model", "ev"]
    median = table.groupby(["layer", "model"]).ev.median()
    assert median[("deep", "trained")] > 0.9
    assert median[("deep", "untrained")] < 0.05
    assert median[("deep", "shuffled parameters")] < 0.05
    assert (table.layer == "deep").sum() == 29 + 30 + 29  # the silent unit left out
    text = encoding.ev_summary(np.full(20, 0.5))
    assert text == "median 0.5 [0.5, 0.5], mean 0.5"


def test_ceiling_sample_draws_per_unit_set_with_the_generator(planted):
    _, _, _, models, layers = planted
    pixels = torch.randn(N, 50, dtype=torch.float64)

    def draw():
        return encoding.ceiling_sample(models, layers, pixels, 8,
                                       torch.Generator().manual_seed(0))

    (sampled, labels), (again, _) = draw(), draw()
    assert sampled.shape == (N, 5 * 8) and len(labels) == 40
    assert torch.equal(sampled, again)
    assert labels.iloc[-1].tolist() == ["pixels", "pixel PCs", "pixels"]
    assert labels.groupby(["network", "layer", "model"], sort=False).size().eq(8).all()


def test_ratio_table_per_unit_set():
    units = pd.DataFrame({"network": ["a"] * 4 + ["b"] * 4, "layer": "x",
                          "model": "trained",
                          "linear": [0.4, 0.5, 0.6, 0.5, 0.9, 0.9, 0.8, 1.0],
                          "reference": [0.8, 1.0, 1.2, 1.0, 0.9, 0.9, 0.8, 1.0]})
    table = ceiling.ratio_table(units)
    assert table.network.tolist() == ["a", "b"]
    assert table.ratio.tolist() == pytest.approx([0.5, 1.0])
    assert (table.low <= table.ratio).all() and (table.ratio <= table.high).all()
    with pytest.raises(ValueError, match="lacks the columns"):
        ceiling.ratio_table(units.drop(columns="reference"))


def test_penalty_choice_bias_is_small_for_a_linear_code(planted):
    x, linear, noise, _, _ = planted
    bias = encoding.penalty_choice_bias(x, linear, cv=5)
    assert set(bias) == {"encoding", "decoding"}
    median, largest = bias["encoding"]
    assert abs(median) < 0.01 and largest >= median


def test_subset_table_and_draw_summaries(planted):
    x, _, noise, models, layers = planted
    table = encoding.subset_table(models, layers, x, noise, size=10, n_draws=4, cv=4)
    assert len(table) == 5 * 4
    summary = encoding.summarise_draws(table, ["pooled_ev"])
    assert list(summary)[-1] == ("pixels", "raw pixels", "pixels")
    assert summary[("net", "deep", "trained")]["pooled_ev"][0] > 0.5
    assert summary[("net", "deep", "untrained")]["pooled_ev"][0] < 0.1
    median, low, high = encoding.draw_summary([1.0, 2.0, 3.0, 4.0, 5.0])
    assert median == 3.0 and low == pytest.approx(1.1) and high == pytest.approx(4.9)


def test_pooled_ev_interval_brackets_the_estimate(planted):
    x, _, _, _, _ = planted
    assert encoding.pooled_ev_interval(x, x, np.arange(N)) == (1.0, 1.0, 1.0)
    noisy = x + 0.5 * torch.randn(N, D, generator=torch.Generator().manual_seed(2),
                                  dtype=torch.float64)
    ev, low, high = encoding.pooled_ev_interval(x, noisy, np.arange(N))
    assert low < ev < high and 0.6 < ev < 0.9


def test_descriptor_decoding_and_curves(planted):
    x, linear, noise, _, _ = planted
    sets = {"trained": encoding.varying(linear), "untrained": noise}
    scores, decoded = encoding.descriptor_decoding(sets, x, [2, 10], cv=4)
    assert decoded["trained"].shape == (N, D)
    assert scores["trained"]["units"] == 29
    assert scores["trained"]["pooled_ev"][1] > 0.9
    assert scores["untrained"]["pooled_ev"][2] < 0.1
    assert scores["trained"]["identification"][1] > 0.9
    curves = encoding.identification_curves(sets, x, [2, 10, 50], n_draws=3, cv=4)
    assert sorted(curves["trained"].units.unique()) == [2, 10, 29]
    assert sorted(curves["untrained"].units.unique()) == [2, 10, 30]


@pytest.fixture(scope="module")
def renders_of_faces():
    """60 new faces, 3 renders each: a face code (renders agree) and an image code
    (each render changes the responses a lot)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, 20, generator=g, dtype=torch.float64)
    train_x = torch.randn(N, D, generator=g, dtype=torch.float64)
    new_x = torch.randn(60, D, generator=g, dtype=torch.float64)
    faces = np.repeat(np.arange(60), 3)
    jitter = torch.randn(180, 20, generator=g, dtype=torch.float64)
    return train_x, train_x @ w, new_x, new_x @ w, faces, new_x[faces] @ w, jitter


def test_nuisance_transfer_tells_a_face_code_from_an_image_code(renders_of_faces):
    train_x, train_r, new_x, clean_r, faces, render_r, jitter = renders_of_faces
    face = encoding.nuisance_transfer(train_x, train_r, new_x, faces, clean_r,
                                      render_r + 0.05 * jitter)
    image = encoding.nuisance_transfer(train_x, train_r, new_x, faces, clean_r,
                                       render_r + 5 * jitter)
    assert np.median(face["share"]) > 0.95 > 0.5 > np.median(image["share"])
    assert face["decoding_nuisance"] > 0.95 > image["decoding_nuisance"]
    assert face["identification_nuisance"] > image["identification_nuisance"]
    assert face["decoded_nuisance"].shape == (180, D)
    margins = encoding.nuisance_margins(
        {"face": face["decoded_nuisance"], "image": image["decoded_nuisance"]},
        new_x[faces], faces)
    difference, low, high = margins["image"]
    assert list(margins) == ["image"] and 0 < low < difference < high
    scores = {("net", "deep", "trained"): face, ("pixels", "pixel PCs", "pixels"): image}
    table = encoding.nuisance_table(scores)
    assert table.model.tolist() == ["trained"]
    assert {"share", *encoding.NUISANCE_COLUMNS} <= set(table.columns)


def test_alternative_space_table_rows(planted):
    x, linear, noise, _, _ = planted
    spaces = {"params": x, "bent": torch.tanh(2 * x)}
    table = encoding.alternative_space_table(
        spaces, {("net", "deep", "trained"): linear}, noise, n_shape=3)
    assert table[["space", "network"]].values.tolist() == [
        ["params", "net"], ["params", "pixels"], ["bent", "net"], ["bent", "pixels"]]
    ev = table.set_index(["space", "network"]).encoding_ev
    assert ev[("params", "net")] > ev[("bent", "net")] and ev[("params", "pixels")] < 0.1


def test_unit_rows_and_descriptor_distances():
    g = np.random.default_rng(0)
    assert np.allclose(np.linalg.norm(encoding.unit_rows(g.normal(size=(5, 4))),
                                      axis=1), 1)
    with pytest.raises(ValueError, match="all zeros"):
        encoding.unit_rows(np.zeros((2, 3)))
    clean = g.normal(size=(60, 8))
    faces = np.repeat(np.arange(60), 3)
    noisy = clean[faces] + 0.1 * g.normal(size=(180, 8))
    real = g.normal(size=(20, 8))
    table = encoding.descriptor_distances({"net": (clean, noisy, real)}, faces)
    median = table.groupby("pairs").distance.median()
    assert median["renders of one synthetic face"] < median["different synthetic faces"]
    assert (table.pairs == "renders of one synthetic face").sum() == 50 * 3


def test_reconstruction_identification_of_exact_and_random_reconstructions():
    g = torch.Generator().manual_seed(4)
    chips = torch.randint(0, 256, (30, 3, 8, 8), generator=g, dtype=torch.uint8)
    grey = chips.double().mean(1).flatten(1).numpy()
    own = np.random.default_rng(0).normal(size=(30, 5))
    exact = encoding.reconstruction_identification(chips, grey, own, own, [2, 10])
    assert exact["pixels"].tolist() == [1.0, 1.0] == exact["descriptor"].tolist()
    shuffled = encoding.reconstruction_identification(chips, grey[::-1], own,
                                                      own[::-1], [10])
    assert shuffled["pixels"][0] < 0.5


def test_reconstruct_rejects_bad_parameters():
    with pytest.raises(ValueError, match="finite 2-d"):
        renders.reconstruct(None, np.full((2, 3), np.nan), None)


def test_claim1_report_states_each_criterion():
    margins = {"untrained": (0.2, 0.1, 0.3), "pixels": (-0.1, -0.2, 0.0)}
    verdict, inputs, lines = encoding.claim1_report((0.9, 0.85, 0.95), (0.7, 0.6, 0.8),
                                                    margins, 0.5)
    assert verdict == VERDICTS[1]
    assert lines[0] == f"claim 1 {VERDICTS[1]}."
    assert lines[1].endswith(": met") and lines[2].endswith(": met")
    assert lines[3].endswith(": met") and lines[4].endswith(": not met")
    assert "0.5 times" in lines[5]
    assert inputs["nuisance_margin_pixels"] == [-0.1, -0.2, 0.0]
    with pytest.raises(ValueError, match="value, low, high"):
        encoding.claim1_report((0.9, 0.8), (0.7, 0.6, 0.8), margins, 0.5)


def test_descriptor_sentence_and_findings():
    table = pd.DataFrame({"network": "net", "layer": "fc",
                          "model": ["trained"] * 3 + ["untrained"] * 3,
                          "ev": [0.5, 0.6, 0.7, 0.1, 0.2, 0.3]})
    ratios = pd.DataFrame({"network": ["net", "net", "pixels"],
                           "layer": ["fc", "fc", "pixel PCs"],
                           "model": ["trained", "untrained", "pixels"],
                           "ratio": [0.9, 0.7, 0.95], "low": [0.8, 0.6, 0.9],
                           "high": [1.0, 0.8, 1.0]})
    shares = {("net", "fc", "trained"): (0.8, 0.7, 0.9),
              ("net", "fc", "untrained"): (0.3, 0.2, 0.4),
              ("net", "matched pixel PCs", "pixels"): (0.1, 0.0, 0.2)}
    alternatives = pd.DataFrame({"network": "net", "layer": "fc", "model": "trained",
                                 "space": ["a", "b"], "encoding_ev": [0.6, 0.2]})
    text = encoding.descriptor_sentence("net", "fc", table, ratios, shares, alternatives)
    assert "EV, 0.6, is above the untrained one's (0.2)" in text
    assert "ratio, 0.9, is above" in text and "best in the a space (a 0.6, b 0.2)" in text
    headline = {("net", "trained"): {"units": 3, "pooled_ev": (0.5, 0.4, 0.6),
                                     "identification": np.array([0.9, 0.5])},
                ("net", "untrained"): {"units": 3, "pooled_ev": (0.1, 0.0, 0.2),
                                       "identification": np.array([0.6, 0.1])}}
    units_80 = {("net", "trained"): (10.0, 8.0, 12.0),
                ("net", "untrained"): (np.nan, np.nan, np.nan)}
    record = encoding.claim1_findings(
        2000, {"net": "fc"}, table, ratios, shares, {}, alternatives, ["encoding_ev"],
        {}, headline, units_80, {}, {"median_distance": {("net", "kind"): 0.5}},
        {"net": VERDICTS[0]}, {"net": {}}, "rule")
    assert record["networks"]["net"]["median_encoding_ev"]["descriptor"] == 0.6
    assert record["ceiling_ratio"]["pixels"]["pixels"]["pixel PCs"] == [0.95, 0.9, 1.0]
    assert record["descriptor_decoding"]["net | trained"]["identification_n50"] == 0.5
    assert record["domain"]["median_distance"] == {"net | kind": 0.5}
    assert record["alternative_spaces"]["net | fc | trained | b"] == {"encoding_ev": 0.2}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # seaborn's, on Matplotlib
def test_figures_draw_every_network(planted, renders_of_faces):
    x, _, _, models, layers = planted
    table = encoding.encoding_table(x, x, models, layers)
    figures = [plots.encoding_figure(table, [0.1, 0.2], ["net"])]
    ratios = pd.DataFrame({"network": ["net", "net", "pixels"],
                           "layer": ["fc", "fc", "pixel PCs"],
                           "model": ["trained", "untrained", "pixels"],
                           "ratio": [0.9, 0.7, 0.95], "low": [0.8, 0.6, 0.9],
                           "high": [1.0, 0.8, 1.0]})
    figures.append(plots.ceiling_ratio_figure(ratios, 0.8, ["net", "other"]))
    distances = pd.DataFrame({"network": "net", "pairs": ["a", "b"] * 5,
                              "distance": np.linspace(0, 1, 10)})
    figures.append(plots.distance_figure(distances, ["net"]))
    assert [len(f.axes) >= 1 for f in figures] == [True] * 3
    assert len(figures[1].axes) == 2
    for figure in figures:
        plt.close(figure)
