"""Least squares in facelin's compiled core against plain PyTorch, himalaya and the floor.

Every row gives min / median / max seconds over the repeats, and "x floor": its best
time over the best time of the floor, the matrix products that the problem cannot avoid
(named on each workload). Methods of a workload take turns round by round, so that a
burst of load from other processes falls on all of them alike; the minimum is the time
least disturbed. Float64 throughout. Sections:

1. batched least squares by condition number (32 problems 2000x50, 50 right-hand sides,
   B = A X + noise): facelin.linalg.lstsq, torch.linalg.lstsq (gelsy), the same normal
   equations in plain PyTorch (the composition the compiled op must beat), their
   relative error against LAPACK gelsd, and the path each facelin problem took;
   floor: the batched Gram matrices A^T A and A^T B (two bmm);
2. the same against size: n, p, number of problems and of right-hand sides, one at a
   time around that workload (well-conditioned Gaussian designs);
3. each remaining compiled op against its plain-PyTorch composition: gather_gram against
   advanced indexing (floor: one copy of the output), ridge_path_sse against the dense
   residuals in blocks of targets (floor: the fitted values' product);
4. the linalg API: a shared design (floor: X^T Y), subset fits (floor: R^T R and R^T Y),
   ridge_cv against himalaya's RidgeCV (floor: X^T X and X^T Y).

    python benchmarks/bench_linalg.py [--quick] [--repeats 5] [--json PATH]
                                      [--device cpu|cuda] [--himalaya-numpy]

--quick: smaller workloads in sections 3 and 4 and a shorter sweep (sections 1 keeps
its sizes); --json writes the rows, the sweep and the environment (CPU, cores, torch,
threads, load average before and after) to PATH.

OpenMP threads wait passively here (OMP_WAIT_POLICY=PASSIVE unless set otherwise): on a
machine with few cores shared with other work, spinning threads otherwise make small
LAPACK calls many times slower, for every method alike.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402  (after the OpenMP setting)
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from facelin import _ops, linalg  # noqa: E402
from facelin.performance import environment, machine  # noqa: E402

F64 = torch.float64
CONDITIONS = (1.0, 1e2, 1e4, 1e6, 1e8)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fns: dict, repeats: int, device: torch.device) -> dict:
    """Seconds of every call, {name: [seconds per round]}, the functions taking turns
    round by round after one warm-up call each; also {name: last result} as ``.out``."""
    seconds = {name: [] for name in fns}
    out = {}
    for name, fn in fns.items():
        out[name] = fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name] = None
            gc.collect()
            _sync(device)
            start = time.perf_counter()
            out[name] = fn()
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds, out


def spread(times):
    return dict(seconds_min=min(times), seconds_median=statistics.median(times),
                seconds_max=max(times))


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest relative error over problems (Frobenius norms per problem)."""
    x, ref = x.reshape(-1, *ref.shape[-2:]).cpu(), ref.reshape(-1, *ref.shape[-2:]).cpu()
    return float((torch.linalg.matrix_norm(x - ref) / torch.linalg.matrix_norm(ref)).max())


class Table:
    def __init__(self):
        self.rows = []

    def workload(self, section, item, floor_name, times, floor_key, methods, extra=None):
        """Rows of one workload: methods maps a key of ``times`` to its label."""
        floor = min(times[floor_key])
        for key, label in methods.items():
            row = dict(section=section, item=item, method=label, key=key, floor=floor_name,
                       **spread(times[key]), x_floor=min(times[key]) / floor)
            row.update((extra or {}).get(key, {}))
            self.rows.append(row)

    def print(self, header):
        print(header)
        fmt = "{:<44} {:<40} {:>9} {:>9} {:>9} {:>8} {:>9} {:<28}"
        print(fmt.format("workload", "method", "min s", "median s", "max s", "x floor",
                         "speed-up", "accuracy / paths"))
        print("-" * 166)
        last = None
        for r in self.rows:
            if r["item"] != last:
                print(f"{r['item']}  [floor: {r['floor']}]")
            last = r["item"]
            speed = r.get("speedup")
            print(fmt.format("", r["method"][:40], f"{r['seconds_min']:.4f}",
                             f"{r['seconds_median']:.4f}", f"{r['seconds_max']:.4f}",
                             f"{r['x_floor']:.3g}", "" if speed is None else f"{speed:.3g}x",
                             r.get("accuracy", "")))


