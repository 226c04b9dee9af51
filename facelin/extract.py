"""Record the responses of chosen units of any PyTorch model.

:func:`record` runs a model over a set of images and writes the responses of the units
you choose, from as many layers as you like, into one (images x units) matrix. A forward
hook on each chosen layer hands the layer's output, where it lies and whatever its
strides, to the compiled op ``gather_units``, which writes the chosen units (or
per-channel means or maxima) straight into the batch's rows and the layer's columns of
the preallocated matrix. No layer is cloned, nothing is concatenated, and the forward
pass stops after the last layer that was asked for.

:func:`record_stats` is the streaming form: instead of storing responses it accumulates,
in float64, the sums and cross-products that linear encoders and decoders need, so data
sets too large to hold can be fitted; under ``torch.distributed`` every process takes a
shard of the images and the statistics are combined across processes.

Units are named by a mapping from layer names to a selection (see `facelin.units`)::

    {"relu1": "all", "relu5": 500, "fc": torch.tensor([0, 3, 7])}

The statistics and their fits live in `facelin.stats`; `ResponseStats`, `LinearFit` and
`layer_names` are importable from here too.
"""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import _ops
from .progress import progress as progress_bar
from .stats import (LinearFit, ResponseStats, StatsAccumulator, allreduce, as_targets,
                    distributed_group)
from .units import layer_names, layer_requests, selection_index, unit_table

__all__ = [
    "Responses",
    "ResponseStats",
    "LinearFit",
    "record",
    "record_stats",
    "layer_names",
]

OUT_DTYPES = _ops.GATHER_DTYPES


class _AmbiguousLayer(RuntimeError):
    """A recorded module runs more than once in one forward pass."""


class _StopForward(BaseException):
    """Raised by the hook of the last requested layer to end the forward pass there.

    A BaseException, so that a model's own ``except Exception`` does not swallow it.
    """


# --------------------------------------------------------------------------------------
# Results


@dataclass
class Responses:
    """Recorded responses.

    ``values`` is an (images, units) tensor; ``units`` a pandas DataFrame with one row
    per column of ``values`` (see `facelin.units.unit_table`): ``layer`` (str),
    ``channel``, ``y``, ``x`` (int64; y = x = -1 for fully connected and pooled units)
    and ``pooling`` (str: "none", "mean" or "max"); ``layers`` maps each layer name to
    its slice of columns, in column order, so ``units.iloc[layers[name]]`` are that
    layer's rows.
    """

    values: torch.Tensor
    units: pd.DataFrame
    layers: dict[str, slice]

    def layer(self, name: str) -> torch.Tensor:
        """The columns of one layer, as a view of ``values``."""
        if name not in self.layers:
            raise KeyError(
                f"no layer {name!r} was recorded; recorded: {list(self.layers)}"
            )
        return self.values[:, self.layers[name]]

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
    raise TypeError(
        f"a batch of images must be a tensor or an array, got {type(batch).__name__}"
    )


