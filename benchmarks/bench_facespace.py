"""Synthesising faces from the shape-appearance space: facelin's batched warp vs the
per-face piecewise-affine warp of scikit-image.

facelin renders a batch of faces by rasterising each triangle of the mesh over a window
shared by the batch and sampling the shape-free textures bilinearly (torch). The reference
is what one would write with scikit-image: one `PiecewiseAffineTransform` and one `warp`
per face (timed on fewer faces; its rate is per face). All rows run in one process, so the
ratios compare like with like. Peak memory is the process's peak resident set size after
each row (it only grows). ``--json PATH`` also writes the table as JSON.

    python benchmarks/bench_facespace.py [--faces 2000] [--size 150] [--json PATH]
"""
import argparse
import json
import resource
import time

import numpy as np
import torch

from facelin.datasets import lfw_subset
from facelin.facespace import FaceSpace
from facelin.performance import machine



def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def skimage_synthesis(space: FaceSpace, params: np.ndarray, size: int) -> np.ndarray:
    """The straightforward way: per face, the texture image and a piecewise-affine warp."""
    from skimage.transform import PiecewiseAffineTransform, warp
    landmarks = space.shape_landmarks(params[:, :space.n_shape], size)
    textures = space.texture_images(space.texture_vectors(params[:, space.n_shape:]))
    images = []
    for texture, points in zip(textures, landmarks):
        if hasattr(PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
            transform = PiecewiseAffineTransform.from_estimate(points,
                                                               space.mean_texture_points_)
        else:
            transform = PiecewiseAffineTransform()
            transform.estimate(points, space.mean_texture_points_)  # output -> texture
        images.append(warp(texture[..., 0], transform, output_shape=(size, size),
                           order=1, cval=space.background))
    return np.stack(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--reference-faces", type=int, default=20)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--quick", action="store_true",
                        help="200 faces and 5 reference faces (for the book's chapter)")
    args = parser.parse_args()
    if args.quick:
        args.faces, args.reference_faces = 200, 5

    faces = lfw_subset()
    fit_seconds, space = timed(lambda: FaceSpace().fit(faces.images, faces.landmarks))
    params = space.sample(args.faces, seed=0)
    rows = [("fit: Procrustes, warps, PCA (100 faces)", len(faces), fit_seconds,
             peak_memory_mib())]
    threads = torch.get_num_threads()
    space.synthesize(params[:16], args.size)  # warm-up
    seconds, (images, landmarks) = timed(lambda: space.synthesize(params, args.size))
    rows.append((f"facelin synthesize, {threads} threads", args.faces, seconds,
                 peak_memory_mib()))
    torch.set_num_threads(1)
    seconds, _ = timed(lambda: space.synthesize(params, args.size))
    rows.append(("facelin synthesize, 1 thread", args.faces, seconds, peak_memory_mib()))
    torch.set_num_threads(threads)
    seconds, _ = timed(lambda: space.transform(images, landmarks))
    rows.append(("facelin transform (fit images into the space)", args.faces, seconds,
                 peak_memory_mib()))
    few = params[:args.reference_faces]
    seconds, reference = timed(lambda: skimage_synthesis(space, few, args.size))
    rows.append(("scikit-image PiecewiseAffineTransform per face", len(few), seconds,
                 peak_memory_mib()))
    agreement = np.abs(reference - images[:len(few)]).mean()

    synth_rate = args.faces / rows[1][2]
    table = [{"task": name, "faces": n, "seconds": round(s, 3),
              "faces_per_s": round(n / s, 1), "peak_rss_mib": round(mib, 1),
              "facelin_speedup": round(synth_rate / (n / s), 2)
              if name.startswith("scikit") else None}
             for name, n, s, mib in rows]
    print(f"Face space at {args.size}x{args.size} on {machine()}")
    header = f"{'task':<48} {'faces':>6} {'seconds':>8} {'faces/s':>9} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for row in table:
        print(f"{row['task']:<48} {row['faces']:>6} {row['seconds']:>8.2f} "
              f"{row['faces_per_s']:>9.1f} {row['peak_rss_mib']:>9.0f}")
    print(f"facelin's {threads}-thread synthesis is "
          f"{table[-1]['facelin_speedup']:.0f}x scikit-image's per-face warp; the two "
          f"images differ by {agreement * 255:.2f} grey levels on average")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"benchmark": "facespace_synthesis", "machine": machine(),
                       "size": args.size, "rows": table,
                       "mean_abs_difference_to_skimage": float(agreement)}, out, indent=2)


if __name__ == "__main__":
    main()