def with_condition(batch, n, p, cond, seed):
    """Designs with singular values log-uniform from 1 to 1/cond (Gaussian for cond 1)."""
    rng = np.random.default_rng(seed)
    if cond == 1.0:
        return torch.from_numpy(rng.standard_normal((batch, n, p)))
    u = np.linalg.qr(rng.standard_normal((batch, n, p)))[0]
    v = np.linalg.qr(rng.standard_normal((batch, p, p)))[0]
    return torch.from_numpy(u * np.logspace(0, -np.log10(cond), p) @ v.transpose(0, 2, 1))


def regression(a, k, seed):
    """B = A X + noise at 1e-3 of the signal's scale."""
    gen = torch.Generator().manual_seed(seed)
    b = a @ torch.randn(a.shape[0], a.shape[2], k, generator=gen, dtype=F64)
    return b + 1e-3 * b.std() * torch.randn(b.shape, generator=gen, dtype=F64)


def gelsd(a, b):
    return torch.stack([torch.from_numpy(scipy.linalg.lstsq(
        ai.numpy(), bi.numpy(), lapack_driver="gelsd")[0]) for ai, bi in zip(a, b)])


def batched_methods(a, b):
    at = a.transpose(1, 2)

    def normal_equations():
        return torch.cholesky_solve(at @ b, torch.linalg.cholesky(at @ a))

    return {"facelin": lambda: linalg.lstsq(a, b, return_path=True),
            "floor": lambda: (torch.bmm(at, a), torch.bmm(at, b)),
            "torch": lambda: torch.linalg.lstsq(a, b).solution,
            "composition": normal_equations}


BATCHED_LABELS = {"facelin": "facelin.linalg.lstsq",
                  "floor": "floor: bmm A^T A, A^T B",
                  "torch": "torch.linalg.lstsq (gelsy)",
                  "composition": "normal equations + Cholesky (torch)"}


def by_condition(table, device, repeats, batch=32, n=2000, p=50, k=50):
    for cond in CONDITIONS:
        a = with_condition(batch, n, p, cond, seed=int(np.log10(cond)))
        b = regression(a, k, seed=1)
        ref = gelsd(a, b)
        ad, bd = a.to(device), b.to(device)
        times, out = measure(batched_methods(ad, bd), repeats, device)
        x, path = out["facelin"]
        counts = torch.bincount(path.cpu(), minlength=len(_ops.LSTSQ_PATHS)).tolist()
        paths = ", ".join(f"{c} {name}" for c, name in zip(counts, _ops.LSTSQ_PATHS) if c)
        results = {"facelin": x, "torch": out["torch"], "composition": out["composition"]}
        extra = {}
        for key, res in results.items():
            err = rel_err(res, ref)
            extra[key] = dict(rel_err_gelsd=err, accuracy=f"rel err {err:.1e}")
        ours = min(times["facelin"])
        extra["facelin"].update(speedup=min(times["torch"]) / ours, paths=paths,
                                speedup_vs_composition=min(times["composition"]) / ours,
                                accuracy=f"{extra['facelin']['accuracy']}; {paths}")
        table.workload("by condition", f"1. {batch} problems {n}x{p}, {k} rhs, cond {cond:.0e}",
                       "bmm A^T A, A^T B", times, "floor", BATCHED_LABELS, extra)
        for row in table.rows[-len(BATCHED_LABELS):]:
            row["cond"] = cond


def sweep(device, repeats, quick):
    """Best seconds of facelin, torch.linalg.lstsq and the floor, one size at a time."""
    base = dict(n=2000, p=50, batch=32, k=50)
    grid = dict(n=[500, 1000, 2000, 4000, 8000], p=[10, 25, 50, 100, 200],
                batch=[8, 16, 32, 64, 128], k=[1, 10, 50, 200, 500])
    if quick:
        grid = {name: values[:4] for name, values in grid.items()}
    points = []
    for name, values in grid.items():
        for value in values:
            size = dict(base, **{name: value})
            a = with_condition(size["batch"], size["n"], size["p"], 1.0, seed=value)
            b = regression(a, size["k"], seed=2)
            fns = batched_methods(a.to(device), b.to(device))
            del fns["composition"]
            times, _ = measure(fns, repeats, device)
            points.append(dict(vary=name, value=value, **size,
                               **{f"{key}_min": min(t) for key, t in times.items()},
                               **{f"{key}_median": statistics.median(t)
                                  for key, t in times.items()}))
    return points


