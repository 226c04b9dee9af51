"""facelin.progress: the package's one progress bar, never a warning."""
import importlib
import importlib.util
import os
import sys
import types
import warnings

import pytest
from tqdm import TqdmWarning
from tqdm.std import tqdm as text_tqdm

from facelin import progress as progress_module
from facelin.progress import progress


class ZMQInteractiveShell:
    """Stands in for the shell of a Jupyter kernel (tqdm and facelin test its name)."""


@pytest.fixture
def jupyter_kernel(monkeypatch):
    """Make this process look like a Jupyter kernel's, as tqdm.autonotebook sees one."""
    shell = ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell))
    for name in [n for n in os.environ
                 if n == "QT_API" or n.startswith("SPYDER")]:
        monkeypatch.delenv(name)


def test_text_bar_outside_jupyter_counts_and_labels(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress(iter("abcd"), total=4, desc="reading", unit="image")
        assert type(bar) is text_tqdm and bar.total == 4
        assert list(bar) == ["a", "b", "c", "d"]
    err = capsys.readouterr().err
    assert "reading" in err and "4/4" in err and "image" in err


def test_total_without_iterable_and_from_len(capsys):
    with progress(total=3, desc="batches") as bar:
        for _ in range(3):
            bar.update()
    assert bar.n == 3 and "3/3" in capsys.readouterr().err
    assert progress(range(7)).total == 7


def test_disabled_bar_yields_the_items_silently(capsys):
    bar = progress(range(5), total=5, desc="quiet", enabled=False)
    assert bar.disable and list(bar) == [0, 1, 2, 3, 4]
    with progress(total=2, enabled=False) as manual:
        manual.update(2)
    assert capsys.readouterr().err == ""


def test_jupyter_without_widgets_gives_a_text_bar_and_no_warning(jupyter_kernel,
                                                                 monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "_widgets_available", lambda: False)
    assert progress_module._in_jupyter_kernel()
    if importlib.util.find_spec("ipywidgets") is None:
        # Control: in the same fake kernel tqdm.autonotebook (behind tqdm.auto) warns.
        monkeypatch.delitem(sys.modules, "tqdm.autonotebook", raising=False)
        with pytest.warns(TqdmWarning):
            importlib.import_module("tqdm.autonotebook")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress(range(3), desc="in a kernel")
        assert type(bar) is text_tqdm and list(bar) == [0, 1, 2]
    assert "3/3" in capsys.readouterr().err


def test_jupyter_with_widgets_gives_the_notebook_bar(jupyter_kernel, monkeypatch):
    from tqdm.notebook import tqdm as notebook_tqdm

    monkeypatch.setattr(progress_module, "_widgets_available", lambda: True)
    assert progress_module._bar_class() is notebook_tqdm
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress(range(3), enabled=False)  # a shown widget needs ipywidgets
        assert isinstance(bar, notebook_tqdm) and list(bar) == [0, 1, 2]


def test_consoles_and_plain_python_are_not_notebooks(jupyter_kernel, monkeypatch):
    monkeypatch.setenv("QT_API", "pyqt5")  # qtconsole runs the same kernel
    assert not progress_module._in_jupyter_kernel()
    monkeypatch.delenv("QT_API")
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress_module._in_jupyter_kernel()
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell")
    assert progress_module._bar_class() is text_tqdm
