"""facelin's on-disk cache: where it is, how its files are named, how they are written.

Fitted face spaces, stimuli and recorded responses take from seconds to minutes to
compute; they are kept under ``$FACELIN_CACHE`` (default ``~/.cache/facelin``) in files
whose names hash everything that produced them, so a changed setting never reads a stale
file. Files are written to a temporary name and renamed into place, so a reader never
sees half a file, even with several processes filling the cache at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

__all__ = ["cache_dir", "key", "path", "atomic_write", "tensors"]


def cache_dir() -> Path:
    """``$FACELIN_CACHE``, or ``~/.cache/facelin`` when it is not set."""
    return Path(os.environ.get("FACELIN_CACHE", Path.home() / ".cache" / "facelin"))


def key(*parts, length: int = 12) -> str:
    """A short hex digest of ``parts`` (their ``str``, joined by ``|``)."""
    text = "|".join(str(part) for part in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def path(kind: str, digest: str, suffix: str) -> Path:
    """The cache file ``<cache_dir>/<kind>-<digest><suffix>``."""
    return cache_dir() / f"{kind}-{digest}{suffix}"


@contextlib.contextmanager
def atomic_write(target):
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    The temporary file is removed when the block raises, and the folder is created when
    missing. Usage: ``with atomic_write(p) as temporary: np.save(temporary, x)``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def tensors(kind: str, description: dict, compute: Callable[[], dict]) -> dict:
    """``compute()``'s dict of tensors, saved once as ``<kind>-<hash>.pt`` where the hash
    covers ``kind`` and everything in ``description`` (settings, format version, facelin
    version), and loaded from there afterwards. A damaged file (an interrupted write
    elsewhere) is recomputed."""
    import torch

    text = json.dumps({"kind": kind, **description}, sort_keys=True, default=str)
    target = path(kind, key(text, length=16), ".pt")
    if target.is_file():
        try:
            return torch.load(target, weights_only=True)
        except Exception:  # damaged or half-written by a process that died
            pass
    value = compute()
    with atomic_write(target) as temporary:
        torch.save(value, temporary)
    return value

