"""Face descriptors per second: facelin's port of dlib's ResNet vs dlib itself.

The same 256 aligned chips (real faces from scikit-image's lfw_subset) go through dlib's
``compute_face_descriptor`` (one call on the whole list, dlib's own batching) and through
`facelin.models.load_dlib_resnet` (float32, batched, in contiguous and channels-last
layouts, and on the GPU when there is one). All rows are timed in one run so the ratios
compare like with like; the last column compares each row with the fastest CPU row of
facelin (for the GPU, its speed-up over the CPU). ``--json PATH`` also writes the table
as JSON.

    python benchmarks/bench_dlib.py [--chips 256] [--batch 64] [--repeats 3] [--json PATH]
"""
import argparse
import json
import time

import numpy as np
import torch

from facelin import faces
from facelin.models import load_dlib_resnet
from facelin.models.dlib_resnet import DEFAULT_WEIGHTS
from facelin.performance import machine



def best_time(run, repeats: int, warm_up=None) -> float:
    (warm_up or run)()  # allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(model, chips, batch: int, device: str, channels_last: bool):
    model = model.to(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    chips = chips.to(device).contiguous(memory_format=layout)

    def run():
        with torch.inference_mode():
            for start in range(0, len(chips), batch):
                model(chips[start:start + batch])
        if device == "cuda":
            torch.cuda.synchronize()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    import dlib
    _, lfw_chips = faces.lfw_face_chips()
    chips = lfw_chips[torch.arange(args.chips) % len(lfw_chips)]
    as_images = [np.ascontiguousarray(c.numpy().transpose(1, 2, 0).astype(np.uint8))
                 for c in chips]
    recogniser = dlib.face_recognition_model_v1(str(faces.model_file(DEFAULT_WEIGHTS)))
    model = load_dlib_resnet()

    rows = []
    dlib_seconds = best_time(lambda: recogniser.compute_face_descriptor(as_images), 1,
                             lambda: recogniser.compute_face_descriptor(as_images[:8]))
    rows.append(("dlib compute_face_descriptor", "cpu", dlib_seconds))
    for channels_last in (False, True):
        seconds = best_time(ours(model, chips, args.batch, "cpu", channels_last), args.repeats)
        layout = "channels-last" if channels_last else "contiguous"
        rows.append((f"facelin float32, batch {args.batch}, {layout}", "cpu", seconds))
    if torch.cuda.is_available():
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        seconds = best_time(ours(model, chips, args.chips, "cuda", True), args.repeats)
        rows.append((f"facelin float32, batch {args.chips}, channels-last",
                     torch.cuda.get_device_name(), seconds))

    best_cpu_seconds = min(seconds for name, device, seconds in rows[1:] if device == "cpu")
    table = [{"implementation": name, "device": device, "chips": args.chips,
              "seconds": round(seconds, 4), "images_per_s": round(args.chips / seconds, 1),
              "ratio_to_dlib": round(dlib_seconds / seconds, 2),
              "ratio_to_facelin_cpu": round(best_cpu_seconds / seconds, 2)}
             for name, device, seconds in rows]
    print(f"Face descriptors for {args.chips} chips of 150x150 on {machine()}")
    header = (f"{'implementation':<48} {'device':<24} {'images/s':>9} {'x dlib':>7} "
              f"{'x facelin cpu':>13}")
    print(header)
    print("-" * len(header))
    for row in table:
        print(f"{row['implementation']:<48} {row['device']:<24} {row['images_per_s']:>9.1f} "
              f"{row['ratio_to_dlib']:>7.2f} {row['ratio_to_facelin_cpu']:>13.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"benchmark": "dlib_resnet_descriptors", "machine": machine(),
                       "rows": table}, out, indent=2)


if __name__ == "__main__":
    main()