def ops_vs_composition(table, device, repeats, quick):
    gen = torch.Generator().manual_seed(4)
    units, n_subsets, size = (1024, 200, 100) if quick else (2048, 500, 200)
    r = torch.randn(1000, units, generator=gen, dtype=F64)
    gram = (r.T @ r).to(device)
    idx = torch.stack([torch.randperm(units, generator=gen)[:size]
                       for _ in range(n_subsets)]).to(device)
    out = torch.empty(n_subsets, size, size, dtype=F64, device=device)
    blocks = _ops.gather_gram(gram, idx)
    times, res = measure({"op": lambda: _ops.gather_gram(gram, idx),
                          "composition": lambda: gram[idx[:, :, None], idx[:, None, :]],
                          "floor": lambda: out.copy_(blocks)}, repeats, device)
    same = bool(torch.equal(res["op"], res["composition"]))
    table.workload("ops", f"3a. gather_gram: {n_subsets} subsets of {size} from {units}",
                   "one copy of the (b, s, s) output", times, "floor",
                   {"op": "facelin gather_gram (compiled)",
                    "composition": "gram[s[:, :, None], s[:, None, :]] (torch)",
                    "floor": "floor: copy of the output"},
                   {"op": dict(speedup=min(times["composition"]) / min(times["op"]),
                               accuracy=f"equal to indexing: {same}")})

    n_te, rank, k, n_alpha = (200, 50, 1024, 20) if quick else (200, 512, 4096, 20)
    m = torch.randn(n_te, rank, generator=gen, dtype=F64).to(device)
    z = torch.randn(rank, k, generator=gen, dtype=F64).to(device)
    y = torch.randn(n_te, k, generator=gen, dtype=F64).to(device)
    gains = torch.rand(n_alpha, rank, generator=gen, dtype=F64).to(device)
    empty = torch.empty(0, 0, dtype=F64, device=device)
    block = 256

    def composition():
        sse = torch.empty(n_alpha, k, dtype=F64, device=device)
        for t0 in range(0, k, block):
            fitted = m @ (gains[:, :, None] * z[None, :, t0:t0 + block])
            sse[:, t0:t0 + block] = (y[None, :, t0:t0 + block] - fitted).square().sum(1)
        return sse

    coefs = gains[:, :, None] * z[None]
    times, res = measure({"op": lambda: _ops.ridge_path_sse(m, z, y, gains, empty),
                          "composition": composition,
                          "floor": lambda: m @ coefs}, repeats, device)
    err = rel_err(res["op"][None], res["composition"][None])
    table.workload("ops", f"3b. ridge_path_sse: {n_alpha} alphas, {n_te}x{rank}, {k} targets",
                   "the fitted values M diag(g) Z of every alpha (one GEMM)", times, "floor",
                   {"op": "facelin ridge_path_sse (compiled)",
                    "composition": f"dense residuals, {block} targets a block (torch)",
                    "floor": "floor: M (g Z), all alphas"},
                   {"op": dict(speedup=min(times["composition"]) / min(times["op"]),
                               accuracy=f"vs composition {err:.1e}")})


def shared_design(table, device, repeats, k):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 50, generator=gen, dtype=F64).to(device)
    y = (x @ torch.randn(50, k, generator=gen, dtype=F64).to(device)
         + torch.randn(2000, k, generator=gen, dtype=F64).to(device))
    times, out = measure({"facelin": lambda: linalg.lstsq(x, y), "floor": lambda: x.T @ y,
                          "torch": lambda: torch.linalg.lstsq(x, y).solution}, repeats, device)
    err = rel_err(out["facelin"][None], out["torch"][None])
    table.workload("api", f"4a. shared design 2000x50, {k} targets", "X^T Y", times, "floor",
                   {"facelin": "facelin.linalg.lstsq (one SVD)", "floor": "floor: X^T Y",
                    "torch": "torch.linalg.lstsq"},
                   {"facelin": dict(speedup=min(times["torch"]) / min(times["facelin"]),
                                    accuracy=f"vs torch lstsq {err:.1e}")})


def subsets(table, device, repeats, units, n_subsets, size, sample):
    gen = torch.Generator().manual_seed(4)
    r = torch.randn(2000, units, generator=gen, dtype=F64).to(device)
    y = r[:, :50] + torch.randn(2000, 50, generator=gen, dtype=F64).to(device)
    idx = torch.stack([torch.randperm(units, generator=gen)[:size]
                       for _ in range(n_subsets)]).to(device)
    rc, yc = r - r.mean(0), y - y.mean(0)
    chosen = idx[:sample]
    times, out = measure({
        "facelin": lambda: linalg.subset_lstsq(r, y, idx),
        "floor": lambda: (rc.T @ rc, rc.T @ yc),
        "torch": lambda: torch.stack([torch.linalg.lstsq(rc[:, s], yc).solution
                                      for s in chosen])}, repeats, device)
    # The per-subset loop is timed on `sample` subsets and scaled to all of them.
    times["torch"] = [t * n_subsets / sample for t in times["torch"]]
    err = rel_err(out["facelin"][:sample], out["torch"])
    table.workload("api", f"4b. {n_subsets} subsets of {size} from {units} units",
                   "R^T R and R^T Y", times, "floor",
                   {"facelin": "facelin.linalg.subset_lstsq", "floor": "floor: R^T R, R^T Y",
                    "torch": f"torch.linalg.lstsq per subset (x{n_subsets / sample:g})"},
                   {"facelin": dict(speedup=min(times["torch"]) / min(times["facelin"]),
                                    accuracy=f"vs torch lstsq {err:.1e}")})


