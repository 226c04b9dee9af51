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
