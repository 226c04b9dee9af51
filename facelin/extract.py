"""Record the responses of chosen units of any PyTorch model.

:func:`record` runs a model over a set of images and writes the responses of the units you
choose, from as many layers as you like, into one (images x units) matrix. A forward hook
on each chosen layer hands the layer's output, where it lies and whatever its strides, to
the compiled op ``gather_units``, which writes the chosen units (or per-channel means or
maxima) straight into the batch's rows and the layer's columns of the preallocated matrix.
No layer is cloned, nothing is concatenated, and the forward pass stops after the last
layer that was asked for.

:func:`record_stats` is the streaming form: instead of storing responses it accumulates,
in float64, the sums and cross-products that linear encoders and decoders need, so data
sets too large to hold can be fitted; under ``torch.distributed`` every process takes a
shard of the images and the statistics are combined across processes.

Units are named by a mapping from layer names to a selection::

    {"relu1": "all", "relu5": 500, "fc": torch.tensor([0, 3, 7])}

``"all"`` takes every unit, an int K takes K units sampled without replacement (seeded,
sorted), and an integer tensor gives flat indices into the layer's C*H*W units, numbered as
``layer_output.flatten(1)`` numbers them. With ``pool="mean"`` or ``"max"`` every channel
of a convolutional layer becomes one unit and the selection picks channels.
"""
from __future__ import annotations

import difflib
import itertools
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _ops

__all__ = ["Responses", "ResponseStats", "LinearFit", "UnitTable", "record", "record_stats",
           "layer_names"]

POOLINGS = ("mean", "max")
OUT_DTYPES = _ops.GATHER_DTYPES


class _AmbiguousLayer(RuntimeError):
    """A recorded module runs more than once in one forward pass."""


class _StopForward(BaseException):
    """Raised by the hook of the last requested layer to end the forward pass there.

    A BaseException, so that a model's own ``except Exception`` does not swallow it.
    """


# --------------------------------------------------------------------------------------
# Results


class UnitTable:
    """One row per recorded unit (column of the response matrix).

    Columns, as numpy arrays: ``layer`` (str), ``channel``, ``y``, ``x`` (int64; ``y`` and
    ``x`` are -1 for units without a position: fully connected and pooled units) and
    ``pooling`` (``"none"``, ``"mean"`` or ``"max"``). ``table.channel`` or
    ``table["channel"]`` gives a column; ``table[i]`` a row as a dict; ``table[mask]``,
    ``table[slice]`` or ``table[indices]`` a sub-table.
    """

    FIELDS = ("layer", "channel", "y", "x", "pooling")

    def __init__(self, layer, channel, y, x, pooling):
        self.layer = np.asarray(layer, dtype=str)
        self.channel = np.asarray(channel, dtype=np.int64)
        self.y = np.asarray(y, dtype=np.int64)
        self.x = np.asarray(x, dtype=np.int64)
        self.pooling = np.asarray(pooling, dtype=str)

    def __len__(self):
        return self.layer.shape[0]

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.FIELDS:
                raise KeyError(f"no column {key!r}; columns: {self.FIELDS}")
            return getattr(self, key)
        if isinstance(key, (int, np.integer)):
            return {f: getattr(self, f)[key].item() for f in self.FIELDS}
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        return UnitTable(*(getattr(self, f)[key] for f in self.FIELDS))

    def __eq__(self, other):
        return isinstance(other, UnitTable) and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in self.FIELDS)

    def __repr__(self):
        rows = [f"  {self[i]}" for i in range(min(len(self), 5))]
        more = ["  ..."] if len(self) > 5 else []
        return "\n".join([f"UnitTable with {len(self)} units"] + rows + more)


@dataclass
class Responses:
    """Recorded responses.

    ``values`` is an (images, units) tensor; ``units`` a :class:`UnitTable` with one row
    per column of ``values`` (layer, channel, y, x, pooling); ``layers`` maps each layer
    name to its slice of columns, in column order.
    """

    values: torch.Tensor
    units: UnitTable
    layers: dict[str, slice]

    def layer(self, name: str) -> torch.Tensor:
        """The columns of one layer, as a view of ``values``."""
        if name not in self.layers:
            raise KeyError(f"no layer {name!r} was recorded; recorded: {list(self.layers)}")
        return self.values[:, self.layers[name]]


