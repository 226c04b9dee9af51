"""The piecewise-affine warp against scikit-image's PiecewiseAffineTransform + warp.

Tolerance: 1e-5 on images in [0, 1]. scikit-image computes in float64; facelin hands
torch's ``grid_sample`` float32 coordinates and float32 pixels, and the rasteriser of
`render` computes each pixel's frame point in float32: some 1e-5 pixel of position error
at these sizes, which on these smooth images (at most about 0.1 per pixel) moves a
bilinear read by about 1e-6, and float32 pixels carry 6e-8 relative rounding (measured:
4e-7 for `sample`, 3e-7 for `render`). A wrong triangle, corner or pixel-centre
convention (a position error of a pixel or more) fails it by orders of magnitude.
"""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial import Delaunay
from skimage.transform import PiecewiseAffineTransform, warp

from facelin.warp import PiecewiseAffineWarp, match_channels

TOLERANCE = 1e-5


def skimage_transform(source, target):
    """scikit-image's transform that maps ``source`` points onto ``target`` points."""
    if hasattr(PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
        transform = PiecewiseAffineTransform.from_estimate(source, target)
        assert transform
        return transform
    transform = PiecewiseAffineTransform()
    assert transform.estimate(source, target)
    return transform


def smooth_image(shape, seed):
    rng = np.random.default_rng(seed)
    image = gaussian_filter(rng.random(shape), sigma=4)
    return (image - image.min()) / (image.max() - image.min())


def triangles_of(points):
    return {frozenset(t) for t in Delaunay(points).simplices.tolist()}


@pytest.fixture(scope="module")
def mesh():
    """A warp in a 64-pixel frame over a jittered triangular lattice of 30 points inside a
    hexagon of 6 more: no four points near one circle and no three near one line, so
    small moves keep the Delaunay triangulation."""
    rows, cols = np.mgrid[0:5, 0:6]
    lattice = np.column_stack([cols.ravel() + 0.5 * (rows.ravel() % 2) - 2.75,
                               (rows.ravel() - 2) * np.sqrt(3) / 2])
    angles = np.arange(6) * np.pi / 3 + 0.1
    hexagon = 4.5 * np.column_stack([np.cos(angles), np.sin(angles)])
    rng = np.random.default_rng(0)
    points = np.concatenate([lattice + rng.normal(0, 0.05, lattice.shape), hexagon])
    return PiecewiseAffineWarp.in_frame(points, 64)


def test_sample_equals_scikit_image(mesh):
    rng = np.random.default_rng(1)
    image = smooth_image((120, 100), seed=2).astype(np.float32)
    # the frame's mesh bent onto the image: a similarity plus a few pixels of jitter
    landmarks = mesh.reference * 1.3 + [12.0, 20.0] + rng.normal(0, 2.0, (36, 2))
    ours = mesh.sample([image], landmarks[None], channels=1)[0, :, 0]
    frame = warp(image, skimage_transform(mesh.reference, landmarks),
                 output_shape=(64, 64), order=1, cval=np.nan)
    assert mesh.n_pixels > 1000 and not np.isnan(frame[mesh.mask]).any()
    assert np.abs(ours - frame[mesh.mask]).max() < TOLERANCE


def test_render_equals_scikit_image(mesh):
    rng = np.random.default_rng(3)
    frame = smooth_image((64, 64), seed=4)
    textures = frame[mesh.mask][None, :, None]
    angle = 0.2
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = mesh.reference @ turn.T * 1.4 + [10.0, 5.0] + rng.normal(0, 0.2, (36, 2))
    # the comparison needs scikit-image's triangulation of the targets to be the mesh
    assert triangles_of(landmarks) == {frozenset(t) for t in mesh.triangles.tolist()}
    ours = mesh.render(textures, landmarks[None], 110, background=0.5)[0, :, :, 0]
    filled = textures[0, mesh.fill_index, 0].reshape(64, 64)  # as render reads it
    theirs = warp(filled, skimage_transform(landmarks, mesh.reference),
                  output_shape=(110, 110), order=1, cval=np.nan)
    covered = mesh._texture_coordinates(landmarks[None], 110)[0, :, :, 0] > -1
    both = covered & ~np.isnan(theirs)
    assert both.sum() > 0.99 * covered.sum() > 3000  # they disagree only on the outline
    assert np.abs(ours[both] - theirs[both]).max() < TOLERANCE
    assert np.all(ours[~covered] == 0.5)


def test_mesh_keeps_the_triangles_inside_the_outline():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5], [5, 20]], float)
    whole = PiecewiseAffineWarp.in_frame(square, 32)
    inside = PiecewiseAffineWarp.in_frame(square, 32, outline=[0, 1, 2, 3])
    assert len(inside.triangles) < len(whole.triangles)
    assert inside.mask.sum() < whole.mask.sum()
    assert not np.isin(5, inside.triangles)  # the point above the square is left out
    used = PiecewiseAffineWarp.in_frame(square, 32, used=[0, 1, 2, 3])
    assert set(np.unique(used.triangles)) == {0, 1, 2, 3}


def test_weights_reproduce_the_reference_points_and_channels_convert(mesh):
    # each covered pixel is the barycentric combination of its triangle's corners
    rows, cols = np.nonzero(mesh.mask)
    assert np.allclose(mesh.weights @ mesh.reference, np.column_stack([cols, rows]))
    assert np.allclose(mesh.weights.sum(axis=1), 1)
    grey = np.random.default_rng(5).random((2, 7, 1))
    assert match_channels(match_channels(grey, 3), 1) == pytest.approx(grey)
    assert match_channels(grey, 1) is grey
