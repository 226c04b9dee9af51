"""Run facelin's benchmark scripts and show their tables (the book's "Performance" page).

Every script in ``benchmarks/`` prints a side-by-side table measured in one run and, with
``--json PATH``, writes it as ``{"benchmark", "machine", "rows": [...]}``, each row with a
label and one or more ``ratio_*`` columns. :func:`run_benchmarks` runs the scripts found
in small sizes, :func:`markdown_table` and :func:`plot_ratios` show the results.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

__all__ = ["QUICK_ARGUMENTS", "machine", "environment", "run_benchmarks", "markdown_table", "plot_ratios",
           "plot_column", "gram_memory_gib", "condition_rows", "condition_verdicts",
           "plot_scaling"]

# Small sizes for each script: "--quick" where the script has it, else its own arguments.
# None: the script takes minutes (the least-squares benchmark times himalaya and a sweep
# over sizes); its table is read from benchmarks/results/<name>.json, written by
# `python benchmarks/<script> --json benchmarks/results/<name>.json`.
QUICK_ARGUMENTS = {
    "bench_extract.py": ["--quick"],
    "bench_linalg.py": None,
    "bench_facespace.py": ["--quick"],
    "bench_dlib.py": ["--chips", "32", "--repeats", "1"],
}


def machine() -> str:
    """CPU model, logical CPUs, torch threads, and the GPU when there is one."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = (f"{name}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name()}"
    return text


