"""Nuisance renders and the cached responses of a network's units to new chips."""
import numpy as np
import pytest
import torch

from facelin import experiment, renders
from facelin.datasets import lfw_subset
from facelin.facespace import FaceSpace


@pytest.fixture(scope="module")
def small_space():
    faces = lfw_subset()
    return FaceSpace(n_shape=5, n_appearance=5).fit(faces.images[:60],
                                                   faces.landmarks[:60])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    return tmp_path


def test_nuisance_renders_show_each_face_clean_and_moved(small_space, cache):
    result = renders.nuisance_renders(small_space, n_faces=3, n_versions=2, seed=4)
    assert result.params.shape == (3, 10)
    assert result.clean_chips.shape == (3, 3, 150, 150)
    assert result.chips.shape == (6, 3, 150, 150) and result.chips.dtype == torch.uint8
    np.testing.assert_array_equal(result.faces, [0, 0, 1, 1, 2, 2])
    images, marks = small_space.synthesize(result.params)
    clean = experiment.to_chips(images)
    # the clean render is the face itself, up to the uint8 round trip
    assert (clean.int() - result.clean_chips.int()).abs().max() <= 1
    np.testing.assert_allclose(result.clean_landmarks, marks)
    # nuisance moves every render away from the clean one, and each differently
    moved = (result.chips.float() - result.clean_chips[result.faces].float()).abs()
    assert (moved.mean((1, 2, 3)) > 1).all()
    assert not torch.equal(result.chips[0], result.chips[1])
    again = renders.nuisance_renders(small_space, n_faces=3, n_versions=2, seed=4)
    assert torch.equal(again.chips, result.chips)
    assert len(list(cache.glob("nuisance-renders-*.pt"))) == 1


def test_record_gives_the_population_units(small_space, cache):
    stim = experiment.stimuli(4, seed=2, space=small_space, progress=False)
    layers = ["stage1.block1.relu", "descriptor"]
    recorded = renders.record(stim.chips, stim.landmarks, layers, pretrained=False,
                              units_per_layer=30)
    for layer in layers:
        reference = experiment.layer_responses(stim.chips, stim.landmarks, layer,
                                               pretrained=False, units_per_layer=30)
        torch.testing.assert_close(recorded[layer], reference)
    assert len(list(cache.glob("claim1-responses-*.pt"))) == 1


def test_detect_reports_where_no_face_is_found(small_space, cache):
    stim = experiment.stimuli(2, seed=2, space=small_space, progress=False)
    blank = torch.full((1, 3, 150, 150), 128, dtype=torch.uint8)
    found, points = renders.detect(torch.cat([stim.chips, blank]))
    assert found.shape == (3,) and not found[2]
    assert points.shape == (found.sum(), 68, 2)
