"""Least squares in facelin's compiled core against plain PyTorch and himalaya.

Prints one side-by-side table: for each workload the time of facelin.linalg and of the
alternatives, measured in this run (best of several repeats), their ratio to facelin, an
accuracy figure and the target the ratio is held to. Float64 throughout.

    python benchmarks/bench_linalg.py [--quick] [--json PATH] [--device cpu|cuda]

--quick shrinks every workload (a smoke run, ratios not comparable to the targets);
the cheaper workloads time their methods in turns, round by round, and keep each best;
--json also writes the table, with the machine's description, to PATH.

OpenMP threads wait passively here (OMP_WAIT_POLICY=PASSIVE unless set otherwise): on a
machine with few cores shared with other work, spinning threads otherwise make small
LAPACK calls up to a hundred times slower, for every method alike.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402  (after the OpenMP setting)
import torch  # noqa: E402

from facelin import linalg  # noqa: E402

F64 = torch.float64


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")


def _timed(fn, device: torch.device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def best_time(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    """Best wall-clock time of `repeats` calls (the least disturbed by other processes)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        out = None
        t, out = _timed(fn, device)
        best = min(best, t)
    return best, out


def race(fns: dict, rounds: int, device: torch.device) -> dict:
    """Best time and last result of each function, the functions taking turns round by
    round, so that a burst of load from other processes hits all of them alike."""
    best = {name: (float("inf"), None) for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = (best[name][0], None)
            t, out = _timed(fn, device)
            best[name] = (min(best[name][0], t), out)
    return best


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest relative error over problems (norms taken per problem)."""
    x, ref = x.reshape(-1, *ref.shape[-2:]), ref.reshape(-1, *ref.shape[-2:])
    return float((torch.linalg.matrix_norm(x - ref) / torch.linalg.matrix_norm(ref)).max())


class Table:
    def __init__(self):
        self.rows = []

    def add(self, item, method, seconds, reference=None, accuracy="", target=None, met=None,
            note=""):
        ratio = None if reference is None else seconds / reference
        self.rows.append(dict(item=item, method=method, seconds=seconds,
                              ratio_to_facelin=ratio, accuracy=accuracy, target=target,
                              met=met, note=note))

    def print(self, header: str):
        print(header)
        fmt = "{:<34} {:<36} {:>9} {:>10} {:<26} {:<26}"
        print(fmt.format("workload", "method", "time (s)", "x facelin", "accuracy", "target"))
        print("-" * 146)
        last = None
        for r in self.rows:
            ratio = "" if r["ratio_to_facelin"] is None else f"{r['ratio_to_facelin']:.2f}"
            target = "" if r["target"] is None else (
                f"{r['target']} {'MET' if r['met'] else 'MISSED'}")
            print(fmt.format(r["item"] if r["item"] != last else "", r["method"],
                             f"{r['seconds']:.3f}", ratio, r["accuracy"], target))
            if r["note"]:
                print(fmt.format("", f"  ({r['note']})", "", "", "", ""))
            last = r["item"]


def shared_design(table, device, k, repeats):
    item = f"1. shared design 2000x50, {k} targets"
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(2000, 50, generator=gen, dtype=F64).to(device)
    y = (x @ torch.randn(50, k, generator=gen, dtype=F64).to(device)
         + torch.randn(2000, k, generator=gen, dtype=F64).to(device))
    timed = race({"ours": lambda: linalg.lstsq(x, y), "floor": lambda: x.T @ y}, repeats + 2,
                 device)
    (ours_t, ours), (floor_t, _) = timed["ours"], timed["floor"]
    torch_t, ref = best_time(lambda: torch.linalg.lstsq(x, y).solution, max(1, repeats - 1),
                             device)
    err = f"vs torch lstsq {rel_err(ours, ref):.1e}"
    table.add(item, "facelin.linalg.lstsq", ours_t, ours_t, err)
    table.add(item, "X^T Y alone (the floor)", floor_t, ours_t,
              target="facelin <= 1.5x floor", met=ours_t <= 1.5 * floor_t)
    table.add(item, "torch.linalg.lstsq", torch_t, ours_t, target=">= 15x", met=torch_t >= 15 * ours_t)


def many_problems(table, device, batch, repeats):
    item = f"2. {batch} problems 2000x50, 50 rhs"
    gen = torch.Generator(device="cpu").manual_seed(2)
    a = torch.randn(batch, 2000, 50, generator=gen, dtype=F64)
    b = torch.randn(batch, 2000, 50, generator=gen, dtype=F64)
    # Accuracy reference: LAPACK gelsd in float64 on the CPU.
    ref = torch.linalg.lstsq(a, b, driver="gelsd").solution
    a, b = a.to(device), b.to(device)

    def normal_equations():
        at = a.transpose(1, 2)
        return torch.cholesky_solve(at @ b, torch.linalg.cholesky(at @ a))

    timed = race({"ours": lambda: linalg.lstsq(a, b),
                  "torch": lambda: torch.linalg.lstsq(a, b).solution,
                  "ne": normal_equations}, 2 * repeats + 1, device)
    (ours_t, ours), (torch_t, tl), (ne_t, ne) = timed["ours"], timed["torch"], timed["ne"]
    table.add(item, "facelin.linalg.lstsq", ours_t, ours_t, f"rel err {rel_err(ours.cpu(), ref):.1e}")
    table.add(item, "torch.linalg.lstsq", torch_t, ours_t, f"rel err {rel_err(tl.cpu(), ref):.1e}",
              ">= 3x", torch_t >= 3 * ours_t)
    table.add(item, "normal equations + cholesky (torch)", ne_t, ours_t,
              f"rel err {rel_err(ne.cpu(), ref):.1e}", "> 1x", ne_t > ours_t)

    # The same comparison of accuracy on ill-conditioned designs (cond 1e6), zero residual.
    item_c = "2b. accuracy at cond 1e6 (32 problems)"
    rng = np.random.default_rng(3)
    u = np.linalg.qr(rng.standard_normal((32, 2000, 50)))[0]
    v = np.linalg.qr(rng.standard_normal((32, 50, 50)))[0]
    ac = torch.from_numpy(u * np.logspace(0, -6, 50) @ v.transpose(0, 2, 1))
    xc = torch.randn(32, 50, 50, generator=gen, dtype=F64)
    bc = (ac @ xc).to(device)
    ac = ac.to(device)
    at = ac.transpose(1, 2)
    for name, fn in [("facelin.linalg.lstsq", lambda: linalg.lstsq(ac, bc)),
                     ("torch.linalg.lstsq", lambda: torch.linalg.lstsq(ac, bc).solution),
                     ("normal equations + cholesky (torch)",
                      lambda: torch.cholesky_solve(at @ bc, torch.linalg.cholesky(at @ ac)))]:
        t, x = best_time(fn, 1, device)
        table.add(item_c, name, t, None, f"rel err {rel_err(x.cpu(), xc):.1e}")


def subsets(table, device, units, n_subsets, size, sample, repeats):
    item = f"3. {n_subsets} subsets of {size} from {units} units"
    gen = torch.Generator(device="cpu").manual_seed(4)
    r = torch.randn(2000, units, generator=gen, dtype=F64).to(device)
    y = (r[:, :50] + torch.randn(2000, 50, generator=gen, dtype=F64).to(device))
    idx = torch.stack([torch.randperm(units, generator=gen)[:size] for _ in range(n_subsets)])
    idx = idx.to(device)
    ours_t, ours = best_time(lambda: linalg.subset_lstsq(r, y, idx), repeats, device)
    # The same fits one by one: centred data (centring not timed), one lstsq per subset.
    rc, yc = r - r.mean(0), y - y.mean(0)
    chosen = idx[:sample]
    loop_t, loop = best_time(
        lambda: torch.stack([torch.linalg.lstsq(rc[:, s], yc).solution for s in chosen]),
        1, device)
    scaled = loop_t * n_subsets / sample
    note = (f"timed on {sample} subsets, scaled x{n_subsets / sample:g}"
            if sample < n_subsets else "")
    table.add(item, "facelin.linalg.subset_lstsq", ours_t, ours_t,
              f"vs torch lstsq {rel_err(ours[:sample], loop):.1e}")
    table.add(item, "torch.linalg.lstsq per subset", scaled, ours_t, "", ">= 20x",
              scaled >= 20 * ours_t, note)


def ridge_cv(table, device, p, k, repeats, himalaya_repeats):
    item = f"4. ridge CV p={p}, {k} targets"
    gen = torch.Generator(device="cpu").manual_seed(5 + p)
    x = torch.randn(2000, p, generator=gen, dtype=F64)
    # Targets with signal-to-noise from high to low, so that the chosen alphas spread.
    w = torch.randn(p, k, generator=gen, dtype=F64) * torch.logspace(-2, 0.5, k, dtype=F64)
    y = x @ w + 3.0 * torch.randn(2000, k, generator=gen, dtype=F64) + 1.0
    alphas = np.logspace(-1, 6, 20)
    xd, yd = x.to(device), y.to(device)
    ours_t, ours = best_time(lambda: linalg.ridge_cv(xd, yd, alphas, cv=10), repeats, device)
    table.add(item, "facelin.linalg.ridge_cv", ours_t, ours_t,
              f"median EV {float(ours.explained_variance.median()):.3f}")
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    backends = ["torch_cuda"] if device.type == "cuda" else ["numpy", "torch"]
    target = ">= 5x" if p <= 50 else ">= 3x"
    need = 5 if p <= 50 else 3
    for name in backends:
        backend = set_backend(name, on_error="raise")

        def fit():
            return RidgeCV(alphas=alphas, cv=10, fit_intercept=True).fit(
                backend.asarray(x.numpy()), backend.asarray(y.numpy()))

        # numpy's backend is by far the slowest: one run of it is enough for the ratio.
        t, model = best_time(fit, 1 if name == "numpy" else himalaya_repeats, device)
        best = np.asarray(backend.to_numpy(model.best_alphas_))
        same = np.isclose(best, ours.alpha.cpu().numpy(), rtol=1e-6).mean()
        pred = np.asarray(backend.to_numpy(model.predict(backend.asarray(x.numpy()))))
        ours_pred = ours.predict(xd).cpu().numpy()
        diff = np.abs(pred - ours_pred).max() / np.abs(ours_pred).max()
        table.add(item, f"himalaya RidgeCV ({name})", t, ours_t,
                  f"same alpha {same:.1%}, pred {diff:.0e}", target, t >= need * ours_t)
    set_backend("numpy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    table = Table()
    repeats = 2 if quick else 3
    shared_design(table, device, 10_000 if quick else 100_000, repeats)
    many_problems(table, device, 32 if quick else 256, repeats)
    subsets(table, device, 1024 if quick else 4096, 100 if quick else 1000, 100 if quick else 200,
            20 if quick else 50, repeats)
    for p in (50, 512):
        ridge_cv(table, device, p, 256 if quick else 4096, repeats, 1 if quick else 2)
    header = (f"facelin.linalg benchmark ({'quick sizes' if quick else 'full sizes'}, float64) "
              f"on {machine(device)}")
    table.print(header)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(device), quick=quick, device=str(device),
                           rows=table.rows), f, indent=1)


if __name__ == "__main__":
    main()
