"""Numbers that the chapters measure and other pages quote.

A chapter saves its headline numbers with :func:`save` when it executes; the scorecard
and the book's first page read them with :func:`load`. The files are
``<folder>/<chapter>.json``, the folder being, in this order: the ``folder`` argument,
``$FACELIN_FINDINGS``, or ``./findings`` under the current directory. The book's
chapters execute in ``book/``, so by default they write ``book/findings/``, beside the
chapters; the Makefile sets ``FACELIN_FINDINGS`` to that folder for every target that
executes them. Every number on the scorecard was thus written by an executed cell, never
typed in. Findings hold measurements only; literature values live in `facelin.anchors`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .cache import atomic_write

__all__ = ["save", "load", "findings_dir"]


def findings_dir() -> Path:
    """``$FACELIN_FINDINGS``, or ``findings`` under the current directory."""
    return Path(os.environ.get("FACELIN_FINDINGS", Path.cwd() / "findings"))


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.4g}")  # 4 significant digits: small differences survive
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_chapter(chapter: str) -> str:
    if not isinstance(chapter, str) or not chapter.replace("_", "").isalnum():
        raise ValueError(f"chapter must be a simple name, got {chapter!r}")
    return chapter


def save(chapter: str, findings: dict, folder: Path | None = None) -> Path:
    """Write ``findings`` (name -> number, string, or nested dict/list of them; floats
    rounded to 4 significant digits) for ``chapter``, replacing what it wrote before.
    Returns the path written."""
    path = Path(folder or findings_dir()) / f"{_check_chapter(chapter)}.json"
    with atomic_write(path) as temporary:
        temporary.write_text(
            json.dumps(_plain(findings), indent=1, sort_keys=True) + "\n"
        )
    return path


def load(chapter: str, folder: Path | None = None) -> dict:
    """The findings a chapter saved; a clear error when it has not been executed."""
    folder = Path(folder or findings_dir())
    path = folder / f"{_check_chapter(chapter)}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no findings of chapter {chapter!r} in {folder}: execute "
            f"book/{chapter}.ipynb first (or set FACELIN_FINDINGS to "
            "the folder that holds its findings)"
        )
    return json.loads(path.read_text())
