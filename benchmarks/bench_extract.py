"""Recording unit responses: facelin.extract.record vs the usual ways, time and peak memory.

dlib's face-recognition ResNet (`facelin.models.load_dlib_resnet`), random 150x150 chips,
all 29 ReLU layers with 10,000 units sampled in total, plus the pooled (256-d) and
descriptor (128-d) layers. Rows:

- bare forward pass (nothing recorded): the floor;
- ``facelin.extract.record``: forward hooks call the compiled gather op, which writes the
  chosen units straight into a preallocated matrix;
- the same with 1,000 sampled units, to show that memory follows the units chosen;
- hooks that index the chosen units of each layer output where it lies (no clone) and
  write them into a preallocated matrix: the fair baseline, the same work as record's
  in plain PyTorch indexing;
- hooks that clone whole layers, copy them to the host every batch and concatenate at
  the end, then index (what thingsvision / Net2Brain-style extractors do);
- a torch.fx-traced sub-graph returning the chosen layers (what torchvision's
  ``create_feature_extractor`` builds), indexed every batch, blocks concatenated.

Time: every method makes one pass over ``--time-faces`` chips (256) per round, rounds
interleaved in one process (so a change in the machine's load falls on all alike), after
a one-batch warm-up; the table gives min / median / max seconds over the rounds
(``--rounds``, 5) and "x floor": the best time over the best time of the floor, the bare
forward pass (the work no recording can avoid), and the median of the per-round ratios. Peak memory: one pass of each method
over ``--faces`` chips (2,000) in its own fresh process, the process's peak resident set
size (``getrusage`` ru_maxrss) minus its resident set size just before the method starts
(model, chips and indices already in memory). Also reported: the share of a record pass
spent inside the gather op (each call timed), which a change of load cannot skew between
methods, and the gather op against its plain-PyTorch composition (indexing each captured
layer output into the matrix) on one batch, with one copy of the chosen units as floor. Every method's response
matrix is checked equal, element for element, to record's.

    python benchmarks/bench_extract.py [--faces 2000] [--units 10000] [--batch 64]
                                       [--time-faces 256] [--rounds 5] [--quick]
                                       [--json PATH]
    --quick: 128 chips for both, 3 rounds.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil
import torch
import torch.fx

from facelin import _ops, extract
from facelin.models import load_dlib_resnet
from facelin.performance import environment, machine

METHODS = {
    "forward": "bare forward pass (no recording)",
    "record": "facelin.extract.record",
    "record_1k": "facelin.extract.record, 1,000 sampled units",
    "hooks_index": "hooks: index chosen units in place into one matrix",
    "hooks_clone": "hooks: clone whole layers, to host, concatenate, index",
    "fx_subgraph": "torch.fx sub-graph of the layers, index per batch",
}



def unit_request(model, total_units):
    """All ReLU layers with total_units sampled across them (evenly, as far as each layer's
    size allows), plus the pooled and descriptor layers whole."""
    shapes = model.unit_counts()
    relus = [n for n in model.layer_names() if n.rsplit(".", 1)[-1] in ("relu", "relu1")]
    sizes = {name: int(np.prod(shapes[name])) for name in relus}
    units, left = {}, total_units
    for name in sorted(relus, key=sizes.get):  # small layers first, the rest share what is left
        units[name] = min(sizes[name], left // (len(relus) - len(units)))
        left -= units[name]
    units = {name: units[name] for name in relus}
    units.update(pool="all", descriptor="all")
    return units


def flat_indices(model, units_table, layers):
    """The flat C*H*W index of every recorded unit, per layer (for the baselines)."""
    shapes = model.unit_counts()
    indices = {}
    for name, cols in layers.items():
        part = units_table.iloc[cols]
        shape = shapes[name]
        if len(shape) == 1:
            flat = part.channel
        else:
            _, h, w = shape
            flat = part.channel * h * w + part.y * w + part.x
        indices[name] = torch.tensor(flat.to_numpy())
    return indices


def batches(chips, batch):
    return [chips[i:i + batch] for i in range(0, len(chips), batch)]


def run_forward(model, chips, units, batch):
    with torch.inference_mode():
        for x in batches(chips, batch):
            model(x)
    return None


def run_record(model, chips, units, batch):
    return extract.record(model, chips, units, batch_size=batch, progress=False).values


def run_hooks_index(model, chips, units, batch):
    """The fair baseline: each hook indexes its layer's chosen units where the output lies
    and writes them into the batch's rows of one preallocated matrix."""
    probe = extract.record(model, chips[:1], units, progress=False)
    indices = flat_indices(model, probe.units, probe.layers)
    values = torch.empty(len(chips), probe.values.shape[1], dtype=probe.values.dtype)
    state = {"row0": 0}

    def hook(module, inputs, out, name):
        rows = slice(state["row0"], state["row0"] + out.shape[0])
        values[rows, probe.layers[name]] = out.flatten(1)[:, indices[name]]

    hooks = [model.get_submodule(name).register_forward_hook(
        lambda m, i, out, name=name: hook(m, i, out, name)) for name in units]
    try:
        with torch.inference_mode():
            for x in batches(chips, batch):
                model(x)
                state["row0"] += x.shape[0]
    finally:
        for h in hooks:
            h.remove()
    return values