@dataclass
class LinearFit:
    """A least-squares fit ``outputs ~ inputs @ coef + intercept``.

    ``coef`` is (inputs, outputs), ``intercept`` (outputs,), ``r2`` the coefficient of
    determination of each output on the data the fit was made on (1 - SSE / SST).
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    r2: torch.Tensor

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted outputs for (n, inputs) ``inputs``."""
        inputs = torch.as_tensor(inputs, dtype=self.coef.dtype, device=self.coef.device)
        return inputs @ self.coef + self.intercept


@dataclass
class ResponseStats:
    """Streaming statistics of responses R (n, U) and targets T (n, P), in float64.

    ``count`` images; ``mean_responses`` and ``mean_targets``; the centred cross-products
    ``rr`` = (R - mean)^T (R - mean) (U, U; None when not accumulated), ``rt`` (U, P) and
    ``tt`` (P, P); ``ss_responses`` the centred sum of squares of every unit. They are
    accumulated about a shift (the first batch's mean), which keeps them accurate when
    means are large against spreads. ``units`` and ``layers`` describe the columns, as in
    :class:`Responses`.
    """

    count: int
    mean_responses: torch.Tensor
    mean_targets: torch.Tensor
    rr: torch.Tensor | None
    rt: torch.Tensor
    tt: torch.Tensor
    ss_responses: torch.Tensor
    units: UnitTable = field(repr=False)
    layers: dict[str, slice] = field(repr=False)

    @property
    def sum_responses(self) -> torch.Tensor:
        return self.mean_responses * self.count

    @property
    def sum_targets(self) -> torch.Tensor:
        return self.mean_targets * self.count

    def merge(self, other: ResponseStats) -> ResponseStats:
        """Statistics of the union of two disjoint sets of images (Chan et al.'s update)."""
        if self.units != other.units:
            raise ValueError("merge: the two statistics describe different units")
        if (self.rr is None) != (other.rr is None):
            raise ValueError("merge: only one of the two statistics has the response Gram "
                             "matrix (rr)")
        return _combine([self, other])

    def fit_encoder(self, alpha: float = 0.0) -> LinearFit:
        """Fit every unit's response from the targets: R ~ T @ coef + intercept.

        ``alpha`` >= 0 adds a ridge penalty ``alpha * |coef|^2`` (no penalty on the
        intercept). Equal, to float64 rounding, to least squares on the stored, centred
        data. Raises ValueError when the targets' centred Gram matrix is singular.
        """
        coef = _solve_normal_equations(self.tt, self.rt.T, alpha, "targets' (encoder)")
        return _linear_fit(coef, self.tt, self.rt.T, self.mean_targets, self.mean_responses,
                           self.ss_responses)

    def fit_decoder(self, alpha: float = 0.0) -> LinearFit:
        """Fit every target from the responses: T ~ R @ coef + intercept.

        Needs ``rr`` (``record_stats(..., response_gram=True)``, the default). With more
        units than images the normal equations are singular: pass ``alpha`` > 0.
        """
        if self.rr is None:
            raise ValueError("fit_decoder needs the responses' Gram matrix; record the "
                             "statistics with response_gram=True")
        coef = _solve_normal_equations(self.rr, self.rt, alpha, "responses' (decoder)")
        return _linear_fit(coef, self.rr, self.rt, self.mean_responses, self.mean_targets,
                           torch.diagonal(self.tt))

    def fit_decoder_subsets(self, subsets, alpha: float = 0.0):
        """Decoders from many subsets of units at once: T ~ R[:, S_b] @ coef[b] + intercept[b].

        ``subsets`` is (batch, s) int64 column indices. Returns ``(coef, intercept)`` of
        shapes (batch, s, P) and (batch, P); the streaming counterpart of
        :func:`facelin.linalg.subset_lstsq` on the stored responses (each subset's normal
        equations are gathered from ``rr`` and solved in the compiled core).
        """
        if self.rr is None:
            raise ValueError("fit_decoder_subsets needs the responses' Gram matrix; record "
                             "the statistics with response_gram=True")
        subsets = torch.as_tensor(subsets, dtype=torch.int64)
        coef = _solve_subsets(self.rr, self.rt, subsets, alpha, "responses' (decoder)")
        intercept = self.mean_targets - torch.einsum("bs,bsk->bk",
                                                     self.mean_responses[subsets], coef)
        return coef, intercept


