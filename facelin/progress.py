"""Progress bars: one helper for the whole package.

:func:`progress` gives a tqdm bar: the widget bar in a Jupyter kernel that can import
``ipywidgets``, the plain text bar everywhere else. Unlike ``tqdm.auto`` it never warns
(``tqdm.auto`` warns in a kernel without ``ipywidgets``, with a message that names files
of the machine, which would land in a notebook's output).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable

from tqdm.std import tqdm as text_tqdm

__all__ = ["progress"]


def _in_jupyter_kernel() -> bool:
    """True in a notebook's kernel (Jupyter, JupyterLab, VS Code); False in a terminal,
    IPython, qtconsole or Spyder (the tests that ``tqdm.autonotebook`` makes)."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(name == "QT_API" or name.startswith("SPYDER") for name in os.environ):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def _bar_class() -> type[text_tqdm]:
    """tqdm's notebook bar where it can show, else the plain text bar."""
    if _in_jupyter_kernel() and _widgets_available():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    return text_tqdm


def progress(iterable: Iterable | None = None, *, total: int | None = None,
             desc: str | None = None, enabled: bool = True,
             unit: str = "it") -> text_tqdm:
    """A progress bar over ``iterable`` (or, with ``iterable=None``, one advanced by
    ``bar.update(n)``), usable as an iterator and as a context manager.

    ``total`` is the number of steps (taken from ``len(iterable)`` when omitted and
    defined); ``desc`` the label; ``unit`` the name of a step. ``enabled=False`` gives a
    silent bar that still yields the items. A widget bar in a Jupyter kernel with
    ``ipywidgets``, a text bar on stderr otherwise; never a warning.
    """
    bar = _bar_class()
    return bar(iterable, total=total, desc=desc, disable=not enabled, unit=unit)