def run_hooks_clone(model, chips, units, batch):
    probe = extract.record(model, chips[:1], units, progress=False)
    indices = flat_indices(model, probe.units, probe.layers)
    stored = {name: [] for name in units}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda m, i, out, name=name: stored[name].append(out.clone().cpu()))
        for name in units]
    with torch.inference_mode():
        for x in batches(chips, batch):
            model(x)
    for h in hooks:
        h.remove()
    selected = []
    for name in units:
        whole = torch.cat(stored.pop(name))
        selected.append(whole.flatten(1)[:, indices[name]])
        del whole
    return torch.cat(selected, 1)


class _LeafTracer(torch.fx.Tracer):
    """Every module without children is one graph node, so each layer name is a node."""

    def is_leaf_module(self, module, qualified_name):
        return next(module.children(), None) is None


class _Body(torch.nn.Module):
    """The network after its input normalisation (which checks values and cannot trace)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        x = self.model.stem(x)
        for _, block in self.model.blocks():
            x = block(x)
        return self.model.descriptor(self.model.pool(x))


def feature_subgraph(model, names):
    """A traced graph that returns the named layers' outputs and computes nothing after."""
    body = _Body(model)
    graph = _LeafTracer().trace(body)
    wanted = {f"model.{name}": name for name in names}
    nodes = {wanted[n.target]: n for n in graph.nodes
             if n.op == "call_module" and n.target in wanted}
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        graph.output(tuple(nodes[name] for name in names))
    graph.erase_node(output)
    sub = torch.fx.GraphModule(body, graph)
    sub.graph.eliminate_dead_code()
    sub.recompile()
    return sub


def run_fx_subgraph(model, chips, units, batch):
    probe = extract.record(model, chips[:1], units, progress=False)
    indices = flat_indices(model, probe.units, probe.layers)
    names = list(units)
    sub = feature_subgraph(model, names)
    blocks = []
    with torch.inference_mode():
        for x in batches(chips, batch):
            outs = sub(model.normalize(x))
            blocks.append(torch.cat([o.flatten(1)[:, indices[name]]
                                     for name, o in zip(names, outs)], 1))
    return torch.cat(blocks)


RUNNERS = {"forward": run_forward, "record": run_record, "record_1k": run_record,
           "hooks_index": run_hooks_index, "hooks_clone": run_hooks_clone,
           "fx_subgraph": run_fx_subgraph}
BASELINES = ("hooks_index", "hooks_clone", "fx_subgraph")


