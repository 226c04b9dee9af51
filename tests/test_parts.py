"""The small parts the face space and the recorder are built from: input checks, the
cache, the block normaliser, the shape model, and how the modules import one another."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facelin import _validation as check
from facelin import cache
from facelin.normalize import BlockNormalizer
from facelin.shape import ShapeModel, align_shapes, fit_pca

PACKAGE = Path(__file__).resolve().parent.parent / "facelin"


# ----------------------------------------------------------------- input checks

def test_image_lists_in_both_pixel_kinds():
    grey = np.zeros((2, 8, 9), dtype=np.uint8)
    floats = check.image_list(grey)
    assert len(floats) == 2 and floats[0].dtype == np.float32 and floats[0].shape == (8, 9)
    dlib_ready = check.image_list(torch.from_numpy(grey), pixels="uint8")
    assert dlib_ready[0].shape == (8, 9, 3) and dlib_ready[0].flags.c_contiguous
    assert check.image_list([np.ones((4, 4, 1))])[0].shape == (4, 4)
    with pytest.raises(ValueError, match=r"images\[0\]: float pixels must lie in \[0, 1\]"):
        check.image_list([np.full((4, 4), 2.0)])
    with pytest.raises(ValueError, match=r"images\[1\]: NaN"):
        check.image_list([np.zeros((4, 4)), np.full((4, 4), np.nan)])
    with pytest.raises(TypeError, match="uint8 pixels"):
        check.image_list([np.zeros((4, 4))], pixels="uint8")
    with pytest.raises(ValueError, match="non-empty"):
        check.image_list([])


def test_arrays_and_numbers():
    points = check.landmark_array(np.zeros((2, 5, 2)), 2, n_points=(68, 5))
    assert points.dtype == np.float64
    with pytest.raises(ValueError, match=r"expected shape \(3, 68, 2\)"):
        check.landmark_array(np.zeros((3, 5, 2)), 3, n_points=68)
    assert check.param_array(np.zeros(4), 4).shape == (1, 4)
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        check.param_array([[0, 0], [np.inf, 0]], 2)
    with pytest.raises(ValueError, match="right > left"):
        check.box_array([[5, 0, 1, 9]], 1)
    assert check.positive_int(3.0, "n") == 3
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n: expected an integer >= 1"):
            check.positive_int(bad, "n")


# ----------------------------------------------------------------- cache

def test_cache_folder_keys_and_atomic_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    assert cache.key("a", 1) == cache.key("a", 1) != cache.key("a", 2)
    target = cache.path("thing", cache.key("a", 1), ".txt")
    assert target.parent == tmp_path and target.name.startswith("thing-")
    with cache.atomic_write(target) as temporary:
        temporary.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with cache.atomic_write(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "done" and sorted(tmp_path.iterdir()) == [target]


def test_cached_tensors_are_computed_once_and_a_damaged_file_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3.0)}

    first = cache.tensors("demo", {"n": 3}, compute)
    again = cache.tensors("demo", {"n": 3}, compute)
    assert len(calls) == 1 and torch.equal(first["x"], again["x"])
    cache.tensors("demo", {"n": 4}, compute)  # another description, another file
    assert len(calls) == 2 and len(list(tmp_path.glob("demo-*.pt"))) == 2
    for stored in tmp_path.glob("demo-*.pt"):
        stored.write_bytes(b"truncated")
    assert torch.equal(cache.tensors("demo", {"n": 3}, compute)["x"], first["x"])
    assert len(calls) == 3


# ----------------------------------------------------------------- block normaliser

def test_block_normalizer_scales_each_block_and_inverts():
    rng = np.random.default_rng(0)
    params = rng.normal(3.0, [1.0] * 2 + [5.0] * 3 + [0.1] * 4, size=(400, 9))
    normalizer = BlockNormalizer((2, 3, 4)).fit(params)
    z = normalizer.transform(params)
    assert np.allclose(z.mean(axis=0), 0)
    variances = z.var(axis=0, ddof=1)
    for block in (slice(0, 2), slice(2, 5), slice(5, 9)):
        assert np.isclose(variances[block].sum(), 1 / 3)  # each block an equal share
    assert np.allclose(normalizer.inverse_transform(z), params)
    model = BlockNormalizer((1, 1)).fit_moments(0.0, [4.0, 9.0])
    assert np.allclose(model.transform([[2.0, 3.0]]), [[1 / np.sqrt(2)] * 2])
    with pytest.raises(ValueError, match="zero variance"):
        BlockNormalizer((1, 1)).fit(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        BlockNormalizer().transform(np.zeros((1, 50)))


# ----------------------------------------------------------------- shape model and PCA

def test_shape_model_round_trips_its_parameters():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(68, 2)) * 30
    shapes = base + rng.normal(size=(40, 68, 2))
    model = ShapeModel(5).fit(shapes)
    params = model.params(shapes[:3])
    again = model.params(model.landmarks(params))
    assert np.allclose(again, params, atol=1e-9)
    aligned = align_shapes(shapes, model.mean_shape_)
    assert np.allclose(np.einsum("npj,pj->n", aligned, model.mean_shape_), 1)


def test_pca_matches_an_svd_and_reports_rank():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(30, 200))
    pca = fit_pca(data, 4, "test")
    _, singular, vt = np.linalg.svd(data - data.mean(axis=0), full_matrices=False)
    assert np.allclose(pca.explained_variance_, singular[:4] ** 2 / 29)
    assert np.allclose(np.abs(pca.components_), np.abs(vt[:4]))
    low_rank = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 200))
    with pytest.raises(ValueError, match="rank 2, fewer than the 4 test components"):
        fit_pca(low_rank, 4, "test")


# ----------------------------------------------------------------- imports

def test_facespace_does_not_import_datasets():
    code = ("import sys, facelin.facespace; "
            "assert 'facelin.datasets' not in sys.modules; import facelin.datasets")
    subprocess.run([sys.executable, "-c", code], check=True)


#: Private names that modules outside the face-space, data and recording modules still
#: import from other facelin modules.
KNOWN_PRIVATE_IMPORTS: set = set()


def test_no_private_names_cross_modules():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name != "__version__":
                        found.add((str(path.relative_to(PACKAGE)),
                                   node.module.split(".")[-1], alias.name))
    assert found <= KNOWN_PRIVATE_IMPORTS, sorted(found - KNOWN_PRIVATE_IMPORTS)
