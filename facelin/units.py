"""Which units of a model to record: layer names, unit selections and the table (a
pandas DataFrame, see :func:`unit_table`) that describes every recorded column.

Units are named by a mapping from layer names to a selection::

    {"relu1": "all", "relu5": 500, "fc": torch.tensor([0, 3, 7])}

``"all"`` takes every unit, an int K takes K units sampled without replacement (seeded,
sorted), and an integer tensor gives flat indices into the layer's C*H*W units, numbered
as ``layer_output.flatten(1)`` numbers them. With ``pool="mean"`` or ``"max"`` every
channel of a convolutional layer becomes one unit and the selection picks channels.
"""
from __future__ import annotations

import difflib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

__all__ = [
    "UNIT_COLUMNS",
    "LayerRequest",
    "layer_names",
    "layer_requests",
    "selection_index",
    "unit_table",
    "POOLINGS",
]

POOLINGS = ("mean", "max")
UNIT_COLUMNS = ("layer", "channel", "y", "x", "pooling")


def layer_names(model: torch.nn.Module) -> list[str]:
    """The names of the layers that :func:`record` can read, in the model's order.

    ``model.layer_names()`` when the model defines it, else every named sub-module.
    """
    if callable(getattr(model, "layer_names", None)):
        return list(model.layer_names())
    return [name for name, _ in model.named_modules() if name]


@dataclass
class LayerRequest:
    """One layer to record: its ``name``, the ``module`` whose output is read, the unit
    ``selection`` asked for and how channels are pooled."""

    name: str
    module: torch.nn.Module
    selection: object
    pooling: str  # "none", "mean" or "max"
    pool_explicit: bool  # pooling named for this layer (not one pool for all layers)
    shape: tuple = ()  # output shape without the batch dimension
    index: torch.Tensor | None = None
    columns: slice | None = None


def _find_modules(model, units):
    if not isinstance(units, Mapping) or not units:
        raise ValueError(
            "units must be a non-empty mapping from layer name to 'all', an "
            "int or an integer tensor of unit indices"
        )
    names = layer_names(model)
    modules = dict(model.named_modules())
    found = {}
    for name in units:
        if name not in names or name not in modules:
            close = difflib.get_close_matches(str(name), names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise KeyError(
                f"unknown layer {name!r} of {type(model).__name__} ({len(names)} "
                f"layers, e.g. {names[:5]}){hint} See facelin.extract.layer_names."
            )
        found[name] = modules[name]
    return found


def _pooling_for(name, pool):
    value = pool.get(name) if isinstance(pool, Mapping) else pool
    if value is None or value == "none":
        return "none"
    if value not in POOLINGS:
        raise ValueError(
            f"pool for layer {name!r} must be None, 'mean' or 'max', got {value!r}"
        )
    return value


def selection_index(request, seed):
    """Turn a layer's selection into an int64 index, checking it against the layer's
    size."""
    name, selection = request.name, request.selection
    pooled = request.pooling != "none"
    size = request.shape[0] if pooled else int(np.prod(request.shape))
    what = "channels" if pooled else "units"
    if isinstance(selection, str):
        if selection != "all":
            raise ValueError(
                f"selection for layer {name!r} must be 'all', an int or an "
                f"integer tensor, got the string {selection!r}"
            )
        if size == 0:
            raise ValueError(
                f"layer {name!r} has no {what} (output shape {request.shape})"
            )
        return torch.arange(size)
    if isinstance(selection, (bool, np.bool_)) or (
            isinstance(selection, (float, np.floating))):
        raise TypeError(
            f"selection for layer {name!r} must be 'all', an int or an integer "
            f"tensor, got {selection!r}"
        )
    if isinstance(selection, (int, np.integer)):
        k = int(selection)
        if k <= 0:
            raise ValueError(
                f"layer {name!r}: asked for {k} {what}; the selection is empty"
            )
        if k > size:
            raise ValueError(
                f"layer {name!r}: asked for {k} sampled {what} but it has only "
                f"{size} (output shape {request.shape})"
            )
        generator = torch.Generator().manual_seed(
            seed * 1_000_003 + zlib.crc32(name.encode())
        )
        return torch.randperm(size, generator=generator)[:k].sort().values
    index = torch.as_tensor(selection)
    if (
        index.dtype.is_floating_point
        or index.dtype.is_complex
        or index.dtype == torch.bool
    ):
        raise TypeError(
            f"unit indices for layer {name!r} must be integers, got {index.dtype}"
        )
    if index.dim() != 1:
        raise ValueError(
            f"unit indices for layer {name!r} must be one-dimensional, got shape "
            f"{tuple(index.shape)}"
        )
    if index.numel() == 0:
        raise ValueError(
            f"layer {name!r}: the index tensor is empty; the selection is empty"
        )
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= size:
        raise IndexError(
            f"layer {name!r}: {what} indices span [{lo}, {hi}] but the layer has "
            f"{size} {what} (output shape {request.shape}; valid 0 to {size - 1})"
        )
    return index.to(device="cpu", dtype=torch.int64)


def unit_table(requests) -> pd.DataFrame:
    """The table of recorded units: one row per column of the response matrix, in
    column order, for `LayerRequest`s whose ``index`` is set.

    A pandas DataFrame with a RangeIndex and the columns of `UNIT_COLUMNS`: ``layer``
    (str), ``channel``, ``y``, ``x`` (int64; ``y`` and ``x`` are -1 for units without a
    position: fully connected and pooled units) and ``pooling`` (str: ``"none"``,
    ``"mean"`` or ``"max"``). A layer's rows are ``table.iloc[layers[name]]``; compare
    tables with ``table.equals(other)`` (after ``.reset_index(drop=True)`` for a
    sub-table).
    """
    columns = {name: [] for name in UNIT_COLUMNS}
    for r in requests:
        idx = r.index.cpu().numpy().astype(np.int64)
        columns["layer"].append(np.full(idx.size, r.name, dtype=object))
        columns["pooling"].append(np.full(idx.size, r.pooling, dtype=object))
        if r.pooling != "none" or len(r.shape) == 1:
            columns["channel"].append(idx)
            columns["y"].append(np.full(idx.size, -1, dtype=np.int64))
            columns["x"].append(np.full(idx.size, -1, dtype=np.int64))
        else:
            _, h, w = r.shape
            columns["channel"].append(idx // (h * w))
            columns["y"].append((idx // w) % h)
            columns["x"].append(idx % w)
    dtypes = {"layer": str, "channel": np.int64, "y": np.int64, "x": np.int64,
              "pooling": str}
    return pd.DataFrame({
        name: pd.Series(np.concatenate(parts), dtype=dtypes[name])
        for name, parts in columns.items()
    })


def layer_requests(model, units, pool) -> list[LayerRequest]:
    """One `LayerRequest` per layer of ``units`` (checked against the model's layers),
    with its pooling from ``pool`` (None, "mean", "max" or a mapping by layer name)."""
    if pool is not None and not isinstance(pool, (str, Mapping)):
        raise TypeError(
            f"pool must be None, 'mean', 'max' or a mapping from layer name, "
            f"got {pool!r}"
        )
    if isinstance(pool, Mapping):
        extra = set(pool) - set(units)
        if extra:
            raise KeyError(f"pool names layers that are not recorded: {sorted(extra)}")
    return [LayerRequest(name, module, units[name], _pooling_for(name, pool),
                         isinstance(pool, Mapping))
            for name, module in _find_modules(model, units).items()]