def setup(faces, total_units, method):
    model = load_dlib_resnet()
    chips = torch.randint(0, 256, (faces, 3, 150, 150), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    units = unit_request(model, 1000 if method == "record_1k" else total_units)
    return model, chips, units


def memory_worker(method, faces, total_units, batch, out_path):
    """One pass of one method in this fresh process: peak memory, and the responses."""
    model, chips, units = setup(faces, total_units, method)
    run = RUNNERS[method]
    run(model, chips[:batch], units, batch)  # warm-up: allocator, kernel selection
    rss_before = psutil.Process().memory_info().rss
    values = run(model, chips, units, batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if values is not None:
        np.save(out_path, values.numpy())
    print(json.dumps({"method": method, "peak_mb": max(peak - rss_before, 0) / 2**20,
                      "units": None if values is None else int(values.shape[1])}))


def time_methods(faces, total_units, batch, rounds):
    """Seconds per pass of every method, interleaved round by round in one process so that
    a change in the machine's load falls on all methods alike."""
    model, chips, units = setup(faces, total_units, "record")
    units_1k = unit_request(model, 1000)
    calls = {m: (RUNNERS[m], units_1k if m == "record_1k" else units) for m in METHODS}
    for run, request in calls.values():
        run(model, chips[:batch], request, batch)  # warm-up
    seconds = {m: [] for m in METHODS}
    for _ in range(rounds):
        for method, (run, request) in calls.items():
            start = time.perf_counter()
            run(model, chips, request, batch)
            seconds[method].append(time.perf_counter() - start)
    ops = gather_vs_indexing(model, chips, units, batch, max(rounds, 5) * 4)
    return seconds, gather_share(model, chips, units, batch), ops


def gather_vs_indexing(model, chips, units, batch, rounds):
    """The compiled gather op against its plain-PyTorch composition, on one batch of
    every requested layer's output (captured once): seconds of each round for the op,
    for indexing ``values[:, cols] = out.flatten(1)[:, index]``, and for the floor, one
    copy of the batch's chosen units into the matrix; and whether op and indexing agree."""
    probe = extract.record(model, chips[:1], units, progress=False)
    indices = flat_indices(model, probe.units, probe.layers)
    captured = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda m, i, out, name=name: captured.__setitem__(name, out.clone()))
        for name in units]
    with torch.inference_mode():
        model(chips[:batch])
    for h in hooks:
        h.remove()
    values = torch.empty(min(batch, len(chips)), probe.values.shape[1],
                         dtype=probe.values.dtype)
    expected = values.clone()

    def op():
        for name, out in captured.items():
            _ops.gather_units(out, indices[name], "none", values, 0, probe.layers[name].start)

    def composition():
        for name, out in captured.items():
            expected[:, probe.layers[name]] = out.flatten(1)[:, indices[name]]

    fns = {"op": op, "composition": composition, "floor": lambda: values.copy_(expected)}
    seconds = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            seconds[key].append(time.perf_counter() - start)
    op()
    composition()
    return seconds, bool(torch.equal(values, expected))


