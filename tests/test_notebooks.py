"""What a reader sees: the committed notebooks' outputs carry no warnings and no paths of
the machine that executed them, and the chapters' code lines are at most 88 characters."""
import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
SOURCES = sorted((BOOK / "src").glob("*.py"))
MAX_LINE = 88
MAX_CELL = 15  # code lines (not blank, not comments) per chapter cell

WARNING = re.compile(r"\w*Warning\b|\bwarn(ing)?s?\.warn\(")
MACHINE_PATH = re.compile(r"(?<![\w.])/(root|home|tmp|work)(/|\b)")
TEXT_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex")


def output_texts(cell):
    """(kind, text) of every textual output of a code cell (images are left out: their
    base64 can hold any letters)."""
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            yield f"stream {output.get('name')}", "".join(output.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            for mime in TEXT_TYPES:
                if mime in output.get("data", {}):
                    yield mime, "".join(output["data"][mime])
        elif kind == "error":
            yield "error", "\n".join(output.get("traceback", []))


def problems(path):
    """One line per cell and kind of problem, with its first example."""
    notebook = json.loads(path.read_text())
    found = {}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        for kind, text in output_texts(cell):
            if kind == "stream stderr":
                found.setdefault((index, "output on stderr"), text)
            if WARNING.search(text):
                found.setdefault((index, f"warning in {kind}"), WARNING.search(text)[0])
            if MACHINE_PATH.search(text):
                line = next(ln for ln in text.splitlines() if MACHINE_PATH.search(ln))
                found.setdefault((index, f"machine path in {kind}"), line)
    return [f"cell {index}: {problem}: {example.strip()[:100]!r}"
            for (index, problem), example in found.items()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_outputs_have_no_warnings_or_machine_paths(path):
    found = problems(path)
    assert not found, f"{path.name}:\n" + "\n".join(found)


def code_lines(path):
    """(line number, line) of the code cells of a percent-format chapter source."""
    in_code = True
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("# %%"):
            in_code = not line.startswith("# %% [markdown]")
            continue
        if in_code:
            yield number, line


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_chapter_code_lines_are_short(path):
    long = [f"line {n}: {len(line)} characters" for n, line in code_lines(path)
            if len(line) > MAX_LINE]
    assert not long, f"{path.name}:\n" + "\n".join(long)


def cell_sizes(path):
    """Code lines (not blank, not comment) of each code cell of a percent-format
    chapter source, as (first line number, count)."""
    sizes, start, in_code = [], None, False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("# %%"):
            in_code = not line.startswith("# %% [markdown]")
            if in_code:
                sizes.append([number, 0])
            continue
        if in_code and sizes and line.strip() and not line.lstrip().startswith("#"):
            sizes[-1][1] += 1
    return [tuple(size) for size in sizes]


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_chapter_cells_are_short(path):
    """The pipelines live in facelin; a chapter cell calls them."""
    long = [f"cell at line {n}: {count} code lines" for n, count in cell_sizes(path)
            if count > MAX_CELL]
    assert not long, f"{path.name}:\n" + "\n".join(long)


def test_the_checks_catch_what_they_look_for(tmp_path):
    cells = [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stderr", "text": ["TqdmWarning: no widgets"]},
        {"output_type": "execute_result",
         "data": {"text/plain": ["saved to /work/x/book/findings/a.json"],
                  "image/png": "iVBOR/tmp/work"}}]},
        {"cell_type": "code", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["EV 0.5; book/findings"]}]}]
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    found = problems(notebook)
    assert len(found) == 3 and all(f.startswith("cell 0") for f in found)
    source = tmp_path / "c.py"
    source.write_text("# %% [markdown]\n# " + "x" * 100 + "\n# %%\nshort = 1\n"
                      + "y = '" + "z" * 90 + "'\n")
    assert [n for n, line in code_lines(source) if len(line) > MAX_LINE] == [5]
    cells = tmp_path / "cells.py"
    cells.write_text("# %%\nimport x\n\n# a comment\n# %% [markdown]\n# text\n# %%\n"
                     + "y = 1\n" * 16)
    assert cell_sizes(cells) == [(1, 1), (7, 16)]
