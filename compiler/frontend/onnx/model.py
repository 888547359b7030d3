"""``OnnxModel``: an imported ONNX graph as an ordinary ``compiler.Model``.

The model keeps the ONNX graph (plain protobuf data) and re-imports it into IR each time it is
lowered, for the input types of that lowering (so symbolic dims stay symbolic and shape chains
fold for them). Its weights are the initializers the import reads as kernels' weights or
run-time values, keyed by their ONNX names, stored in deferc's layout (Conv kernels as
``(kh, kw, in/groups, out)``, Gemm's B as ``(in, out)``); initializers only used at import
(shapes, folded subgraphs) are not weights.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ...errors import CompilerError
from ...ir import Origin
from ...types import TensorSpec, as_model_dtype
from ..layers import Layer
from ..models import Model
from . import einsum, more_ops, nn_ops, resize, rnn_ops, shape_ops  # noqa: F401 - converters
from .converters import CONVERTERS
from .folding import fold
from .graph import Importer, StoredValue, Tensor
from .reader import (
    DEFAULT_DOMAINS,
    MAX_ELEMENTS,
    check_structure,
    default_opset,
    read_model,
    require_onnx,
    tensor_to_array,
)

#: ops that only ever run at import (their inputs must be known)
FOLD_ONLY = frozenset({"Constant", "ConstantOfShape", "Range", "Tile", "NonZero", "Equal",
                       "Not", "Where", "Shape", "Size"})


def supported_ops() -> list[str]:
    return sorted(set(CONVERTERS) | FOLD_ONLY)


class OnnxWeights(Layer):
    """Holds an imported model's weights, one variable per initializer name."""

    op = "identity"

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__(name="onnx_weights")
        self._order = list(arrays)
        for key, array in arrays.items():
            var = self.variable(key)
            var.value = np.ascontiguousarray(array)
            var.name = key

    @property
    def param_names(self) -> list[str]:
        return list(self._order)

    @property
    def param_shapes(self) -> dict[str, tuple]:
        return {k: self.variable(k).value.shape for k in self._order}

    @property
    def built(self) -> bool:
        return True

    def initializer(self, param: str) -> Any:
        return StoredValue(param)


def _attrs(node: Any) -> dict:
    onnx = require_onnx()
    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[a.name] = value
    return out


def _declared_shape(value_info: Any) -> tuple:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        raise CompilerError(f"ONNX graph input '{value_info.name}' has no declared rank; pass "
                            f"input_shapes={{'{value_info.name}': (...)}}")
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            if not 0 < d.dim_value <= MAX_ELEMENTS:
                raise CompilerError(f"ONNX graph input '{value_info.name}': dim {d.dim_value} "
                                    f"is not a usable size (1 to {MAX_ELEMENTS})")
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return tuple(dims)


