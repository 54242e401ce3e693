"""The KServe model that serves a kfedge candidate (.tflite or .onnx) through kfedge's runners.

:class:`EdgeModel` follows KServe's own servers (``python/sklearnserver``): ``load`` opens the
model once, ``preprocess`` turns a V1 or V2 request into checked arrays, ``predict`` runs the
runner off the event loop, and errors become KServe's own exceptions (``InvalidInput`` -> HTTP 400
/ gRPC INVALID_ARGUMENT, ``ModelNotReady`` -> 503) through the one status table,
:data:`kfedge.serving.errors.HTTP_STATUS`.

KServe 0.21 does not check requests against the model's declared inputs; this model does, before
any inference: every input must be present, named as declared, of the declared datatype and shape
(batch dimension free up to ``max_batch``), numeric and finite, and no unknown input or requested
output is accepted. The message of every refusal says what was expected and what was found.

No TensorFlow on this path: TFLite goes through ``ai_edge_litert``, ONNX through ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from kfedge.errors import InvalidInputError, KfedgeError, ModelFormatError
from kfedge.formats import DEPLOYABLE, detect_format
from kfedge.runners import Runner, TensorSpec, load_runner
from kfedge.serving.batching import DynamicBatcher
from kfedge.serving.errors import to_kserve_error
from kfedge.serving.options import DEFAULT_MAX_BATCH  # noqa: F401 - re-exported

log = logging.getLogger("kfedge.serving")

#: Inference workers unless configured otherwise: None = one per CPU this process may use.
DEFAULT_INFER_WORKERS: int | None = None
#: Requests carrying more tensor values than this are checked off the event loop.
INLINE_VALUES = 16 * 1024


def default_workers() -> int:
    """One inference worker per CPU this process may use (affinity and cgroup CPU quota)."""
    from kfedge.cpu import usable_cpus

    return usable_cpus()[0]


#: numpy dtype name -> Open Inference Protocol datatype.
V2_DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
#: Open Inference Protocol datatype -> numpy dtype (little-endian, as the binary extension sends).
NP_DTYPES: dict[str, np.dtype] = {v: np.dtype(k).newbyteorder("<") for k, v in V2_DATATYPES.items()}

# Which kinds of numbers (numpy dtype.kind) JSON data may hold for each datatype family.
_ACCEPTED_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


def v2_datatype(dtype: str) -> str:
    """The Open Inference Protocol datatype (``FP32`` ...) of a numpy dtype name."""
    try:
        return V2_DATATYPES[np.dtype(dtype).name]
    except KeyError as exc:
        raise ModelFormatError(f"tensors of dtype {dtype} cannot be served over V2") from exc


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """V2 model-metadata entry for a tensor: name, datatype, shape (-1 = any)."""
    return {
        "name": spec.name,
        "datatype": v2_datatype(spec.dtype),
        "shape": [-1 if d is None else int(d) for d in spec.shape],
    }


def resolve_model(model_dir: str | Path, download_dir: str | Path | None = None) -> Path:
    """Find the model file to serve in a directory, a file or a storage URI.

    Args:
        model_dir: A candidate directory (``/mnt/models`` in KServe), a model file, or a
            ``s3://`` / ``file://`` URI (fetched with :func:`kfedge.storage.fetch`).
        download_dir: Where remote models are downloaded (default: a new temp directory).

    Returns:
        The path of a .tflite or .onnx file.

    Raises:
        ModelFormatError: The model is not one the server can serve.
        NotFoundError: The path or URI does not exist.
    """
    from kfedge.candidate import model_path
    from kfedge.uris import is_remote, local_path

    text = str(model_dir)
    if is_remote(text):
        from kfedge import storage  # lazily: storage needs minio only for remote URIs

        dest = Path(download_dir) if download_dir else Path(tempfile.mkdtemp(prefix="kfedge-"))
        local = storage.fetch(text, dest)
    else:
        local = local_path(text)
    path = model_path(local)
    fmt = detect_format(path)
    if fmt not in DEPLOYABLE:
        raise ModelFormatError(
            f"the model server serves {_either(DEPLOYABLE)} models; {path} is {fmt} "
            "(convert it with kfedge's optimize step first)"
        )
    return path


@dataclass
class Batch:
    """A checked request: the arrays to run and how to answer.

    Attributes:
        feeds: Input arrays by name, in the model's dtypes.
        protocol: ``v1`` or ``v2`` (gRPC requests are ``v2``).
        request: The V2 request (None for V1).
        outputs: Names of the outputs to return, in order.
    """

    feeds: dict[str, np.ndarray]
    protocol: str
    request: InferRequest | None = None
    outputs: list[str] = field(default_factory=list)


class EdgeModel(Model):
    """A KServe model serving one .tflite or .onnx file with kfedge's runners.

    Args:
        name: Model name on the endpoint paths (``/v1/models/{name}``, ``/v2/models/{name}``).
        model_dir: Candidate directory, model file, or storage URI.
        threads: Inference threads of the runtime (default ``KFEDGE_THREADS`` or all cores).
        providers: ONNX Runtime execution providers in order of preference.
        device: OpenVINO device of an OpenVINO IR model (``CPU``, ``GPU``, ``NPU``).
        provider_options: ONNX Runtime options per provider (the target's
            ``onnx_provider_options``: e.g. TensorRT FP16 and its engine cache).
        delegate: External TFLite delegate library (e.g. ``libedgetpu.so.1``).
        allow_cpu_fallback: When the accelerator asked for is absent, run on the CPU and say
            so (``/v2/models/NAME``); False: refuse to load, so the server never becomes ready.
        max_batch: Largest batch one request may carry.
        infer_workers: Inference workers: threads running inference off the event loop, each
            with its own interpreter (TFLite, OpenVINO: the runner's pool; the ``threads`` are
            split between them); None = one per CPU.
        download_dir: Where a remote model is downloaded.
        max_batch_size: Server-side dynamic batching: concurrent requests are run together,
            up to this many examples (0 or 1 = off; see :mod:`~kfedge.serving.batching`).
        max_batch_wait_ms: How long the oldest queued request waits for others to join
            (0 = only requests that queued while every worker was busy are batched).
    """

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        device: str = "CPU",
        provider_options: dict[str, dict[str, str]] | None = None,
        delegate: str | None = None,
        allow_cpu_fallback: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
        infer_workers: int | None = DEFAULT_INFER_WORKERS,
        download_dir: str | Path | None = None,
        max_batch_size: int = 0,
        max_batch_wait_ms: float = 0.0,
    ) -> None:
        super().__init__(name)
        if max_batch < 1:
            raise InvalidInputError(f"max_batch must be >= 1, got {max_batch}")
        if infer_workers is not None and infer_workers < 1:
            raise InvalidInputError(f"infer_workers must be >= 1, got {infer_workers}")
        if max_batch_size < 0 or max_batch_wait_ms < 0:
            raise InvalidInputError(
                f"max_batch_size and max_batch_wait_ms must be >= 0, got {max_batch_size} and "
                f"{max_batch_wait_ms}"
            )
        self.model_dir = str(model_dir)
        self.threads = threads
        self.providers = providers
        self.device = device
        self.provider_options = provider_options
        self.delegate = delegate
        self.allow_cpu_fallback = allow_cpu_fallback
        self.max_batch = max_batch
        self.infer_workers = infer_workers or default_workers()
        self.download_dir = download_dir
        self.max_batch_size = max_batch_size
        self.max_batch_wait_ms = max_batch_wait_ms
        self.runner: Runner | None = None
        self.path: Path | None = None
        self.digest = ""
        self._executor: ThreadPoolExecutor | None = None
        self.batcher: DynamicBatcher | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self) -> bool:
        """Open the model once; the server is ready when this returns.

        Returns:
            True (the model is ready).
        """
        self.path = resolve_model(self.model_dir, self.download_dir)
        from kfedge.candidate import model_digest

        #: The content hash of what is served (``/v2/models/NAME``'s ``versions``).
        self.digest = model_digest(self.path)
        self.runner = load_runner(
            self.path,
            threads=self.threads,
            providers=self.providers,
            instances=self.infer_workers,
            device=self.device,
            provider_options=self.provider_options,
            delegate=self.delegate,
            allow_cpu_fallback=self.allow_cpu_fallback,
        )
        for spec in [*self.runner.inputs, *self.runner.outputs]:
            v2_datatype(spec.dtype)  # refuse unservable dtypes at load, not per request
        self._executor = ThreadPoolExecutor(
            max_workers=self.infer_workers, thread_name_prefix=f"kfedge-{self.name}"
        )
        if self.max_batch_size > 1:
            self.batcher = DynamicBatcher(
                self.runner.run,
                self._executor,
                self.infer_workers,
                self.max_batch_size,
                self.max_batch_wait_ms / 1000,
            )
        self.ready = True
        desc = self.runner.describe()
        log.info(
            "serving model '%s' from %s: format %s, %d threads, %d inference workers, max batch "
            "%d, dynamic batching %s, inputs %s, outputs %s",
            self.name,
            self.path,
            desc["format"],
            desc["threads"],
            self.infer_workers,
            self.max_batch,
            f"up to {self.max_batch_size} examples, wait {self.max_batch_wait_ms:g} ms"
            if self.batcher
            else "off",
            [tensor_metadata(s) for s in self.runner.inputs],
            [tensor_metadata(s) for s in self.runner.outputs],
        )
        return self.ready

    def stop(self) -> None:
        """Release the runner and the inference threads."""
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def _require_runner(self) -> Runner:
        if not self.ready or self.runner is None:
            raise ModelNotReady(self.name, "The model is not loaded.")
        return self.runner

    # -- metadata -------------------------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the inputs (real names, datatypes, shapes with -1 for the batch)."""
        return [tensor_metadata(s) for s in self._require_runner().inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs."""
        return [tensor_metadata(s) for s in self._require_runner().outputs]

    # -- request handling -----------------------------------------------------------------------
    def validate(self, payload: Any) -> Any:
        """Requests are checked in :meth:`preprocess`; KServe's own check is skipped."""
        return payload

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        """Check a V1 or V2 request against the model's inputs and turn it into arrays.

        A large request is checked in a worker thread, so that health checks keep answering.

        Args:
            payload: A V1 body (dict), a V2 :class:`InferRequest` (REST or gRPC), or a
                :class:`Batch` already checked (the REST routes check off the event loop).
            headers: Request headers (unused).

        Returns:
            The checked :class:`Batch`.

        Raises:
            InvalidInput: The request does not fit the model (HTTP 400).
        """
        if isinstance(payload, Batch):
            return payload
        if _values(payload) > INLINE_VALUES:
            return await anyio.to_thread.run_sync(self.check, payload)
        return self.check(payload)

    def check(self, payload: Any) -> Batch:
        """The check of :meth:`preprocess`, synchronous (callable from any thread).

        Args:
            payload: A V1 body (dict) or a V2 :class:`InferRequest`.

        Returns:
            The checked :class:`Batch`.

        Raises:
            InvalidInput: The request does not fit the model (HTTP 400).
        """
        runner = self._require_runner()
        if isinstance(payload, InferRequest):
            return self._v2_batch(runner, payload)
        if isinstance(payload, dict):
            return self._v1_batch(runner, payload)
        found = "binary data" if isinstance(payload, (bytes, str)) else type(payload).__name__
        raise InvalidInput(
            'a V1 request body must be a JSON object {"instances": [...]} sent as '
            f"application/json; got {found}"
        )

    async def predict(
        self,
        payload: Batch,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Run the batch on the runner in a worker thread and build the answer.

        Args:
            payload: The checked batch from :meth:`preprocess`.
            headers: Request headers (unused).
            response_headers: Response headers (unused).

        Returns:
            ``{"predictions": [...]}`` for V1, an :class:`InferResponse` for V2.
        """
        runner = self._require_runner()
        if self._executor is None:
            raise ModelNotReady(self.name, "The model is not loaded.")
        try:
            if self.batcher is not None:
                results = await self.batcher.run(payload.feeds)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, runner.run, payload.feeds)
        except KfedgeError as exc:
            mapped = to_kserve_error(exc, self.name)  # same answer over REST and gRPC
            if mapped is exc:
                raise
            raise mapped from exc
        if payload.protocol == "v1":
            return self._v1_response(runner, results)
        return self._v2_response(runner, payload, results)

    # -- V1 -------------------------------------------------------------------------------------
    def _v1_batch(self, runner: Runner, body: dict[str, Any]) -> Batch:
        if "instances" not in body:
            raise InvalidInput(
                'a V1 request must be {"instances": [...]} (one entry per example); '
                f"got keys {sorted(body)}"
            )
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput(
                f'"instances" must be a non-empty list, got {_describe_json(instances)}'
            )
        self._check_batch(len(instances))
        names = [s.name for s in runner.inputs]
        if all(isinstance(i, dict) for i in instances):
            columns: dict[str, list[Any]] = {}
            for n, inst in enumerate(instances):
                missing = [k for k in names if k not in inst]
                extra = [k for k in inst if k not in names]
                if missing or extra:
                    raise InvalidInput(
                        f"instance {n}: the model takes inputs {names}; missing {missing}, "
                        f"unexpected {extra}"
                    )
                for k in names:
                    columns.setdefault(k, []).append(inst[k])
        elif any(isinstance(i, dict) for i in instances):
            raise InvalidInput("instances mix objects and arrays; use one form for all")
        elif len(names) != 1:
            raise InvalidInput(
                f"the model has {len(names)} inputs {names}: each instance must be an object "
                "with one entry per input"
            )
        else:
            columns = {names[0]: instances}
        feeds = {spec.name: self._v1_array(spec, columns[spec.name]) for spec in runner.inputs}
        return Batch(feeds=feeds, protocol="v1", outputs=[s.name for s in runner.outputs])

    @staticmethod
    def _v1_array(spec: TensorSpec, rows: list[Any]) -> np.ndarray:
        arr = _numeric_array(rows, spec, f"input '{spec.name}'")
        _check_shape(spec, list(arr.shape), f"input '{spec.name}'")
        return arr

    @staticmethod
    def _v1_response(runner: Runner, results: dict[str, np.ndarray]) -> dict[str, Any]:
        if len(runner.outputs) == 1:
            return {"predictions": results[runner.outputs[0].name].tolist()}
        names = [s.name for s in runner.outputs]
        n = len(results[names[0]])
        return {"predictions": [{k: results[k][i].tolist() for k in names} for i in range(n)]}

    # -- V2 -------------------------------------------------------------------------------------
    def _v2_batch(self, runner: Runner, request: InferRequest) -> Batch:
        specs = {s.name: s for s in runner.inputs}
        given = [i.name for i in request.inputs]
        missing = [k for k in specs if k not in given]
        extra = [k for k in given if k not in specs]
        dupes = sorted({k for k in given if given.count(k) > 1})
        if missing or extra or dupes:
            raise InvalidInput(
                f"the model takes inputs {list(specs)}; missing {missing}, unexpected {extra}"
                + (f", given twice {dupes}" if dupes else "")
            )
        feeds: dict[str, np.ndarray] = {}
        batch = None
        for inp in request.inputs:
            arr = self._v2_array(specs[inp.name], inp)
            if batch is not None and arr.shape[0] != batch:
                raise InvalidInput(
                    f"all inputs must have the same batch size; input '{inp.name}' has "
                    f"{arr.shape[0]}, an earlier one {batch}"
                )
            batch = arr.shape[0]
            feeds[inp.name] = arr
        outputs = [s.name for s in runner.outputs]
        if request.request_outputs:
            wanted = [o.name for o in request.request_outputs]
            unknown = [o for o in wanted if o not in outputs]
            if unknown:
                raise InvalidInput(f"unknown requested outputs {unknown}; the model has {outputs}")
            outputs = wanted
        return Batch(feeds=feeds, protocol="v2", request=request, outputs=outputs)

    def _v2_array(self, spec: TensorSpec, inp: InferInput) -> np.ndarray:
        where = f"input '{spec.name}'"
        want = v2_datatype(spec.dtype)
        if inp.datatype != want:
            raise InvalidInput(f"{where} has datatype {inp.datatype}; the model expects {want}")
        shape = list(inp.shape) if inp.shape is not None else []
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise InvalidInput(
                f"{where}: shape must be a list of non-negative integers, got {shape}"
            )
        _check_shape(spec, shape, where)
        self._check_batch(shape[0])
        count = math.prod(shape)
        raw = getattr(inp, "_raw_data", None)  # gRPC raw_input_contents
        data = inp.data
        if isinstance(data, np.ndarray):  # binary extension over REST (decoded by the server)
            arr = data
        elif raw is not None:
            dt = NP_DTYPES[want]
            if len(raw) != count * dt.itemsize:
                raise InvalidInput(
                    f"{where}: shape {shape} of {want} needs {count * dt.itemsize} bytes of raw "
                    f"data, got {len(raw)}"
                )
            arr = np.frombuffer(raw, dtype=dt)
        else:
            arr = _numeric_array(data, spec, where)
        if arr.size != count:
            raise InvalidInput(f"{where}: shape {shape} needs {count} values, got {arr.size}")
        arr = arr.reshape(shape)
        return arr.astype(np.dtype(spec.dtype), copy=False)

    def _v2_response(
        self, runner: Runner, batch: Batch, results: dict[str, np.ndarray]
    ) -> InferResponse:
        request = batch.request
        assert request is not None  # noqa: S101 - set for every v2 batch
        dtypes = {s.name: s.dtype for s in runner.outputs}
        outputs = []
        for name in batch.outputs:
            arr = np.ascontiguousarray(results[name], dtype=np.dtype(dtypes[name]))
            out = InferOutput(
                name=name, shape=list(arr.shape), datatype=v2_datatype(arr.dtype.name)
            )
            out.set_data_from_numpy(arr, binary_data=False)
            outputs.append(out)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            from_grpc=request.from_grpc,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    # -- shared ---------------------------------------------------------------------------------
    def _check_batch(self, n: int) -> None:
        if n < 1:
            raise InvalidInput("the batch is empty; send at least one example")
        if n > self.max_batch:
            raise InvalidInput(
                f"batch of {n} is over this server's maximum of {self.max_batch}; split the request"
            )


def _values(payload: Any) -> int:
    """Tensor values a request carries, as far as its shapes tell (V1 bodies: unknown, large)."""
    if isinstance(payload, InferRequest):
        total = 0
        for inp in payload.inputs:
            shape = inp.shape or []
            if all(isinstance(d, int) and d >= 0 for d in shape):
                total += math.prod(shape)
        return total
    return INLINE_VALUES + 1 if isinstance(payload, dict) else 0


def _either(names: Any) -> str:
    """``a, b or c``."""
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def _describe_json(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {len(value)}"
    return type(value).__name__


def _check_shape(spec: TensorSpec, shape: list[int], where: str) -> None:
    want = spec.shape
    shown = [-1 if d is None else d for d in want]
    if len(shape) != len(want) or any(
        w is not None and i > 0 and w != g for i, (w, g) in enumerate(zip(want, shape))
    ):
        raise InvalidInput(
            f"{where} expects shape {shown} (batch first, -1 = any), got {list(shape)}"
        )


def _numeric_array(data: Any, spec: TensorSpec, where: str) -> np.ndarray:
    """JSON data -> array, refusing ragged, non-numeric and non-finite data."""
    kind = np.dtype(spec.dtype).kind
    want = v2_datatype(spec.dtype)
    if not isinstance(data, list):
        raise InvalidInput(
            f"{where}: data must be a (nested) list of numbers, got {type(data).__name__}"
        )
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: data is not a rectangular array of numbers ({exc})") from exc
    if arr.dtype.kind not in _ACCEPTED_KINDS.get(kind, kind):
        found = {"U": "strings", "S": "bytes", "O": "mixed or null values", "b": "booleans"}.get(
            arr.dtype.kind, f"{arr.dtype} values"
        )
        raise InvalidInput(f"{where} expects {want} numbers, got {found}")
    if arr.dtype.kind == "f" and kind in "iu":
        raise InvalidInput(f"{where} expects {want} integers, got fractional numbers")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{where} contains NaN or infinite values")
    if kind == "f" and arr.size:
        top = float(np.finfo(np.dtype(spec.dtype)).max)
        if float(arr.max()) > top or float(arr.min()) < -top:  # would become infinite
            raise InvalidInput(f"{where}: values out of the {want} range [-{top:.4g}, {top:.4g}]")
    if kind in "iu" and arr.size:
        info = np.iinfo(np.dtype(spec.dtype))
        if arr.min() < info.min or arr.max() > info.max:
            raise InvalidInput(f"{where}: values out of the {want} range [{info.min}, {info.max}]")
    return arr
