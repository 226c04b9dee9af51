"""Numbers that the chapters measure and other pages quote.

A chapter saves its headline numbers with :func:`save` when it executes; the scorecard
page reads them with :func:`load`. The files live in ``book/findings/<chapter>.json``
beside the chapters, so every number on the scorecard was written by an executed cell,
never typed in.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

FINDINGS_DIR = Path(__file__).resolve().parent.parent / "book" / "findings"


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


def save(chapter: str, findings: dict, folder: Path | None = None) -> Path:
    """Write ``findings`` (name -> number, string, or nested dict/list of them; floats
    rounded to 4 significant digits) for ``chapter``, replacing what it wrote before."""
    if not chapter.replace("_", "").isalnum():
        raise ValueError(f"chapter must be a simple name, got {chapter!r}")
    folder = FINDINGS_DIR if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    path.write_text(json.dumps(_plain(findings), indent=1, sort_keys=True) + "\n")
    return path


def load(chapter: str, folder: Path | None = None) -> dict:
    """The findings a chapter saved; a clear error when it has not been executed."""
    folder = FINDINGS_DIR if folder is None else Path(folder)
    path = folder / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no findings of chapter {chapter!r} in {folder}: execute "
                                f"book/{chapter}.ipynb first")
    return json.loads(path.read_text())
