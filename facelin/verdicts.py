"""The three verdicts every claim chapter gives, in order from strongest to weakest."""
from __future__ import annotations

__all__ = ["VERDICTS"]

VERDICTS = ("holds", "partly holds", "does not hold")