class OnnxModel(Model):
    """A ``Model`` whose body is an ONNX graph; see the module docstring."""

    def __init__(self, proto: Any, folder: Any = None, input_shapes: dict | None = None,
                 layout: str = "NCHW", name: str | None = None):
        if layout not in ("NCHW", "NHWC"):
            raise CompilerError(f"compiler.onnx.load: layout must be 'NCHW' or 'NHWC', "
                                f"received {layout!r}")
        graph = proto.graph
        self._opset = default_opset(proto)
        self._nodes = check_structure(graph)
        self._check_ops()
        self._layout = layout
        self._initializers = {t.name: tensor_to_array(t, folder) for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in self._initializers]
        if not inputs:
            raise CompilerError("ONNX graph has no inputs (every graph input is an "
                                "initializer)")
        shapes = dict(input_shapes or {})
        unknown = sorted(set(shapes) - {v.name for v in inputs})
        if unknown:
            raise CompilerError(f"input_shapes names {unknown}, which are not graph inputs; the "
                                f"inputs are {[v.name for v in inputs]}")
        specs = []
        for v in inputs:
            declared = _declared_shape(v) if v.name not in shapes else tuple(shapes[v.name])
            if v.name in shapes and v.type.tensor_type.HasField("shape") and len(
                    v.type.tensor_type.shape.dim) != len(declared):
                raise CompilerError(f"input_shapes['{v.name}'] has rank {len(declared)}, the "
                                    f"file declares rank {len(v.type.tensor_type.shape.dim)}")
            if layout == "NHWC" and len(declared) == 4:
                declared = (declared[0], declared[2], declared[3], declared[1])
            specs.append(TensorSpec(declared, name=v.name))
        # what a pickle rebuilds the model from (``__reduce__``): the graph without its
        # initializers (their arrays are in ``_initializers``), and the load options
        self._header = (proto.ir_version, [(o.domain, o.version) for o in proto.opset_import],
                        list(graph.input), list(graph.output), graph.name)
        self._load_options = {"input_shapes": dict(input_shapes or {}), "layout": layout,
                              "name": name}
        self._input_infos = [v.name for v in inputs]
        self._output_names = [o.name for o in graph.output]
        dtype = _model_dtype(inputs)
        self._init_common(name or (graph.name if graph.name and "/" not in graph.name
                                   else None) or "onnx_model", dtype)
        self._inputs = [None] * len(inputs)
        self._outputs = list(self._output_names)
        self._single_output = len(self._output_names) == 1
        self._input_specs = specs
        self._layers = [OnnxWeights({})]
        # a first import with the declared signature: finds errors now, and the weights
        from ...lowering import GraphBuilder

        builder = GraphBuilder(self.name, self.dtype)
        nodes = [builder.input(s.to_type(self.dtype, i), s.name) for i, s in enumerate(specs)]
        imp = self._import(builder, nodes, weights=None)
        self._layers = [OnnxWeights(imp.used_weights)]
        self._built_specs = list(specs)

    def _check_ops(self) -> None:
        custom = [(n.domain, n.op_type, n.name) for n in self._nodes
                  if n.domain not in DEFAULT_DOMAINS]
        if custom:
            raise CompilerError("ONNX model uses custom domains, which deferc does not import: "
                                + ", ".join(f"{op} (node '{name}', domain '{d}')"
                                            for d, op, name in custom))
        missing = [n for n in self._nodes if n.op_type not in CONVERTERS
                   and n.op_type not in FOLD_ONLY]
        if missing:
            listed = "; ".join(f"{n.op_type} (node '{n.name}', domain 'ai.onnx', opset "
                               f"{self._opset})" for n in missing)
            raise CompilerError(f"ONNX model uses {len(missing)} unsupported node(s): {listed}. "
                                f"Supported ops: {', '.join(supported_ops())}")

    # -- what lowering calls ----------------------------------------------------------------
    def _import(self, builder: Any, input_nodes: list[int], weights: dict | None,
                key_of: Any = None) -> Importer:
        from ..tracing import input_types

        types = input_types(builder, input_nodes)
        imp = Importer(builder.graph, builder.dtype, self._opset, weights, self._initializers,
                       key_of)
        prefix = builder.prefix  # nested in another model: "outer/..." origins
        for name, node, t in zip(self._input_infos, input_nodes, types):
            imp.values[name] = Tensor(node, t, nhwc=self._layout == "NHWC" and t.rank == 4)
        # values something reads: a converter skips the optional outputs nobody uses
        imp.consumed = {i for n in self._nodes for i in n.input} | set(self._output_names)
        for i, node in enumerate(self._nodes):
            imp.origin = Origin(prefix + (node.name or f"{node.op_type}_{i}"), node.op_type)
            attrs = _attrs(node)
            outs = fold(imp, node, attrs)
            if outs is not None:
                imp.note_folded(node, outs)
            else:
                if node.op_type not in CONVERTERS:
                    raise CompilerError(f"ONNX node '{imp.origin.name}' ({node.op_type}): "
                                        f"deferc computes it only when its inputs are known at "
                                        f"import, and they are not")
                outs = CONVERTERS[node.op_type](imp, node, attrs)
            for name, value in zip(node.output, outs):
                if name:
                    imp.values[name] = value
        nhwc_out = self._layout == "NHWC"
        imp.outputs = []
        for name in self._output_names:
            imp.origin = Origin(name, "output")
            imp.outputs.append(imp.tensor(name, nhwc_out).node)
        return imp

    def _lower_body(self, builder: Any, input_nodes: list[int]) -> list[int]:
        from ...lowering import weight_key

        store = self._layers[0]
        weights = {k: store.variable(k).value for k in store.param_names}

        def key_of(name: str) -> str:
            """The weight's key in the model being lowered (nested: under this model's name)."""
            return builder.keys.get(id(store.variable(name))) or weight_key(store, name,
                                                                           builder.prefix)
        return self._import(builder, input_nodes, weights, key_of).outputs

    def _weight_entries(self) -> list:
        holder = self._layers[0]
        return [(key, holder, key) for key in holder.param_names]

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    # -- pickling ---------------------------------------------------------------------------
    def __reduce__(self) -> tuple:
        """Pickled as ONNX bytes plus the current weights: unpickling imports the graph again
        (no compiled plan travels; a plan pickles on its own) and restores the weights."""
        store = self._layers[0]
        weights = {k: np.array(store.variable(k).value) for k in store.param_names}
        return _unpickle, (self._file_bytes(), {**self._load_options, "name": self.name}, weights)

    def _file_bytes(self) -> bytes:
        """The ONNX file this model was loaded from (external data inlined)."""
        onnx = require_onnx()
        ir_version, opsets, inputs, outputs, name = self._header
        graph = onnx.helper.make_graph(
            self._nodes, name, inputs, outputs,
            [onnx.numpy_helper.from_array(np.asarray(a), k)
             for k, a in self._initializers.items()])
        proto = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets])
        proto.ir_version = ir_version
        return proto.SerializeToString()

    @property
    def opset(self) -> int:
        return self._opset

    def op_histogram(self) -> Counter:
        """How many nodes of each ONNX op type the file holds."""
        return Counter(n.op_type for n in self._nodes)

    def summary(self, print_fn: Any = print) -> str:
        """Inputs and outputs with symbolic dims, the op histogram and the weight count."""
        from ...lowering import lower
        from ...passes import CompileContext, propagate_shapes
        from ...symbolic import format_shape

        graph = lower(self, self.assumed_input_types())
        propagate_shapes(graph, CompileContext())
        lines = [f'Model: "{self.name}" (ONNX, opset {self._opset}, layout {self._layout})']
        for name, n in zip(self.input_names, graph.graph["inputs"]):
            lines.append(f"  input  {name}: {format_shape(graph.nodes[n]['type'].shape)}")
        for name, n in zip(self._output_names, graph.graph["outputs"]):
            lines.append(f"  output {name}: {format_shape(graph.nodes[n]['type'].shape)}")
        ops = ", ".join(f"{op} {c}" for op, c in sorted(self.op_histogram().items()))
        lines.append(f"  ops: {ops}")
        total = sum(int(np.prod(s)) for s in self._layers[0].param_shapes.values())
        lines.append(f"Total params: {total:,} in {len(self._layers[0].param_names)} weights")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def _model_dtype(inputs: list) -> np.dtype:
    onnx = require_onnx()
    for v in inputs:
        elem = v.type.tensor_type.elem_type
        if elem == onnx.TensorProto.DOUBLE:
            return as_model_dtype(np.float64)
        if elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            return as_model_dtype(np.float32)
    return as_model_dtype(np.float32)


def _unpickle(data: bytes, options: dict, weights: dict) -> OnnxModel:
    proto, folder = read_model(data)
    model = OnnxModel(proto, folder, **options)
    store = model._layers[0]
    for key, value in weights.items():
        store.variable(key).value = value
    return model


def load(source: Any, input_shapes: dict | None = None, layout: str = "NCHW",
         name: str | None = None) -> OnnxModel:
    """An ONNX model (path, bytes or ``onnx.ModelProto``) as a ``compiler.Model``."""
    proto, folder = read_model(source)
    return OnnxModel(proto, folder, input_shapes=input_shapes, layout=layout, name=name)
