"""Write a chapter notebook from a plain-text cell list.

Usage: python tools/make_notebook.py SOURCE.py OUT.ipynb [--no-execute]

SOURCE.py holds cells separated by lines '# %% [markdown]' or '# %%' (optionally
followed by 'tags=[...]'), the 'percent' format that editors understand. Markdown cells
have their lines prefixed with '# '. The notebook is executed (in the folder of OUT, as
the book build does) and written with its outputs, which nbval compares against.
"""
import ast
import os
import re
import sys

import nbformat
from nbclient import NotebookClient

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse(text):
    cells, kind, tags, lines = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in
                             body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if tags:
                cell.metadata["tags"] = tags
            cells.append(cell)

    for line in text.splitlines():
        match = HEADER.match(line)
        if match:
            flush()
            kind = "markdown" if match["md"] else "code"
            tags = ast.literal_eval(match["tags"]) if match["tags"] else []
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def main(src, out, execute=True):
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(open(src).read())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    if execute:
        folder = os.path.dirname(os.path.abspath(out))
        NotebookClient(nb, timeout=1800, resources={"metadata": {"path": folder}}).execute()
    nbformat.write(nb, out)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-execute"]
    main(*args, execute="--no-execute" not in sys.argv)