def _linear_fit(coef, gram, cross, mean_inputs, mean_outputs, ss_outputs) -> LinearFit:
    """Intercept and training R^2 of centred coefficients, from the moments alone.

    The residual sum of squares of output j is SST_j - 2 b_j.c_j + b_j^T G b_j, for
    ordinary and ridge solutions alike.
    """
    explained = 2 * (coef * cross).sum(0) - (coef * (gram @ coef)).sum(0)
    return LinearFit(coef=coef, intercept=mean_outputs - mean_inputs @ coef,
                     r2=explained / ss_outputs)


def _solve_normal_equations(gram, cross, alpha, what):
    """Solve (gram + alpha I) coef = cross with facelin's subset solver (one subset: all)."""
    coef = _solve_subsets(gram, cross, torch.arange(gram.shape[0])[None], alpha, what)
    return coef[0]


def _solve_subsets(gram, cross, subsets, alpha, what):
    if not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    subsets = torch.as_tensor(subsets, dtype=torch.int64)
    if subsets.dim() != 2 or subsets.shape[1] == 0:
        raise ValueError(f"subsets must be (batch, s) with s >= 1, got shape "
                         f"{tuple(subsets.shape)}")
    lo, hi = int(subsets.min()), int(subsets.max())
    if lo < 0 or hi >= gram.shape[0]:
        raise IndexError(f"subsets hold indices in [{lo}, {hi}] but there are "
                         f"{gram.shape[0]} inputs")
    ridge = torch.full((subsets.shape[0],), float(alpha), dtype=torch.float64)
    try:
        return _ops.subset_solve(gram.contiguous(), cross.contiguous(), subsets.contiguous(),
                                 ridge)
    except RuntimeError as err:
        raise ValueError(
            f"the {what} centred Gram matrix is singular to working precision: too few "
            f"images for the number of inputs, or constant / collinear inputs; pass "
            f"alpha > 0 ({err})") from None


# --------------------------------------------------------------------------------------
# Layers and unit selections


def layer_names(model: torch.nn.Module) -> list[str]:
    """The names of the layers that :func:`record` can read, in the model's order.

    ``model.layer_names()`` when the model defines it, else every named sub-module.
    """
    if callable(getattr(model, "layer_names", None)):
        return list(model.layer_names())
    return [name for name, _ in model.named_modules() if name]


