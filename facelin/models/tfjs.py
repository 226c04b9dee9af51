"""TensorFlow.js graph models in PyTorch, read from their JSON topology and weights.

A TF.js graph model is a ``<name>.json`` file (the TensorFlow graph: one entry per node
with its op, inputs and attributes, and a manifest of the weights) and one or more
binary weight files. :func:`read_tfjs_graph` turns one into a :class:`TFJSGraph`, a
``torch.nn.Module`` that computes exactly what the graph computes, for the ops that
feed-forward image networks use (see ``SUPPORTED_OPS``).

Layouts. TF.js computes in NHWC; the module takes and keeps images in PyTorch's NCHW
layout: its input is the graph's input as an (N, C, H, W) float tensor and every rank-4
intermediate is NCHW (the ops, in `facelin.models.tfjs_ops`, translate axes, constants
and filters).

Every computing node is a submodule named after the node (``/`` and other characters
that cannot appear in a module name become ``_``); ``layer_names()`` lists them in the
order they run, so a forward hook on any of them sees that node's output (for a rank-4
node, NCHW). Only the nodes the requested output depends on are built.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

# SUPPORTED_OPS and same_padding live with the ops and are also importable from here.
from .tfjs_ops import SUPPORTED_OPS, TFJSFormatError, TFJSOp, build_op, same_padding

__all__ = ["TFJSFormatError", "TFJSGraph", "load_graph", "read_tfjs_graph",
           "SUPPORTED_OPS", "same_padding", "tfjs_reference", "REFERENCE_SCRIPT",
           "TOLERANCE", "relative_difference"]

# A port reproduces TF.js when its values differ from TF.js's by at most this fraction
# of TF.js's largest magnitude (float32 arithmetic in a different order).
TOLERANCE = 1e-4
# The node script that runs a graph with TensorFlow.js's pure-JavaScript CPU backend.
REFERENCE_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "tfjs_reference.js"

_DTYPES = {"float32": (np.float32, np.float32), "int32": (np.int32, np.int32),
           "bool": (np.bool_, np.bool_)}
_QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


# --------------------------------------------------------------------------------------
# Reading the files


def _read_weights(manifest: list, folder: Path, source: str) -> dict:
    """Every weight of the manifest as a numpy array (dequantised to its own dtype)."""
    weights = {}
    for group in manifest:
        paths = [folder / p for p in group["paths"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise TFJSFormatError(f"{source}: weight file(s) {missing} not found")
        data = b"".join(p.read_bytes() for p in paths)
        offset = 0
        for spec in group["weights"]:
            name, shape = spec["name"], [int(d) for d in spec["shape"]]
            quantization = spec.get("quantization")
            if spec["dtype"] not in _DTYPES:
                raise TFJSFormatError(f"{source}: weight {name!r} has dtype "
                                      f"{spec['dtype']!r}, not supported")
            if quantization:
                stored = _QUANTIZED.get(quantization["dtype"])
                if stored is None:
                    raise TFJSFormatError(f"{source}: weight {name!r} is quantised as "
                                          f"{quantization['dtype']!r}, not supported")
            else:
                stored = _DTYPES[spec["dtype"]][0]
            count = int(np.prod(shape)) if shape else 1
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise TFJSFormatError(
                    f"{source}: weight {name!r} needs bytes {offset}..{offset + size} "
                    f"of {[str(p) for p in paths]}, which hold only {len(data)} "
                    "bytes (truncated file?)")
            array = np.frombuffer(data, stored, count, offset).reshape(shape)
            offset += size
            if quantization and quantization["dtype"] != "float16":
                array = array * np.float32(quantization["scale"]) + np.float32(
                    quantization["min"])
            weights[name] = array.astype(_DTYPES[spec["dtype"]][1])
        if offset != len(data):
            raise TFJSFormatError(f"{source}: the weight files "
                                  f"{[str(p) for p in paths]} hold {len(data)} bytes, "
                                  f"the manifest describes {offset}")
    return weights


def _input_name(reference: str) -> str | None:
    """A node input ``"name"`` or ``"name:0"`` as the node name; None for a control
    input (``"^name"``)."""
    if reference.startswith("^"):
        return None
    name, _, index = reference.partition(":")
    if index not in ("", "0"):
        raise TFJSFormatError(f"input {reference!r}: only first outputs are supported")
    return name


def _module_name(node_name: str, taken: set, owner: type) -> str:
    name = re.sub(r"\W", "_", node_name)
    if name[0].isdigit() or hasattr(owner, name):
        name = "node_" + name
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# --------------------------------------------------------------------------------------
# The graph


class TFJSGraph(nn.Module):
    """A TF.js graph model as a PyTorch module: (N, C, H, W) float input -> the output
    node's value (rank-4 outputs in NCHW).

    Attributes: ``input_node``, ``output_node`` (TF.js node names), ``input_shape`` (the
    placeholder's (C, H, W), None where it is not fixed) and ``source`` (the JSON file).
    """

    def __init__(self, ops: list[TFJSOp], input_node: str, output_node: str,
                 input_shape, source: str):
        super().__init__()
        self.input_node, self.output_node = input_node, output_node
        self.input_shape, self.source = input_shape, source
        self._order, self._module_of = [], {}
        taken = set()
        for op in ops:
            name = _module_name(op.node_name, taken, type(self))
            self.add_module(name, op)
            self._order.append(name)
            self._module_of[op.node_name] = name
        # after its last reader has run, a value is dropped (keeps peak memory low)
        last_use = {}
        for name in self._order:
            for source_node in self.get_submodule(name).inputs:
                last_use[source_node] = name
        self._release = {}
        for node, name in last_use.items():
            self._release.setdefault(name, []).append(node)
        # ops that may overwrite their first operand: it is computed by another op (not
        # the caller's input) and read by no other op; whether anyone else has seen it
        # (a hook) is checked at each call
        readers = {}
        for name in self._order:
            for source_node in set(self.get_submodule(name).inputs):
                readers[source_node] = readers.get(source_node, 0) + 1
        self._overwrites = {}
        for name in self._order:
            op = self.get_submodule(name)
            if getattr(op, "can_work_in_place", False) \
                    and op.inputs[0] in self._module_of and readers[op.inputs[0]] == 1:
                self._overwrites[name] = self._module_of[op.inputs[0]]

    def layer_names(self) -> list[str]:
        """The submodule name of every computing node, in the order they run."""
        return list(self._order)

    def module_name(self, node_name: str) -> str:
        """The submodule name of a TF.js node (``"global_pooling/Mean"`` ->
        ``"global_pooling_Mean"``)."""
        node_name = _input_name(node_name)
        if node_name not in self._module_of:
            raise KeyError(f"no computing node {node_name!r} in {self.source} "
                           f"(up to {self.output_node!r})")
        return self._module_of[node_name]

    def unit_counts(self) -> dict:
        """Output shape (without the batch) of every node in `layer_names`, in order
        (rank-4 outputs as (C, H, W))."""
        if self.input_shape is None or None in self.input_shape:
            raise ValueError("unit_counts needs a graph input of fixed shape")
        shapes = {}
        hooks = [self.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
            for name in self._order]
        parameter = next(self.parameters(), None)
        dtype = torch.float32 if parameter is None else parameter.dtype
        try:
            with torch.no_grad():
                TFJSGraph.forward(self, torch.full((1, *self.input_shape), 128.0,
                                                   dtype=dtype))
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    def stage_table(self) -> list[dict]:
        """One row per node: name ("stage"), kind (the TF op), output shape, units."""
        return [{"stage": name, "kind": self.get_submodule(name).op,
                 "output shape": shape, "units": int(np.prod(shape))}
                for name, shape in self.unit_counts().items()]

    def check_input(self, x: torch.Tensor):
        """Raise TypeError unless ``x`` is a float tensor, ValueError unless it is
        (N, C, H, W) with the graph input's fixed sizes."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"input: expected a float tensor, got "
                            f"{getattr(x, 'dtype', type(x))}")
        expected = self.input_shape
        if x.dim() != 4 or (expected is not None and any(
                e is not None and e != s for e, s in zip(expected, x.shape[1:]))):
            raise ValueError(f"input: expected shape "
                             f"(N, {', '.join(map(str, expected))}) (NCHW), got "
                             f"{tuple(x.shape)}")

    def _may_overwrite(self, name: str) -> bool:
        """Whether op ``name`` may compute into its first operand: no gradient is
        recorded and no hook could hold that operand (none on the op that computed it,
        no pre-hook on this op, no global hooks)."""
        producer = self._overwrites.get(name)
        if producer is None or torch.is_grad_enabled():
            return False
        from torch.nn.modules import module as torch_module

        global_hooks = (getattr(torch_module, "_global_forward_hooks", None),
                        getattr(torch_module, "_global_forward_pre_hooks", None))
        return not (any(global_hooks) or self.get_submodule(producer)._forward_hooks
                    or self.get_submodule(name)._forward_pre_hooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        values = {self.input_node: x}
        for name in self._order:
            op = self.get_submodule(name)
            if name in self._overwrites:
                # elementwise ops overwrite operands no one else sees: fewer passes over
                # memory (a quarter of faceres's time); outputs are the same
                op.in_place = self._may_overwrite(name)
            values[op.node_name] = op(*(values[i] for i in op.inputs))
            for node in self._release.get(name, ()):
                if node != self.output_node:
                    del values[node]
        return values[self.output_node]


def load_graph(path, output: str | None = None, cls: type = TFJSGraph, **kwargs):
    """Read a TF.js graph model as ``cls(ops, input_node, output_node, input_shape,
    source, **kwargs)``: a `TFJSGraph` (or a subclass, e.g. a face network), in
    training mode with gradients, as built. `read_tfjs_graph` describes ``path``,
    ``output`` and the errors."""
    path = Path(path)
    source = str(path)
    try:
        model = json.loads(path.read_text())
        nodes = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise TFJSFormatError(f"{source}: not a TF.js graph model ({err!r})") from None
    by_name = {node["name"]: node for node in nodes}
    placeholders = [n for n in nodes if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise TFJSFormatError(f"{source}: {len(placeholders)} inputs (Placeholder "
                              "nodes); only single-input graphs are supported")
    input_node = placeholders[0]["name"]
    if output is None:
        outputs = list(model.get("signature", {}).get("outputs", {}))
        if len(outputs) != 1:
            raise ValueError(f"{source}: the graph has outputs {outputs}; name one "
                             "with output=")
        output = outputs[0]
    output = _input_name(output)
    if output not in by_name:
        close = [n for n in by_name if output.split("/")[0] in n][:5]
        similar = f"; similar: {close}" if close else ""
        raise KeyError(f"{source}: no node {output!r}{similar}")

    weights = _read_weights(manifest, path.parent, source)
    ops, constants = [], {}
    for name in _dependency_order(by_name, output, source):
        node = by_name[name]
        where = f"{source}: node {name!r}"
        if node["op"] == "Const":
            if name not in weights:
                raise TFJSFormatError(f"{where} (Const) has no entry in the weights "
                                      "manifest")
            constants[name] = weights[name]
            continue
        if node["op"] == "Placeholder":
            continue
        inputs = [constants.get(i, i) for i in map(_input_name, node.get("input", []))
                  if i is not None]
        ops.append(build_op(node, inputs, where))
    dims = _attr_shape(placeholders[0])
    input_shape = None if dims is None else (dims[3], dims[1], dims[2])
    return cls(ops, input_node, output, input_shape, source, **kwargs)


def _dependency_order(by_name: dict, output: str, source: str) -> list[str]:
    """The nodes ``output`` depends on (itself included), inputs before their readers
    (depth-first, iterative). Raises TFJSFormatError for a missing input or a cycle."""
    order, state, stack = [], {}, [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            state[name] = "done"
            order.append(name)
            continue
        if state.get(name):
            continue
        state[name] = "open"
        stack.append((name, True))
        node = by_name.get(name)
        if node is None:
            raise TFJSFormatError(f"{source}: node input {name!r} does not exist")
        for reference in reversed(node.get("input", [])):
            dependency = _input_name(reference)
            if dependency is not None and state.get(dependency) != "done":
                if state.get(dependency) == "open":
                    raise TFJSFormatError(f"{source}: cycle through {dependency!r}")
                stack.append((dependency, False))
    return order


def _attr_shape(node):
    """The placeholder's declared (N, H, W, C) shape, None for unknown sizes; None when
    it declares no rank-4 shape."""
    dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim")
    if dims is None or len(dims) != 4:
        return None
    return [None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims]


def read_tfjs_graph(path, output: str | None = None) -> TFJSGraph:
    """Read a TF.js graph model (``<name>.json`` and the weight files its manifest
    names, in the same folder) as a :class:`TFJSGraph` in eval mode, float32.

    Parameters
    ----------
    path : the model's JSON file.
    output : the TF.js node whose value the module returns (e.g.
        ``"global_pooling/Mean"``; a ``":0"`` suffix is allowed); None takes the graph's
        output when its signature names exactly one. Only the nodes it depends on are
        built and computed.

    Raises
    ------
    TFJSFormatError
        for a malformed file, a missing or truncated weight file, or an unsupported op
        (naming the op and its node).
    """
    return load_graph(path, output).eval().requires_grad_(False)


def tfjs_reference(path, inputs, nodes) -> dict:
    """What TensorFlow.js itself computes (its pure-JavaScript CPU backend, under node)
    for a graph model: ``{node: array}`` for each TF.js node name in ``nodes``, given
    ``inputs`` (N, C, H, W) float32 as :class:`TFJSGraph` takes them. Rank-4 values are
    returned in :class:`TFJSGraph`'s NCHW layout. Needs node and npm (TensorFlow.js is
    installed into the cache on first use, see `facelin.models.npm.tfjs_modules`)."""
    import shutil
    import subprocess
    import tempfile

    from .npm import NpmError, tfjs_modules

    node = shutil.which("node")
    if node is None:
        raise NpmError("the TF.js reference needs node, which is not installed")
    if not REFERENCE_SCRIPT.is_file():
        raise FileNotFoundError(f"{REFERENCE_SCRIPT}: the reference script (in the "
                                "source tree's tools/) is missing")
    batch = np.ascontiguousarray(np.asarray(inputs, dtype="<f4").transpose(0, 2, 3, 1))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        batch.tofile(work / "input.bin")
        done = subprocess.run(
            [node, str(REFERENCE_SCRIPT), "--modules", str(tfjs_modules()), "--model",
             str(path), "--input", str(work / "input.bin"), "--shape",
             ",".join(map(str, batch.shape)), "--nodes", ",".join(nodes), "--out",
             str(work / "out.json")], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{REFERENCE_SCRIPT.name} failed: {done.stderr[-1000:]}")
        result = json.loads((work / "out.json").read_text())
    out = {}
    for name in nodes:
        entry = result["nodes"][name]
        value = np.frombuffer(base64.b64decode(entry["values"]), "<f4").reshape(
            entry["shape"])
        out[name] = value.transpose(0, 3, 1, 2) if value.ndim == 4 else value
    return out


def relative_difference(ours, reference) -> float:
    """max |ours - reference| / max |reference|: the largest difference relative to the
    reference's scale (what `TOLERANCE` bounds)."""
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        raise ValueError(f"shapes differ: {ours.shape} and {reference.shape}")
    scale = np.abs(reference).max()
    if not np.isfinite(scale) or scale == 0 or not np.isfinite(ours).all():
        raise ValueError("the reference is all zero, or a value is NaN or Inf")
    return float(np.abs(ours - reference).max() / scale)