def environment(device=None) -> dict:
    """The conditions of a measurement: CPU model, logical CPUs, torch version and
    threads, the OpenMP wait policy, the 1/5/15-minute load average now (other work on
    the machine) and the GPU when ``device`` is a CUDA device."""
    info = dict(machine=machine(), cpu=machine().split(",")[0], logical_cpus=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
                load_average=[round(x, 2) for x in os.getloadavg()])
    if device is not None and torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_benchmarks(folder, out_dir, names=None, timeout=600) -> dict:
    """Run each benchmark script of ``folder`` found in ``names`` (default: those of
    :data:`QUICK_ARGUMENTS`) with its quick arguments; returns name -> JSON table, with
    the wall time of the run (``"wall_s"``) and its printed table (``"stdout"``) added.
    A script whose arguments are None is not run: its recorded table
    ``folder/results/<name>.json`` is read, marked ``"recorded": True``.

    A script that fails raises RuntimeError with the end of its error output.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {}
    for name in names or QUICK_ARGUMENTS:
        script = folder / name
        if not script.is_file():
            continue
        if QUICK_ARGUMENTS.get(name, []) is None:
            recorded = folder / "results" / (script.stem + ".json")
            if recorded.is_file():
                tables[script.stem] = dict(json.loads(recorded.read_text()), recorded=True)
            continue
        out = out_dir / (script.stem + ".json")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script), *QUICK_ARGUMENTS.get(name, []),
                               "--json", str(out)], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        table = json.loads(out.read_text())
        table["wall_s"] = time.perf_counter() - start
        table["stdout"] = done.stdout
        tables[script.stem] = table
    return tables


def _row_label(row):
    """A row's name: its method (prefixed by the workload's number when rows are grouped
    by workload, as "1. ..."), else its first text column."""
    method = row.get("method") or row.get("implementation")
    if method is None:
        return next(v for v in row.values() if isinstance(v, str))
    item = row.get("item")
    return f"{item.split('.')[0]}. {method}" if isinstance(item, str) else method


def markdown_table(table, columns=None) -> str:
    """A benchmark's rows as a Markdown table (all columns, or the ones named)."""
    rows = table["rows"]
    columns = columns or [k for k in rows[0] if k != "key"]

    def cell(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return "" if value is None else str(value)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _bars(ax, table, column, xlabel, log=False):
    rows = [row for row in table["rows"] if row.get(column) is not None]
    names = [_row_label(row) for row in rows][::-1]
    ax.barh(range(len(rows)), [row[column] for row in rows][::-1], color="tab:blue")
    ax.set_yticks(range(len(rows)), [n if len(n) < 40 else n[:37] + "..." for n in names],
                  fontsize=8)
    ax.set_xlabel(xlabel)
    if log:
        ax.set_xscale("log")


def plot_ratios(tables, xlabels=None, ax_width=5.0):
    """One horizontal bar chart per benchmark, of its ``ratio_*`` column (1 = reference).

    ``xlabels`` maps a benchmark's name to its axis label (say which way is better);
    by default the column's name.
    """
    import matplotlib.pyplot as plt

    tables = {name: t for name, t in tables.items()
              if any(k.startswith("ratio") for k in t["rows"][0])}
    fig, axes = plt.subplots(1, len(tables), figsize=(ax_width * len(tables), 3.2),
                             squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        ratio = next(k for k in table["rows"][0] if k.startswith("ratio"))
        _bars(ax, table, ratio, (xlabels or {}).get(name, ratio.replace("_", " ")))
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return fig


def plot_column(table, column, xlabel, log=False):
    """One benchmark's column (for example peak memory) as a horizontal bar chart."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    _bars(ax, table, column, xlabel, log)
    ax.set_title(table.get("benchmark", ""), fontsize=10)
    fig.tight_layout()
    return fig


def gram_memory_gib(units) -> float:
    """Memory of the float64 response Gram matrix R^T R that streaming keeps for decoders."""
    return 8.0 * units * units / 2**30


def _by_condition(table) -> dict:
    """{cond: {method key: row}} of the "by condition" section of a bench_linalg table."""
    by_cond = {}
    for row in table["rows"]:
        if row.get("section") == "by condition":
            by_cond.setdefault(row["cond"], {})[row["key"]] = row
    return by_cond


def condition_rows(table) -> list[dict]:
    """One row per condition number from a bench_linalg table: each method's best time
    as a multiple of the floor (the batched Gram matrices), facelin's speed-up over
    torch.linalg.lstsq, the relative errors against gelsd and the paths facelin's
    problems took."""
    out = []
    for cond, rows in _by_condition(table).items():
        ours = rows["facelin"]
        out.append({"cond": f"{cond:.0e}", "facelin x floor": ours["x_floor"],
                    "torch lstsq x floor": rows["torch"]["x_floor"],
                    "normal eq. x floor": rows["composition"]["x_floor"],
                    "facelin vs torch lstsq": rows["torch"]["x_floor"] / ours["x_floor"],
                    "facelin err": f"{ours['rel_err_gelsd']:.1e}",
                    "torch lstsq err": f"{rows['torch']['rel_err_gelsd']:.1e}",
                    "normal eq. err": f"{rows['composition']['rel_err_gelsd']:.1e}",
                    "facelin paths": ours.get("paths", "")})
    return out


def condition_verdicts(table, method="facelin", max_x_floor=1.5, floor_up_to=1e6,
                       torch_up_to=1e8, error_factor=10.0) -> list[dict]:
    """The targets of a batched solver (``method``, a row key of the table: "facelin",
    or "composition" for the plain normal equations), judged per condition number of a
    bench_linalg table: ``near_floor``, best time at most ``max_x_floor`` times the
    floor's (judged up to cond ``floor_up_to``, else None); ``not_slower``, at least as
    fast as torch.linalg.lstsq (up to ``torch_up_to``, else None); ``accurate``,
    relative error against gelsd at most ``error_factor`` times torch.linalg.lstsq's
    (Householder QR with column pivoting), or than 1e-15 when that is smaller."""
    verdicts = []
    for cond, rows in _by_condition(table).items():
        ours, qr = rows[method], rows["torch"]
        verdicts.append(dict(
            cond=f"{cond:.0e}",
            near_floor=ours["x_floor"] <= max_x_floor if cond <= floor_up_to else None,
            not_slower=qr["x_floor"] >= ours["x_floor"] if cond <= torch_up_to else None,
            accurate=ours["rel_err_gelsd"] <= error_factor * max(qr["rel_err_gelsd"], 1e-15)))
    return verdicts


def plot_scaling(table):
    """The size sweep of a bench_linalg table: best seconds of facelin, torch.linalg.lstsq
    and the floor against each size varied (log-log), one panel per size."""
    import matplotlib.pyplot as plt

    labels = {"n": "rows n", "p": "columns p", "batch": "problems", "k": "right-hand sides"}
    names = list(dict.fromkeys(point["vary"] for point in table["sweep"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        points = [pt for pt in table["sweep"] if pt["vary"] == name]
        sizes = [pt["value"] for pt in points]
        for key, label, style in [("facelin", "facelin", "o-"),
                                  ("torch", "torch.linalg.lstsq", "s--"),
                                  ("floor", "floor (bmm)", "^:")]:
            ax.plot(sizes, [pt[f"{key}_min"] for pt in points], style, label=label, ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(size) for size in sizes], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(labels.get(name, name))
        ax.set_title(f"varying {labels.get(name, name)}", fontsize=9)
    axes[0][0].set_ylabel("best seconds")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig

