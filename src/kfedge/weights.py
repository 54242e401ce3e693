"""Weight statistics of a model file: parameter count, kernel sparsity, unique values, gzip size.

One reader per format, and for TFLite ONE table of kernel ops (:data:`TFLITE_KERNEL_OPS`) that
both the evaluation (:func:`weight_stats`) and the techniques' recorded stats use
(:func:`tflite_kernels`), so the sparsity stored with a candidate and the sparsity in its
evaluation count the same tensors the same way.

Kernels are the weights of convolutions and dense / matmul layers. A quantized kernel counts the
values equal to its zero point as zero; a float16 kernel (reaching its op through a
``DEQUANTIZE``) is read as stored, before dequantization.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format

#: TFLite ops whose weight input is a kernel -> index of that input.
TFLITE_KERNEL_OPS = {
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 1,
    "FULLY_CONNECTED": 1,
    "TRANSPOSE_CONV": 1,
    "CONV_3D": 1,
    "BATCH_MATMUL": 1,
}
# op type -> (weight input index, weight zero-point input index or None)
_ONNX_KERNEL_OPS = {
    "Conv": (1, None),
    "ConvTranspose": (1, None),
    "Gemm": (1, None),
    "MatMul": (1, None),
    "ConvInteger": (1, 3),
    "MatMulInteger": (1, 3),
    "QLinearConv": (3, 5),
    "QLinearMatMul": (3, 5),
}
# op type -> input indices that hold quantization scales / zero points (not parameters)
_ONNX_QPARAM_INPUTS = {
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "DynamicQuantizeLinear": (),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
}


@dataclass(frozen=True)
class Kernel:
    """One kernel tensor as stored in a model file.

    Attributes:
        name: Tensor (or node) name.
        values: The stored values (int8 / float16 / float32 ..., not dequantized).
        zero: The value that means zero: the zero point(s) of a quantized kernel, broadcastable
            against ``values``, else ``0``.
        op: The op that consumes it (TFLite: ``CONV_2D``...; ONNX: ``Conv``...; Keras: ``""``).
        key: ``op#index`` for TFLite (e.g. ``conv_2d#3``), else the name.
        scales: Quantization scales (empty for a float kernel).
        quantized_dimension: Axis of per-channel scales / zero points.
    """

    name: str
    values: np.ndarray
    zero: np.ndarray | float = 0
    op: str = ""
    key: str = ""
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    quantized_dimension: int = 0

    @property
    def dtype(self) -> str:
        """Storage dtype name (``int8``, ``float16``, ``float32``...)."""
        return np.dtype(self.values.dtype).name

    @property
    def zeros(self) -> int:
        """Number of stored values equal to the zero value."""
        return int(np.count_nonzero(self.values == self.zero))

    def dequantized(self) -> np.ndarray:
        """The kernel as float32 real values (scale * (q - zero point) for a quantized one)."""
        v = self.values.astype(np.float32)
        if self.scales.size == 0:
            return v
        shape = [1] * v.ndim
        if self.scales.size > 1:
            shape[self.quantized_dimension] = self.scales.size
        scales = self.scales.astype(np.float32).reshape(shape if v.ndim else ())
        return (v - np.asarray(self.zero, dtype=np.float32)) * scales


# -- size ------------------------------------------------------------------------------------
class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def gzip_size(path: str | Path) -> int:
    """Bytes of the file(s) at ``path`` compressed with gzip level 9 (each file on its own).

    An OpenVINO IR ``.xml`` counts with its ``.bin`` weights file.
    """
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    if p.suffix == ".xml" and p.with_suffix(".bin").is_file():
        files.append(p.with_suffix(".bin"))
    total = 0
    for f in files:
        sink = _Counter()
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=9, mtime=0) as gz:  # type: ignore[arg-type]
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    gz.write(chunk)
        total += sink.n
    return total


# -- statistics ------------------------------------------------------------------------------
def kernel_stats(kernels: Iterable[Kernel]) -> dict[str, Any]:
    """Sparsity and unique values of kernels.

    Args:
        kernels: Kernels as :func:`tflite_kernels` (or the other readers) give them.

    Returns:
        ``sparsity`` (fraction of kernel values equal to their zero), ``sparsity_per_layer``
        and ``unique_weights`` (by tensor name; a repeated name gets ``#2``, ``#3``...) and
        ``kernel_weights`` (number of kernel values).
    """
    unique: dict[str, int] = {}
    per_layer: dict[str, float] = {}
    zeros = total = 0
    for kern in kernels:
        key, k = kern.name, 1
        while key in unique:
            k += 1
            key = f"{kern.name}#{k}"
        z = kern.zeros
        zeros += z
        total += kern.values.size
        unique[key] = int(np.unique(kern.values).size)
        per_layer[key] = round(z / kern.values.size, 6) if kern.values.size else 0.0
    return {
        "sparsity": (zeros / total) if total else 0.0,
        "sparsity_per_layer": per_layer,
        "unique_weights": unique,
        "kernel_weights": total,
    }


def _zero_point_array(values: np.ndarray, zps: np.ndarray, axis: int) -> np.ndarray | float:
    zps = np.asarray(zps)
    if zps.size == 0:
        return 0
    if zps.size == 1:
        return zps.reshape(()).astype(values.dtype)
    if values.shape[axis] != zps.size:
        # QOperator ops carry no axis: a per-column zero point (MatMul weights K x N) lies on
        # whichever axis has that many entries, the last one first
        fits = [i for i, d in enumerate(values.shape) if d == zps.size]
        if not fits:
            raise ModelFormatError(
                f"{zps.size} zero points fit no axis of a weight of shape {values.shape}"
            )
        axis = fits[-1]
    shape = [1] * values.ndim
    shape[axis] = zps.size
    return zps.reshape(shape).astype(values.dtype)


# -- TFLite ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TfliteWeights:
    """What :func:`read_tflite` finds in a .tflite file.

    Attributes:
        kernels: The constant kernel of every op in :data:`TFLITE_KERNEL_OPS`, in graph order.
        params_count: Number of parameter values (float constants, and quantized or 8-bit
            integer constants).
        input_dtype: Dtype of the first model input.
        output_dtype: Dtype of the first model output.
    """

    kernels: list[Kernel]
    params_count: int
    input_dtype: str
    output_dtype: str


def read_tflite(path: str | Path) -> TfliteWeights:
    """Read the kernels and parameter count of a .tflite file (LiteRT, no delegates).

    Args:
        path: A .tflite file.

    Returns:
        The kernels (each with its stored values, dtype, zero point and scales), the parameter
        count and the IO dtypes.
    """
    mod = compat.require("ai_edge_litert.interpreter")
    kwargs: dict[str, Any] = {"model_path": str(path)}
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None:  # read constants without XNNPACK taking the buffers over
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = mod.Interpreter(**kwargs)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - the documented way to walk the graph
    produced = {int(o): op for op in ops for o in op["outputs"]}
    graph_inputs = {d["index"] for d in interp.get_input_details()}
    consumed = {int(i) for op in ops for i in op["inputs"]}  # excludes scratch tensors

    def constant(idx: int) -> np.ndarray | None:
        if idx < 0 or idx in produced or idx in graph_inputs or idx not in consumed:
            return None
        if idx not in details:
            return None
        try:
            return np.asarray(interp.get_tensor(idx))
        except ValueError:
            return None

    params = 0
    for idx, d in details.items():
        arr = constant(idx)
        if arr is None or arr.size == 0:
            continue
        kind = np.dtype(d["dtype"]).kind
        quantized = len(d.get("quantization_parameters", {}).get("scales", [])) > 0
        if kind == "f" or (kind in "iu" and (quantized or np.dtype(d["dtype"]).itemsize == 1)):
            params += int(arr.size)

    kernels: list[Kernel] = []
    for op in ops:
        pos = TFLITE_KERNEL_OPS.get(op["op_name"])
        if pos is None or len(op["inputs"]) <= pos:
            continue
        idx = int(op["inputs"][pos])
        src = produced.get(idx)
        if src is not None and src["op_name"] == "DEQUANTIZE":
            idx = int(src["inputs"][0])
        arr = constant(idx)
        if arr is None:
            continue
        d = details[idx]
        qp = d.get("quantization_parameters", {})
        scales = np.asarray(qp.get("scales", np.zeros(0)), dtype=np.float32)
        axis = int(qp.get("quantized_dimension", 0))
        zero: np.ndarray | float = 0
        if np.dtype(d["dtype"]).kind in "iu" and scales.size:
            zero = _zero_point_array(arr, qp["zero_points"], axis)
        else:
            scales = np.zeros(0, dtype=np.float32)
        kernels.append(
            Kernel(
                name=d["name"],
                values=arr,
                zero=zero,
                op=op["op_name"],
                key=f"{op['op_name'].lower()}#{op['index']}",
                scales=scales,
                quantized_dimension=axis,
            )
        )
    return TfliteWeights(
        kernels=kernels,
        params_count=params,
        input_dtype=np.dtype(interp.get_input_details()[0]["dtype"]).name,
        output_dtype=np.dtype(interp.get_output_details()[0]["dtype"]).name,
    )


def tflite_kernels(path: str | Path) -> dict[str, Kernel]:
    """The constant conv / dense / matmul kernels of a .tflite file, by ``op#index``.

    Args:
        path: A .tflite file.

    Returns:
        ``{"conv_2d#3": Kernel, ...}``; each :class:`Kernel` has the stored ``values``, its
        ``dtype``, ``zero`` point, ``scales`` and :meth:`Kernel.dequantized`.
    """
    return {k.key: k for k in read_tflite(path).kernels}


def _tflite_weights(path: Path) -> dict[str, Any]:
    read = read_tflite(path)
    return {"params_count": read.params_count, **kernel_stats(read.kernels)}


# -- ONNX ------------------------------------------------------------------------------------
def _onnx_weights(path: Path) -> dict[str, Any]:
    onnx = compat.onnx()
    numpy_helper = compat.require("onnx.numpy_helper")
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    cache: dict[str, np.ndarray] = {}

    def arr(name: str) -> np.ndarray | None:
        if name not in inits:
            return None
        if name not in cache:
            cache[name] = numpy_helper.to_array(inits[name])
        return cache[name]

    producers = {o: n for n in proto.graph.node for o in n.output}
    qparams: set[str] = set()
    for node in proto.graph.node:
        for i in _ONNX_QPARAM_INPUTS.get(node.op_type, ()):
            if i < len(node.input):
                qparams.add(node.input[i])
    params = 0
    for name in inits:
        if name in qparams:
            continue
        a = arr(name)
        if a is None:
            continue
        if a.dtype.kind == "f" or (a.dtype.kind in "iu" and a.dtype.itemsize == 1):
            params += int(a.size)
        elif a.dtype == np.int32 and any(
            n.op_type == "DequantizeLinear" and n.input and n.input[0] == name
            for n in proto.graph.node
        ):
            params += int(a.size)  # quantized biases

    kernels: list[Kernel] = []
    for node in proto.graph.node:
        spec = _ONNX_KERNEL_OPS.get(node.op_type)
        if spec is None or len(node.input) <= spec[0]:
            continue
        wname = node.input[spec[0]]
        zname = node.input[spec[1]] if spec[1] is not None and len(node.input) > spec[1] else ""
        axis = 0
        src = producers.get(wname)
        if src is not None and src.op_type == "DequantizeLinear":
            wname = src.input[0]
            zname = src.input[2] if len(src.input) > 2 else ""
            axis = next((a.i for a in src.attribute if a.name == "axis"), 1)
        w = arr(wname)
        if w is None:
            continue
        zp = arr(zname) if zname else None
        zero = 0 if zp is None else _zero_point_array(w, zp, axis if w.ndim > axis else 0)
        name = node.name or wname
        kernels.append(Kernel(name=name, values=w, zero=zero, op=node.op_type, key=name))
    return {"params_count": params, **kernel_stats(kernels)}


# -- OpenVINO --------------------------------------------------------------------------------
_OV_KERNEL_OPS = {
    "Convolution": 1,
    "GroupConvolution": 1,
    "ConvolutionBackpropData": 1,
    "GroupConvolutionBackpropData": 1,
    "MatMul": 1,
}
# nodes between a stored weight and its op: decompression (Convert, Subtract zero point,
# Multiply scale) and layout changes
_OV_WEIGHT_PATH = {
    "Convert",
    "Subtract",
    "Multiply",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
}


def _ov_constant(node: Any) -> Any | None:
    """The Constant behind ``node`` through Convert nodes, else None."""
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node if node.get_type_name() == "Constant" else None


def _openvino_weights(path: Path) -> dict[str, Any]:
    ov = compat.openvino()
    model = ov.Core().read_model(str(path))
    ops = list(model.get_ordered_ops())
    qparams: set[str] = set()  # scales, zero points and quantization ranges: not parameters
    for op in ops:
        if op.get_type_name() == "FakeQuantize":
            for i in range(1, op.get_input_size()):
                c = _ov_constant(op.input_value(i).get_node())
                if c is not None:
                    qparams.add(c.get_friendly_name())
    kernels: list[Kernel] = []
    for op in ops:
        pos = _OV_KERNEL_OPS.get(op.get_type_name())
        if pos is None or op.get_input_size() <= pos:
            continue
        node = op.input_value(pos).get_node()
        zero: np.ndarray | float = 0
        zp = None
        while node.get_type_name() in _OV_WEIGHT_PATH:
            if node.get_type_name() in ("Subtract", "Multiply") and node.get_input_size() > 1:
                side = _ov_constant(node.input_value(1).get_node())
                if side is not None:
                    qparams.add(side.get_friendly_name())
                    if node.get_type_name() == "Subtract":
                        zp = side
            node = node.input_value(0).get_node()
        if node.get_type_name() != "Constant":
            continue  # a matmul of two activations
        values = np.array(node.get_data())
        if zp is not None:
            zero = np.asarray(zp.get_data()).astype(values.dtype)
        name = op.get_friendly_name()
        kernels.append(Kernel(name=name, values=values, zero=zero, op=op.get_type_name(), key=name))
    params = 0
    for op in ops:
        if op.get_type_name() != "Constant" or op.get_friendly_name() in qparams:
            continue
        dt = np.dtype(op.get_data().dtype)
        if dt.kind == "f" or (dt.kind in "iu" and dt.itemsize == 1):
            params += int(np.prod(op.get_output_shape(0), dtype=np.int64))
    return {"params_count": params, **kernel_stats(kernels)}


# -- TensorFlow ------------------------------------------------------------------------------
def _tf_weights(path: Path, fmt: str) -> dict[str, Any]:
    kernels: list[Kernel] = []
    if fmt in ("keras", "h5") or (path / "keras_metadata.pb").is_file():
        from kfedge.models import load_keras

        model = load_keras(path)
        params = int(model.count_params())
        for w in model.weights:
            if "kernel" in w.name:
                name = w.name.split(":")[0]
                kernels.append(Kernel(name=name, values=np.asarray(w.numpy()), key=name))
        return {"params_count": params, **kernel_stats(kernels)}
    tf = compat.tf()
    loaded = tf.saved_model.load(str(path))
    variables = list(getattr(loaded, "variables", []))
    params = sum(int(np.prod(v.shape)) for v in variables)
    for v in variables:
        if "kernel" in v.name:
            name = v.name.split(":")[0]
            kernels.append(Kernel(name=name, values=np.asarray(v.numpy()), key=name))
    return {"params_count": params, **kernel_stats(kernels)}


def weight_stats(path: str | Path) -> dict[str, Any]:
    """Parameter count, kernel sparsity and unique weights per layer of a model file.

    Args:
        path: A .tflite, .onnx, OpenVINO IR .xml, Keras file or SavedModel directory.

    Returns:
        ``params_count``, ``sparsity`` (fraction of exactly-zero kernel weights),
        ``sparsity_per_layer``, ``unique_weights`` (distinct stored values per kernel) and
        ``kernel_weights`` (number of kernel weights).
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "tflite":
        return _tflite_weights(p)
    if fmt == "onnx":
        return _onnx_weights(p)
    if fmt == "openvino":
        return _openvino_weights(p)
    return _tf_weights(p, fmt)