def gather_share(model, chips, units, batch):
    """The fraction of a record pass spent inside the gather op (timed around each call):
    a measure of the cost of gathering that the machine's load cannot skew between runs."""
    inside = []
    gather = _ops.gather_units

    def timed(*args):
        start = time.perf_counter()
        gather(*args)
        inside.append(time.perf_counter() - start)
    _ops.gather_units = timed
    try:
        start = time.perf_counter()
        run_record(model, chips, units, batch)
        total = time.perf_counter() - start
    finally:
        _ops.gather_units = gather
    return sum(inside) / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--units", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time-faces", type=int, default=256,
                        help="faces of each timed pass")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed passes of every method, interleaved")
    parser.add_argument("--quick", action="store_true",
                        help="128 faces, timed in 3 rounds")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    faces, time_faces, rounds = ((128, 128, 3) if args.quick else
                                 (args.faces, min(args.time_faces, args.faces), args.rounds))
    if args.worker:
        memory_worker(args.worker, faces, args.units, args.batch, args.out)
        return

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            out = os.path.join(tmp, f"{method}.npy")
            done = subprocess.run(
                [sys.executable, __file__, "--worker", method, "--faces", str(faces),
                 "--units", str(args.units), "--batch", str(args.batch), "--out", out],
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{method} failed:\n{done.stderr[-3000:]}")
            rows[method] = json.loads(done.stdout.strip().splitlines()[-1])
            rows[method]["path"] = out if rows[method]["units"] else None
        reference = np.load(rows["record"]["path"])
        for method in BASELINES:
            rows[method]["equal_to_record"] = bool(
                np.array_equal(np.load(rows[method]["path"]), reference))
    env_before = [round(x, 2) for x in os.getloadavg()]
    seconds, share, (op_seconds, op_equal) = time_methods(time_faces, args.units, args.batch,
                                                          rounds)

    table = []
    for method, label in METHODS.items():
        ratios = [t / f for t, f in zip(seconds[method], seconds["forward"])]
        table.append({"method": label, "key": method, "faces": faces,
                      "time_faces": time_faces, "units": rows[method]["units"],
                      "seconds": round(float(np.median(seconds[method])), 4),
                      "seconds_min": round(min(seconds[method]), 4),
                      "seconds_max": round(max(seconds[method]), 4),
                      "x_floor": round(min(seconds[method]) / min(seconds["forward"]), 3),
                      "ratio_to_forward": round(float(np.median(ratios)), 3),
                      "peak_mb": round(rows[method]["peak_mb"], 1),
                      "equal_to_record": rows[method].get("equal_to_record"),
                      "gather_share": round(share, 4) if method == "record" else None})
    env = environment()
    env["load_average_before"] = env_before
    print(f"Recording dlib ResNet responses, batch {args.batch}, on {machine()}; load "
          f"average {env['load_average']} (before: {env_before})")
    print(f"seconds: a pass over {time_faces} chips, min / median / max of {rounds} "
          f"interleaved rounds; x floor: best time / best time of the bare forward pass "
          f"(the floor); x fwd (median): median ratio to the forward pass of the same round")
    print(f"peak MB: one pass over {faces} chips, peak RSS minus RSS before the method, "
          f"each method in a fresh process")
    header = (f"{'method':<52} {'units':>6} {'min s':>7} {'median s':>8} {'max s':>7} "
              f"{'x floor':>7} {'x fwd':>6} {'peak MB':>8} {'= record':>8}")
    print(header)
    print("-" * len(header))
    for row in table:
        equal = "" if row["equal_to_record"] is None else str(row["equal_to_record"])
        units = "" if row["units"] is None else str(row["units"])
        print(f"{row['method']:<52} {units:>6} {row['seconds_min']:>7.3f} "
              f"{row['seconds']:>8.3f} {row['seconds_max']:>7.3f} {row['x_floor']:>7.3f} "
              f"{row['ratio_to_forward']:>6.3f} {row['peak_mb']:>8.1f} {equal:>8}")
    print(f"time inside the gather op: {share:.1%} of a record pass")
    op_labels = {"op": "gather_units op (compiled)",
                 "composition": "values[:, cols] = out.flatten(1)[:, index] (torch)",
                 "floor": "floor: one copy of the batch's chosen units"}
    op_rows = [{"method": label, "key": key, "seconds": float(np.median(op_seconds[key])),
                "seconds_min": min(op_seconds[key]), "seconds_max": max(op_seconds[key]),
                "x_floor": min(op_seconds[key]) / min(op_seconds["floor"])}
               for key, label in op_labels.items()]
    op_rows[0]["speedup"] = min(op_seconds["composition"]) / min(op_seconds["op"])
    op_rows[0]["equal_to_composition"] = op_equal
    print(f"\nthe gather op against its composition: one batch of {args.batch} outputs of "
          f"every requested layer, {len(op_seconds['op'])} rounds")
    for row in op_rows:
        print(f"{row['method']:<52} min {row['seconds_min']:.5f}  median {row['seconds']:.5f}"
              f"  max {row['seconds_max']:.5f}  x floor {row['x_floor']:.3g}")
    print(f"op speed-up over the composition: {op_rows[0]['speedup']:.3g}x, equal: {op_equal}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"benchmark": "extract_record", "machine": machine(),
                       "environment": env, "faces": faces,
                       "time_faces": time_faces, "batch": args.batch, "rounds": rounds,
                       "memory": "peak RSS (getrusage) minus RSS before the method, fresh "
                       "process per method", "rows": table, "op_rows": op_rows}, out,
                      indent=2)


if __name__ == "__main__":
    main()
