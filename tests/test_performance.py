"""facelin.performance: running benchmark scripts and showing their tables."""
import json

import pytest

from facelin import performance

SCRIPT = """
import json, sys
path = sys.argv[sys.argv.index("--json") + 1]
json.dump({{"benchmark": "demo", "machine": "m", "args": sys.argv[1:-2],
           "rows": [{{"method": "a", "seconds": 1.5, "ratio_to_a": 1.0}},
                    {{"method": "b", "seconds": 3.0, "ratio_to_a": 2.0}}]}}, open(path, "w"))
print("table")
sys.exit({code})
"""


def test_run_benchmarks_runs_scripts_with_quick_arguments(tmp_path):
    (tmp_path / "bench_extract.py").write_text(SCRIPT.format(code=0))
    tables = performance.run_benchmarks(tmp_path, tmp_path / "out")
    assert list(tables) == ["bench_extract"]  # scripts that are not there are skipped
    table = tables["bench_extract"]
    assert table["args"] == ["--quick"] and table["stdout"] == "table\n"
    assert json.loads((tmp_path / "out" / "bench_extract.json").read_text())["rows"][1][
        "ratio_to_a"] == 2.0
    text = performance.markdown_table(table, ["method", "ratio_to_a"])
    assert text.splitlines() == ["| method | ratio_to_a |", "|---|---|", "| a | 1 |",
                                 "| b | 2 |"]
    fig = performance.plot_ratios(tables)
    assert fig.axes[0].get_title() == "bench_extract"


def test_run_benchmarks_reports_a_failing_script(tmp_path):
    (tmp_path / "bench_dlib.py").write_text(SCRIPT.format(code=3))
    with pytest.raises(RuntimeError, match="bench_dlib.py failed \\(exit 3\\)"):
        performance.run_benchmarks(tmp_path, tmp_path / "out")


def test_gram_memory():
    assert performance.gram_memory_gib(2**14) == 2.0


def test_run_benchmarks_reads_recorded_tables(tmp_path):
    (tmp_path / "bench_linalg.py").write_text("raise SystemExit('must not run')")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bench_linalg.json").write_text(json.dumps(
        {"machine": "m", "rows": [{"item": "1. a", "method": "x", "ratio_to_facelin": 1.0}]}))
    tables = performance.run_benchmarks(tmp_path, tmp_path / "out")
    assert tables["bench_linalg"]["recorded"] and tables["bench_linalg"]["machine"] == "m"


def linalg_table(x_floor, speedup, err, torch_err):
    rows = []
    for cond, xf, sp, e, te in zip((1.0, 1e6, 1e8), x_floor, speedup, err, torch_err):
        rows += [dict(section="by condition", cond=cond, key="facelin", x_floor=xf,
                      speedup=sp, rel_err_gelsd=e, paths="32 CholeskyQR2"),
                 dict(section="by condition", cond=cond, key="torch", x_floor=xf * sp,
                      rel_err_gelsd=te),
                 dict(section="by condition", cond=cond, key="composition", x_floor=1.0,
                      rel_err_gelsd=1e-3)]
    return {"rows": rows}


def test_condition_verdicts_judge_each_target():
    table = linalg_table([1.2, 1.7, 3.0], [2.0, 1.1, 0.9], [1e-15, 5e-11, 1e-7],
                         [1e-15, 1e-11, 1e-9])
    verdicts = performance.condition_verdicts(table)
    assert [v["near_floor"] for v in verdicts] == [True, False, None]
    assert [v["not_slower"] for v in verdicts] == [True, True, False]
    assert [v["accurate"] for v in verdicts] == [True, True, False]
    # The control: normal equations at the floor, but inaccurate.
    control = performance.condition_verdicts(table, method="composition")
    assert [v["near_floor"] for v in control] == [True, True, None]
    assert [v["accurate"] for v in control] == [False, False, False]
    rows = performance.condition_rows(table)
    assert rows[1]["cond"] == "1e+06" and rows[1]["facelin vs torch lstsq"] == pytest.approx(1.1)