def ridge_cv(table, device, repeats, p, k, himalaya_numpy):
    gen = torch.Generator().manual_seed(5 + p)
    x = torch.randn(2000, p, generator=gen, dtype=F64)
    # Targets with signal-to-noise from high to low, so that the chosen alphas spread.
    w = torch.randn(p, k, generator=gen, dtype=F64) * torch.logspace(-2, 0.5, k, dtype=F64)
    y = x @ w + 3.0 * torch.randn(2000, k, generator=gen, dtype=F64) + 1.0
    alphas = np.logspace(-1, 6, 20)
    xd, yd = x.to(device), y.to(device)
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    backends = (["torch_cuda"] if device.type == "cuda"
                else ["torch"] + (["numpy"] if himalaya_numpy else []))
    fns = {"facelin": lambda: linalg.ridge_cv(xd, yd, alphas, cv=10),
           "floor": lambda: (xd.T @ xd, xd.T @ yd)}
    for name in backends:
        backend = set_backend(name, on_error="raise")
        xb, yb = backend.asarray(x.numpy()), backend.asarray(y.numpy())
        fns[name] = (lambda xb=xb, yb=yb: RidgeCV(alphas=alphas, cv=10, fit_intercept=True)
                     .fit(xb, yb))
    times, out = measure(fns, repeats, device)
    ours = out["facelin"]
    extra = {"facelin": dict(accuracy=f"median EV {float(ours.explained_variance.median()):.3f}",
                             speedup=min(times[backends[0]]) / min(times["facelin"]))}
    labels = {"facelin": "facelin.linalg.ridge_cv", "floor": "floor: X^T X, X^T Y"}
    for name in backends:
        backend = set_backend(name)
        model = out[name]
        best = np.asarray(backend.to_numpy(model.best_alphas_))
        same = np.isclose(best, ours.alpha.cpu().numpy(), rtol=1e-6).mean()
        labels[name] = f"himalaya RidgeCV ({name})"
        extra[name] = dict(accuracy=f"same alpha {same:.1%}")
    set_backend("numpy")
    table.workload("api", f"4c. ridge CV p={p}, {k} targets, 20 alphas, 10 folds",
                   "X^T X and X^T Y", times, "floor", labels, extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the tables to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--himalaya-numpy", action="store_true",
                        help="also time himalaya's numpy backend (minutes)")
    args = parser.parse_args()
    device = torch.device(args.device)
    quick, repeats = args.quick, args.repeats
    env_before = environment(device)
    table = Table()
    by_condition(table, device, repeats)
    points = sweep(device, repeats, quick)
    ops_vs_composition(table, device, repeats, quick)
    shared_design(table, device, repeats, 10_000 if quick else 20_000)
    subsets(table, device, repeats, *((1024, 100, 100, 20) if quick else (4096, 1000, 200, 50)))
    for p in (50, 512):
        # himalaya takes seconds per fit: at most 3 rounds.
        ridge_cv(table, device, min(repeats, 3), p, 256 if quick else 1024,
                 args.himalaya_numpy)
    env = environment(device)
    env["load_average_before"] = env_before["load_average"]
    table.print(f"facelin.linalg benchmark ({'quick' if quick else 'full'} sizes, float64, "
                f"{repeats} repeats) on {machine()}; load average {env['load_average']}")
    print("\nsweep (best seconds; x floor = facelin / floor, vs torch = torch / facelin)")
    for pt in points:
        print(f"  {pt['vary']:>5} = {pt['value']:<5} facelin {pt['facelin_min']:.4f}  "
              f"torch {pt['torch_min']:.4f}  floor {pt['floor_min']:.4f}  "
              f"x floor {pt['facelin_min'] / pt['floor_min']:.3g}  "
              f"vs torch {pt['torch_min'] / pt['facelin_min']:.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(benchmark="bench_linalg", machine=machine(), environment=env,
                           quick=quick, repeats=repeats, device=str(device), rows=table.rows,
                           sweep=points), f, indent=1)


if __name__ == "__main__":
    main()