@dataclass
class _LayerRequest:
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
        raise ValueError("units must be a non-empty mapping from layer name to 'all', an "
                         "int or an integer tensor of unit indices")
    names = layer_names(model)
    modules = dict(model.named_modules())
    found = {}
    for name in units:
        if name not in names or name not in modules:
            close = difflib.get_close_matches(str(name), names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise KeyError(f"unknown layer {name!r} of {type(model).__name__} ({len(names)} "
                           f"layers, e.g. {names[:5]}){hint} See facelin.extract.layer_names.")
        found[name] = modules[name]
    return found


def _pooling_for(name, pool):
    value = pool.get(name) if isinstance(pool, Mapping) else pool
    if value is None or value == "none":
        return "none"
    if value not in POOLINGS:
        raise ValueError(f"pool for layer {name!r} must be None, 'mean' or 'max', got {value!r}")
    return value


def _selection_index(request, seed):
    """Turn a layer's selection into an int64 index, checking it against the layer's size."""
    name, selection = request.name, request.selection
    pooled = request.pooling != "none"
    size = request.shape[0] if pooled else int(np.prod(request.shape))
    what = "channels" if pooled else "units"
    if isinstance(selection, str):
        if selection != "all":
            raise ValueError(f"selection for layer {name!r} must be 'all', an int or an "
                             f"integer tensor, got the string {selection!r}")
        if size == 0:
            raise ValueError(f"layer {name!r} has no {what} (output shape {request.shape})")
        return torch.arange(size)
    if isinstance(selection, (bool, np.bool_)) or (
            isinstance(selection, (float, np.floating))):
        raise TypeError(f"selection for layer {name!r} must be 'all', an int or an integer "
                        f"tensor, got {selection!r}")
    if isinstance(selection, (int, np.integer)):
        k = int(selection)
        if k <= 0:
            raise ValueError(f"layer {name!r}: asked for {k} {what}; the selection is empty")
        if k > size:
            raise ValueError(f"layer {name!r}: asked for {k} sampled {what} but it has only "
                             f"{size} (output shape {request.shape})")
        generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        return torch.randperm(size, generator=generator)[:k].sort().values
    index = torch.as_tensor(selection)
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise TypeError(f"unit indices for layer {name!r} must be integers, got {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"unit indices for layer {name!r} must be one-dimensional, got shape "
                         f"{tuple(index.shape)}")
    if index.numel() == 0:
        raise ValueError(f"layer {name!r}: the index tensor is empty; the selection is empty")
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= size:
        raise IndexError(f"layer {name!r}: {what} indices span [{lo}, {hi}] but the layer has "
                         f"{size} {what} (output shape {request.shape}; valid 0 to {size - 1})")
    return index.to(device="cpu", dtype=torch.int64)


def _unit_table(requests):
    layer, channel, y, x, pooling = [], [], [], [], []
    for r in requests:
        idx = r.index.cpu().numpy()
        layer.append(np.full(idx.size, r.name))
        pooling.append(np.full(idx.size, r.pooling))
        if r.pooling != "none" or len(r.shape) == 1:
            channel.append(idx)
            y.append(np.full(idx.size, -1))
            x.append(np.full(idx.size, -1))
        else:
            _, h, w = r.shape
            channel.append(idx // (h * w))
            y.append((idx // w) % h)
            x.append(idx % w)
    return UnitTable(*(np.concatenate(column) for column in (layer, channel, y, x, pooling)))


# --------------------------------------------------------------------------------------
# Images


def _model_device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _model_float_dtype(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.dtype.is_floating_point:
            return tensor.dtype
    return None


def _as_batch(batch):
    """A batch as a tensor; a (images, labels, ...) tuple contributes its images."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("an empty tuple or list is not a batch of images")
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch)
    if isinstance(batch, torch.Tensor):
        return batch
    raise TypeError(f"a batch of images must be a tensor or an array, got {type(batch).__name__}")


class _Images:
    """Images given as one tensor / array (sliced into batches) or as an iterable of batches."""

    def __init__(self, images, batch_size):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        if isinstance(images, (torch.Tensor, np.ndarray)):
            self.array = torch.as_tensor(images) if isinstance(images, np.ndarray) else images
            if self.array.dim() < 2:
                raise ValueError(f"images must have a batch dimension, got shape "
                                 f"{tuple(self.array.shape)}")
            self.count = self.array.shape[0]
            if self.count == 0:
                raise ValueError("images is empty (0 images)")
            self.iterable = None
        elif isinstance(images, Iterable):
            self.array, self.count = None, None
            self.iterable, self.peeked = images, None
            if iter(images) is images:  # a one-shot iterator: keep the batch we peek at
                try:
                    self.peeked = _as_batch(next(images))
                except StopIteration:
                    raise ValueError("images is an empty iterable") from None
                self.iterable = itertools.chain([self.peeked], images)
        else:
            raise TypeError(f"images must be a tensor, an array or an iterable of batches, "
                            f"got {type(images).__name__}")

    def shard(self, rank, world):
        """This process's block of rows (only for images given as one array)."""
        if self.array is None:
            return self
        lo, hi = rank * self.count // world, (rank + 1) * self.count // world
        part = _Images.__new__(_Images)
        part.batch_size, part.iterable = self.batch_size, None
        part.array, part.count = self.array[lo:hi], hi - lo
        part.rows = (lo, hi)
        return part

    def first_image(self):
        """A (1, ...) batch of the first image, for learning the layers' shapes."""
        if self.array is None and self.peeked is not None and self.peeked.shape[0] > 0:
            return self.peeked[:1]
        for batch in self.batches():
            if batch.shape[0] > 0:
                return batch[:1]
        raise ValueError("images holds no image")

    def batches(self):
        if self.array is not None:
            for lo in range(0, self.count, self.batch_size):
                yield self.array[lo:lo + self.batch_size]
        else:
            for batch in self.iterable:
                yield _as_batch(batch)

    def n_batches(self):
        if self.array is not None:
            return -(-self.count // self.batch_size)
        try:
            return len(self.iterable)
        except TypeError:
            return None


# --------------------------------------------------------------------------------------
# The recorder: hooks that call the gather op


class _Recorder:
    """Validates a unit selection, learns the layers' shapes and runs hooked forward passes."""

    def __init__(self, model, units, pool, seed, device):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if pool is not None and not isinstance(pool, (str, Mapping)):
            raise TypeError(f"pool must be None, 'mean', 'max' or a mapping from layer name, "
                            f"got {pool!r}")
        if isinstance(pool, Mapping):
            extra = set(pool) - set(units)
            if extra:
                raise KeyError(f"pool names layers that are not recorded: {sorted(extra)}")
        self.model = model
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.input_dtype = _model_float_dtype(model)
        modules = _find_modules(model, units)
        self.requests = []
        for name, module in modules.items():
            pooling = _pooling_for(name, pool)
            self.requests.append(_LayerRequest(name, module, units[name], pooling,
                                               isinstance(pool, Mapping)))
        self.seed = seed

    def prepare(self, example):
        """Learn output shapes and call order from one image, then build the indices."""
        self.order = self._probe(example)
        for r in self.requests:
            r.index = _selection_index(r, self.seed)
        start = 0
        for r in self.requests:
            r.columns = slice(start, start + r.index.numel())
            start = r.columns.stop
        self.n_units = start
        self.last = self.order[-1]
        self.units = _unit_table(self.requests)
        self.layers = {r.name: r.columns for r in self.requests}
        for r in self.requests:
            r.index = r.index.to(self.device)

    def _probe(self, example):
        """Shapes from a shape-only forward pass (FakeTensorMode); a real one-image pass
        where the model cannot run on fake tensors. Also checks each layer runs once."""
        from torch._subclasses.fake_tensor import FakeTensorMode

        seen = {}
        order = []

        def make_hook(request):
            def hook(module, inputs, output):
                if request.name in seen:
                    raise _AmbiguousLayer(
                        f"layer {request.name!r} runs more than once in one forward pass (a "
                        f"module used at several places); its output is ambiguous: record a "
                        f"module that runs once")
                seen[request.name] = output
                order.append(request.name)
            return hook

        x = self._to_input(example[:1])
        handles = [r.module.register_forward_hook(make_hook(r)) for r in self.requests]
        try:
            try:
                with torch.inference_mode(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
                    self.model(mode.from_tensor(x))
            except _AmbiguousLayer:
                raise
            except Exception:  # the model cannot run on fake tensors: one real image
                seen.clear()
                order.clear()
                with torch.inference_mode():
                    self.model(x)
        finally:
            for h in handles:
                h.remove()
        for r in self.requests:
            if r.name not in seen:
                raise RuntimeError(f"layer {r.name!r} did not run in the forward pass of "
                                   f"{type(self.model).__name__}")
            out = seen[r.name]
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"layer {r.name!r} returns {type(out).__name__}, not a tensor; "
                                f"record a layer whose output is one tensor")
            if out.dim() not in (2, 4):
                raise ValueError(f"layer {r.name!r} has output shape {tuple(out.shape)}; "
                                 f"record reads (N, C, H, W) and (N, F) outputs")
            if out.dtype not in OUT_DTYPES:
                raise TypeError(f"layer {r.name!r} outputs {out.dtype}; record reads float16, "
                                f"bfloat16, float32 and float64 outputs")
            r.shape = tuple(out.shape[1:])
            if r.pooling != "none" and out.dim() == 2:
                if not r.pool_explicit:  # a pool for all layers leaves (N, F) layers as they are
                    r.pooling = "none"
                    continue
                raise ValueError(f"layer {r.name!r} has output shape {tuple(out.shape)}: there "
                                 f"are no channels to pool (pool a (N, C, H, W) layer)")
        return order

    def _to_input(self, batch):
        x = batch.to(self.device, non_blocking=True)
        if self.input_dtype is not None and x.dtype.is_floating_point:
            x = x.to(self.input_dtype)
        return x

    def run(self, images, out_for_batch, progress, desc):
        """Run every batch; ``out_for_batch(rows)`` gives (out, row0) for a batch of rows."""
        state = {}

        def make_hook(request):
            stop = request.name == self.last

            def hook(module, inputs, output):
                out, row0 = state["out"], state["row0"]
                if output.shape[1:] != request.shape:
                    raise RuntimeError(f"layer {request.name!r} output shape changed from "
                                       f"{request.shape} to {tuple(output.shape[1:])}")
                _ops.gather_units(output, request.index, request.pooling, out, row0,
                                  request.columns.start)
                if stop:
                    raise _StopForward
            return hook

        handles = [r.module.register_forward_hook(make_hook(r)) for r in self.requests]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                with tqdm(total=images.n_batches(), desc=desc, disable=not progress,
                          unit="batch") as bar:
                    for batch in images.batches():
                        if batch.shape[0] == 0:
                            continue
                        state["out"], state["row0"] = out_for_batch(batch.shape[0])
                        try:
                            self.model(self._to_input(batch))
                        except _StopForward:
                            pass
                        yield batch.shape[0]
                        bar.update()
        finally:
            for h in handles:
                h.remove()
            self.model.train(was_training)


def _check_out_dtype(out_dtype):
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")


def _raise_non_finite(values, units, where=""):
    bad = (~torch.isfinite(values)).nonzero()
    row, col = (int(v) for v in bad[0])
    unit = units[col]
    raise FloatingPointError(
        f"non-finite response ({values[row, col].item()}) at image {row}{where}, column "
        f"{col}: layer {unit['layer']!r}, channel {unit['channel']}, y {unit['y']}, x "
        f"{unit['x']}, pooling {unit['pooling']!r} ({bad.shape[0]} non-finite values in "
        f"all); check the "
        f"images for NaN/Inf and, for float16 outputs, for overflow")


# --------------------------------------------------------------------------------------
# Public entry points


def record(model, images, units, batch_size=64, device=None, pool=None,
           out_dtype=torch.float32, progress=True, *, seed=0, out_device="cpu",
           check_finite=True) -> Responses:
    """Record the responses of chosen units of ``model`` to ``images``.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode (its previous mode is restored afterwards) under
        ``torch.inference_mode``. Layer names come from ``model.layer_names()`` when it
        has one, else from ``named_modules()``; see :func:`layer_names`.
    images : tensor, array or iterable of batches
        (N, ...) images, or an iterable yielding batches (a tuple batch, as a DataLoader
        of a labelled data set yields, contributes its first element). Floating images
        are cast to the model's parameter dtype.
    units : mapping
        Layer name -> ``"all"``, an int K (K units sampled without replacement, with
        ``seed``; the same K units of a layer whatever else is recorded) or an integer
        tensor of flat indices into the layer's C*H*W units.
    batch_size : int
        Images per forward pass when ``images`` is one tensor or array.
    device : torch.device or str, optional
        Where the model runs (default: where its parameters are). The model must already
        be on that device; images are moved there batch by batch.
    pool : None, "mean", "max" or mapping
        Pool each channel of (N, C, H, W) layers into one unit; a mapping gives it per
        layer. With pooling the selection picks channels.
    out_dtype : torch.dtype
        float16, bfloat16, float32 (default) or float64; values are converted as
        ``Tensor.to`` converts them.
    progress : bool
        Show a progress bar over batches.
    seed : int
        Seed of the sampled units.
    out_device : torch.device or str
        Where ``values`` lives (default the host, in pinned memory when the model runs on
        a GPU, so that each batch's block is copied asynchronously).
    check_finite : bool
        Raise FloatingPointError naming the image and unit when a response is NaN or Inf.

    Unknown layers, out-of-range indices and empty selections raise before any image is
    recorded (the layers' shapes come from a shape-only pass). The forward pass stops
    after the last requested layer.
    """
    _check_out_dtype(out_dtype)
    recorder = _Recorder(model, units, pool, seed, device)
    source = _Images(images, batch_size)
    recorder.prepare(source.first_image())
    out_device = torch.device(out_device)
    pin = recorder.device.type == "cuda" and out_device.type == "cpu"

    def allocate(rows):
        return torch.empty((rows, recorder.n_units), dtype=out_dtype, device=out_device,
                           pin_memory=pin)

    capacity = source.count if source.count is not None else batch_size
    values = allocate(capacity)
    filled = 0

    def out_for_batch(rows):
        nonlocal values, capacity
        if filled + rows > capacity:  # an iterable of unknown length: grow geometrically
            capacity = max(2 * capacity, filled + rows)
            grown = allocate(capacity)
            _synchronize(recorder.device)
            grown[:filled].copy_(values[:filled])
            values = grown
        return values, filled

    for rows in recorder.run(source, out_for_batch, progress, "record"):
        filled += rows
    _synchronize(recorder.device)
    if filled < capacity:
        values = values[:filled].clone()
    if check_finite and not bool(torch.isfinite(values).all()):
        _raise_non_finite(values, recorder.units)
    return Responses(values=values, units=recorder.units, layers=recorder.layers)


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def record_stats(model, images, units, targets, batch_size=64, device=None, pool=None,
                 out_dtype=torch.float32, progress=True, *, seed=0, response_gram=True,
                 distributed=None) -> ResponseStats:
    """Accumulate the statistics that linear fits need, without storing the responses.

    The responses R are recorded batch by batch exactly as :func:`record` records them
    (same ``units``, ``pool``, ``out_dtype``, ``seed``) and folded, in float64 on the
    model's device, into the count, the sums and the cross-products R^T R, R^T T and
    T^T T of responses and ``targets`` T, (N, P) (for example the shape-appearance
    parameters of the faces). :meth:`ResponseStats.fit_encoder` and
    :meth:`ResponseStats.fit_decoder` turn them into fits equal, to float64 rounding, to
    least squares on the stored responses. ``response_gram=False`` skips R^T R (U x U):
    enough for encoders.

    ``targets`` is aligned with ``images``: one row per image. When ``images`` is an
    iterable of batches, targets' rows are taken in order.

    Distributed: with ``distributed=None`` (default) the statistics are combined across
    processes whenever ``torch.distributed`` is initialised (``distributed=False`` keeps
    them local). When ``images`` is one tensor or array every process takes its block of
    rows (and of targets); an iterable is taken as this process's shard already (a
    DataLoader with a DistributedSampler) with ``targets`` the shard's targets. Every
    process returns the statistics of all images. Collective tensors live on the CPU
    with the gloo backend and on the current CUDA device with nccl.
    """
    _check_out_dtype(out_dtype)
    group = _distributed_group(distributed)
    source = _Images(images, batch_size)
    targets = _as_targets(targets)
    if source.count is not None and targets.shape[0] != source.count:
        raise ValueError(f"targets has {targets.shape[0]} rows but there are {source.count} "
                         f"images")
    recorder = _Recorder(model, units, pool, seed, device)
    recorder.prepare(source.first_image())
    if group is not None:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if source.array is not None:
            source = source.shard(rank, world)
            targets = targets[source.rows[0]:source.rows[1]]
    accumulator = _Accumulator(recorder.n_units, targets.shape[1], recorder.device,
                               response_gram)
    buffer = torch.empty((batch_size if source.array is not None else 0, recorder.n_units),
                         dtype=out_dtype, device=recorder.device)
    target_row = 0

    def out_for_batch(rows):
        nonlocal buffer
        if rows > buffer.shape[0]:
            buffer = torch.empty((rows, recorder.n_units), dtype=out_dtype,
                                 device=recorder.device)
        return buffer, 0

    for rows in recorder.run(source, out_for_batch, progress, "record_stats"):
        if target_row + rows > targets.shape[0]:
            raise ValueError(f"targets has {targets.shape[0]} rows but the images have more")
        responses = buffer[:rows].to(torch.float64)
        if not bool(torch.isfinite(responses).all()):
            _raise_non_finite(responses, recorder.units,
                              f" of the batch starting at image {target_row}")
        batch_targets = targets[target_row:target_row + rows].to(recorder.device)
        accumulator.add(responses, batch_targets)
        target_row += rows
    if source.array is None and target_row != targets.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} rows but the images gave "
                         f"{target_row}")
    local = accumulator.finish(recorder.units, recorder.layers)
    if group is None:
        return local
    return _allreduce(local, group)


def _as_targets(targets):
    t = torch.as_tensor(targets)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"targets must be (images, targets), got shape {tuple(t.shape)}")
    if not (t.dtype.is_floating_point or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"targets must be numeric, got {t.dtype}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        row = int((~torch.isfinite(t)).any(1).nonzero()[0])
        raise ValueError(f"targets has NaN or Inf (first in row {row})")
    return t


class _Accumulator:
    """Shifted float64 sums: accurate centred moments in one pass over the batches."""

    def __init__(self, n_units, n_targets, device, response_gram):
        f64 = dict(dtype=torch.float64, device=device)
        self.count = 0
        self.shift_r = self.shift_t = None
        self.sum_r = torch.zeros(n_units, **f64)
        self.sum_t = torch.zeros(n_targets, **f64)
        self.rr = torch.zeros(n_units, n_units, **f64) if response_gram else None
        self.ss_r = None if response_gram else torch.zeros(n_units, **f64)
        self.rt = torch.zeros(n_units, n_targets, **f64)
        self.tt = torch.zeros(n_targets, n_targets, **f64)
        self.n_targets = n_targets

    def add(self, responses, targets):
        if self.shift_r is None:
            self.shift_r, self.shift_t = responses.mean(0), targets.mean(0)
        r = responses - self.shift_r
        t = targets - self.shift_t
        self.count += r.shape[0]
        self.sum_r += r.sum(0)
        self.sum_t += t.sum(0)
        if self.rr is not None:
            self.rr.addmm_(r.T, r)
        else:
            self.ss_r += (r * r).sum(0)
        self.rt.addmm_(r.T, t)
        self.tt.addmm_(t.T, t)

    def finish(self, units, layers):
        """Centred moments about the mean; an empty shard gives zeros (weight 0 later)."""
        n = self.count
        if n == 0:
            self.shift_r, self.shift_t = torch.zeros_like(self.sum_r), torch.zeros_like(self.sum_t)
        d_r, d_t = self.sum_r / max(n, 1), self.sum_t / max(n, 1)
        rr = self.rr - n * torch.outer(d_r, d_r) if self.rr is not None else None
        ss_r = torch.diagonal(rr).clone() if rr is not None else self.ss_r - n * d_r * d_r
        return ResponseStats(
            count=n, mean_responses=(self.shift_r + d_r).cpu(),
            mean_targets=(self.shift_t + d_t).cpu(), rr=rr.cpu() if rr is not None else None,
            rt=(self.rt - n * torch.outer(d_r, d_t)).cpu(),
            tt=(self.tt - n * torch.outer(d_t, d_t)).cpu(), ss_responses=ss_r.cpu(),
            units=units, layers=layers)


def _between_moments(counts, means_r, means_t, with_rr):
    """Overall means and the between-set part of the centred moments of disjoint sets."""
    n = counts.sum()
    mean_r = (counts[:, None] * means_r).sum(0) / n
    mean_t = (counts[:, None] * means_t).sum(0) / n
    weight = counts.sqrt()[:, None]
    dr, dt = weight * (means_r - mean_r), weight * (means_t - mean_t)
    return dict(count=int(n), mean_responses=mean_r, mean_targets=mean_t,
                rr=dr.T @ dr if with_rr else None, rt=dr.T @ dt, tt=dt.T @ dt,
                ss_responses=(dr * dr).sum(0))


def _combine(parts):
    """Chan et al.'s combination: within-set moments plus the between-set part."""
    counts = torch.tensor([float(p.count) for p in parts], dtype=torch.float64)
    with_rr = parts[0].rr is not None
    total = _between_moments(counts, torch.stack([p.mean_responses for p in parts]),
                             torch.stack([p.mean_targets for p in parts]), with_rr)
    for key in ("rr", "rt", "tt", "ss_responses"):
        if total[key] is not None:
            total[key] = total[key] + sum(getattr(p, key) for p in parts)
    return ResponseStats(**total, units=parts[0].units, layers=parts[0].layers)


def _distributed_group(distributed):
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if distributed is None:
        return dist.group.WORLD if ready else None
    if distributed and not ready:
        raise RuntimeError("distributed=True but torch.distributed is not initialised; call "
                           "torch.distributed.init_process_group first (torchrun sets up the "
                           "environment)")
    return dist.group.WORLD if distributed else None


def _allreduce(local, group):
    """Combine every process's statistics; each process gets the statistics of all."""
    dist = torch.distributed
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    world = dist.get_world_size(group)
    # Counts and means of every process (small), then the sums of the within-process moments.
    head = torch.cat([torch.tensor([float(local.count)], dtype=torch.float64),
                      local.mean_responses, local.mean_targets]).to(device)
    heads = [torch.empty_like(head) for _ in range(world)]
    dist.all_gather(heads, head, group=group)
    heads = torch.stack(heads).cpu()
    u = local.mean_responses.numel()
    total = _between_moments(heads[:, 0], heads[:, 1:1 + u], heads[:, 1 + u:],
                             local.rr is not None)
    for key in ("rr", "rt", "tt", "ss_responses"):
        within = getattr(local, key)
        if within is None:
            continue
        within = within.to(device).contiguous()
        dist.all_reduce(within, group=group)
        total[key] = total[key] + within.cpu()
    return ResponseStats(**total, units=local.units, layers=local.layers)