class _Images:
    """Images given as one tensor / array (sliced into batches) or as an iterable of
    batches."""

    def __init__(self, images, batch_size):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        if isinstance(images, (torch.Tensor, np.ndarray)):
            self.array = (
                torch.as_tensor(images) if isinstance(images, np.ndarray) else images
            )
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
            raise TypeError(
                f"images must be a tensor, an array or an iterable of batches, "
                f"got {type(images).__name__}"
            )

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


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (batch norm and dropout as in inference) and the caller's mode
    after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class _Recorder:
    """Validates a unit selection, learns the layers' shapes and runs hooked forward
    passes."""

    def __init__(self, model, units, pool, seed, device):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        self.model = model
        self.device = _model_device(model)
        if device is not None and torch.device(device) != self.device:
            wanted = torch.device(device)
            if not (wanted.type == self.device.type and wanted.index is None):
                raise ValueError(f"device={wanted} but the model's parameters are on "
                                 f"{self.device}; move the model first "
                                 f"(model.to({str(wanted)!r}))")
        self.input_dtype = _model_float_dtype(model)
        self.requests = layer_requests(model, units, pool)
        self.seed = seed

    def prepare(self, example):
        """Learn output shapes and call order from one image, then build the indices."""
        self.order = self._probe(example)
        for r in self.requests:
            r.index = selection_index(r, self.seed)
        start = 0
        for r in self.requests:
            r.columns = slice(start, start + r.index.numel())
            start = r.columns.stop
        self.n_units = start
        self.last = self.order[-1]
        self.units = unit_table(self.requests)
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
                        f"layer {request.name!r} runs more than once in one forward "
                        f"pass (a module used at several places); its output is "
                        f"ambiguous: record a module that runs once"
                    )
                seen[request.name] = output
                order.append(request.name)
            return hook

        x = self._to_input(example[:1])
        handles = [r.module.register_forward_hook(make_hook(r)) for r in self.requests]
        try:
            with _eval_mode(self.model), torch.inference_mode():
                try:
                    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                        self.model(mode.from_tensor(x))
                except _AmbiguousLayer:
                    raise
                except (
                    Exception
                ):  # the model cannot run on fake tensors: one real image
                    seen.clear()
                    order.clear()
                    self.model(x)
        finally:
            for h in handles:
                h.remove()
        for r in self.requests:
            if r.name not in seen:
                raise RuntimeError(
                    f"layer {r.name!r} did not run in the forward pass of "
                    f"{type(self.model).__name__}"
                )
            out = seen[r.name]
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"layer {r.name!r} returns {type(out).__name__}, not a tensor; "
                    f"record a layer whose output is one tensor"
                )
            if out.dim() not in (2, 4):
                raise ValueError(
                    f"layer {r.name!r} has output shape {tuple(out.shape)}; "
                    f"record reads (N, C, H, W) and (N, F) outputs"
                )
            if out.dtype not in OUT_DTYPES:
                raise TypeError(
                    f"layer {r.name!r} outputs {out.dtype}; record reads float16, "
                    f"bfloat16, float32 and float64 outputs"
                )
            r.shape = tuple(out.shape[1:])
            if r.pooling != "none" and out.dim() == 2:
                if (
                    not r.pool_explicit
                ):  # a pool for all layers leaves (N, F) layers as they are
                    r.pooling = "none"
                    continue
                raise ValueError(
                    f"layer {r.name!r} has output shape {tuple(out.shape)}: there "
                    f"are no channels to pool (pool a (N, C, H, W) layer)"
                )
        return order

    def _to_input(self, batch):
        x = batch.to(self.device, non_blocking=True)
        if self.input_dtype is not None and x.dtype.is_floating_point:
            x = x.to(self.input_dtype)
        return x

    def run(self, images, out_for_batch, progress, desc):
        """Run every batch; ``out_for_batch(rows)`` gives (out, row0) for a batch of
        rows."""
        state = {}

        def make_hook(request):
            stop = request.name == self.last

            def hook(module, inputs, output):
                out, row0 = state["out"], state["row0"]
                if request.name in state["fired"]:
                    raise _AmbiguousLayer(
                        f"layer {request.name!r} ran twice in one forward "
                        f"pass; its output is ambiguous"
                    )
                state["fired"].add(request.name)
                if output.shape[1:] != request.shape:
                    raise RuntimeError(
                        f"layer {request.name!r} output shape changed from "
                        f"{request.shape} to {tuple(output.shape[1:])}"
                    )
                _ops.gather_units(output, request.index, request.pooling, out, row0,
                                  request.columns.start)
                if stop:
                    raise _StopForward
            return hook

        handles = [r.module.register_forward_hook(make_hook(r)) for r in self.requests]
        try:
            with _eval_mode(self.model), torch.inference_mode():
                with progress_bar(total=images.n_batches(), desc=desc, enabled=progress,
                                  unit="batch") as bar:
                    for batch in images.batches():
                        if batch.shape[0] == 0:
                            continue
                        state["out"], state["row0"] = out_for_batch(batch.shape[0])
                        state["fired"] = set()
                        try:
                            self.model(self._to_input(batch))
                        except _StopForward:
                            pass
                        yield batch.shape[0]
                        bar.update()
        finally:
            for h in handles:
                h.remove()


def _check_out_dtype(out_dtype):
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")


def _raise_non_finite(values, units, where=""):
    bad = (~torch.isfinite(values)).nonzero()
    row, col = (int(v) for v in bad[0])
    unit = units.iloc[col]
    raise FloatingPointError(
        f"non-finite response ({values[row, col].item()}) at image {row}{where}, "
        f"column {col}: layer {unit['layer']!r}, channel {unit['channel']}, y "
        f"{unit['y']}, x {unit['x']}, pooling {unit['pooling']!r} ({bad.shape[0]} "
        f"non-finite values in all); check the images for NaN/Inf and, for float16 "
        f"outputs, for overflow"
    )

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
        Where ``values`` lives (default the host, in pinned memory when the model runs
        on a GPU, so that each batch's block is copied asynchronously).
    check_finite : bool
        Raise FloatingPointError naming the image and unit when a response is NaN or
        Inf.

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
        if (
            filled + rows > capacity
        ):  # an iterable of unknown length: grow geometrically
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
    group = distributed_group(distributed)
    source = _Images(images, batch_size)
    targets = as_targets(targets)
    if source.count is not None and targets.shape[0] != source.count:
        raise ValueError(
            f"targets has {targets.shape[0]} rows but there are {source.count} "
            f"images"
        )
    recorder = _Recorder(model, units, pool, seed, device)
    recorder.prepare(source.first_image())
    if group is not None:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if source.array is not None:
            source = source.shard(rank, world)
            targets = targets[source.rows[0]:source.rows[1]]
    accumulator = StatsAccumulator(recorder.n_units, targets.shape[1], recorder.device,
                               response_gram)
    buffer = torch.empty(
        (batch_size if source.array is not None else 0, recorder.n_units),
        dtype=out_dtype,
        device=recorder.device,
    )
    target_row = 0

    def out_for_batch(rows):
        nonlocal buffer
        if rows > buffer.shape[0]:
            buffer = torch.empty((rows, recorder.n_units), dtype=out_dtype,
                                 device=recorder.device)
        return buffer, 0

    for rows in recorder.run(source, out_for_batch, progress, "record_stats"):
        if target_row + rows > targets.shape[0]:
            raise ValueError(
                f"targets has {targets.shape[0]} rows but the images have more"
            )
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
    return allreduce(local, group)
