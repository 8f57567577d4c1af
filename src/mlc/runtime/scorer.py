"""The Scorer: one ONNX model, ready to predict, with the engines its runtime plan chose.

`mlc optimize` records a runtime plan beside each optimized version: the ONNX
Runtime session options it measured best and, per batch size, which engine is
fastest (e.g. mlc's compiled tree kernel for small batches, ONNX Runtime for
large ones). The Scorer rebuilds exactly that, so what is served is what was
measured. `predict` is thread-safe: ONNX Runtime sessions may be run from many
threads at once and the tree kernel is read-only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from mlc.errors import (
    InvalidInputError,
    ModelFormatError,
    NotFoundError,
    RecordError,
    UnsupportedModelError,
    UsageError,
)
from mlc.registry.records import NATIVE, ORT, TREES, EngineChoice, RuntimeRecord
from mlc.runtime._slowdown import requested_slowdown, slowed
from mlc.runtime.session import SessionConfig, create_session, default_session_config
from mlc.signature import Signature, TensorSpec
from mlc.targets import HardwareTarget, get_target

if TYPE_CHECKING:
    from mlc.registry import Registry

ModelSource = str | os.PathLike[str] | bytes | onnx.ModelProto
Engine = Callable[[np.ndarray], dict[str, np.ndarray]]

_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

# ONNX Runtime's tensor type names and the numpy dtypes a request is converted to.
_ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(bool)": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class NativeSource:
    """The original model a "native" engine runs: a registry reference, resolved to its artifact file
    (path, format, whether it was registered with --trust) where the Scorer is built. Plain strings,
    so a plan pickles into serve's and score's worker processes, each loading the model itself."""

    ref: str | None = None
    path: str | None = None
    format: str | None = None
    trusted: bool = False

    @classmethod
    def of_version(cls, ref: str, registry: Registry | None = None) -> NativeSource:
        """The registered original `ref` (the optimized version's parent), from `registry` or the default one."""
        from mlc.registry import Registry

        registry = registry or Registry.open()
        mv = registry.get(ref)
        return cls(ref=mv.ref, path=str(registry.artifact_path(mv)), format=mv.format, trusted=mv.source.trusted)

    def resolved(self) -> NativeSource:
        if self.path is not None:
            return self
        if self.ref is None:
            raise UsageError("the runtime plan's native engine names no original model",
                             "optimize the model again, or drop the 'native' engine from the plan")
        return NativeSource.of_version(self.ref)

    def outputs(self) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        """The original model's outputs under the ONNX graph's names, loaded with mlc's safe loader
        (a pickle refused unless it was registered with --trust)."""
        from mlc.convert import native
        from mlc.loading import load_model

        source = self.resolved()
        loaded = load_model(str(source.path), trust=source.trusted, format=source.format)
        model = loaded.model
        classes = getattr(model, "classes_", None)
        if callable(getattr(model, "predict_proba", None)) and isinstance(classes, np.ndarray):
            # One call, not predict and predict_proba (twice the work: a KD-tree KNN's predict alone
            # costs 2x its predict_proba): labels as scikit-learn's predict makes them, the class of
            # the highest probability. The optimizer checks this engine's parity like any other.
            from mlc.convert import LABEL, PROBABILITIES

            proba = model.predict_proba

            def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
                p = np.asarray(proba(x))
                return {LABEL: classes[p.argmax(axis=1)], PROBABILITIES: p}

            return outputs
        return native(loaded).outputs


@dataclass(frozen=True)
class RuntimePlan:
    """How to run a model: session options, and which engine serves which batch sizes."""

    session: SessionConfig
    engines: tuple[EngineChoice, ...] = field(default=(EngineChoice(ORT),))
    native: NativeSource | None = None  # the original model, where an engine is "native"

    @classmethod
    def default(cls, target: HardwareTarget) -> RuntimePlan:
        return cls(session=default_session_config(target.cores, target.device))

    @classmethod
    def from_record(cls, record: RuntimeRecord | None, target: HardwareTarget) -> RuntimePlan:
        """The plan `mlc optimize` recorded (a version's `source.runtime`), for a target: a version
        without one, or a record without a session, gets the target's default session."""
        if record is None:
            return cls.default(target)
        session = (SessionConfig.from_dict(record.session) if record.session
                   else default_session_config(target.cores, target.device))
        return cls(session=session, engines=record.engines,
                   native=NativeSource(ref=record.native) if record.native else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], target: HardwareTarget) -> RuntimePlan:
        """A plan written as JSON (RuntimeRecord's layout), checked as the registry checks it; a
        malformed one is the caller's mistake here, not a damaged registry row."""
        try:
            record = RuntimeRecord.from_dict(data)
        except RecordError as exc:
            raise UsageError(f"malformed runtime plan: {exc.message}",
                             "write it as RuntimePlan.to_dict() does: {'session': {...}, 'engines': [...]}") from None
        return cls.from_record(record, target)

    def to_record(self) -> RuntimeRecord:
        return RuntimeRecord(session=self.session.to_dict(), engines=self.engines,
                             native=self.native.ref if self.native else None)

    @property
    def uses_native(self) -> bool:
        return any(e.engine == NATIVE for e in self.engines)

    def serving(self, threads: int) -> RuntimePlan:
        """This plan as one of several model instances runs it: `threads` threads each, no spinning.

        `mlc serve` and `mlc profile` both run a version through this, so a profile measures the
        sessions serve will build. Spinning threads would keep burning cores between batches that
        the other instances and workers need. A tree kernel that `mlc optimize` found fastest on
        fewer threads keeps its count.
        """
        session = self.session.with_(intra_op_threads=threads,
                                     inter_op_threads=min(self.session.inter_op_threads, threads),
                                     allow_spinning=False)
        engines = tuple(replace(e, n_threads=min(e.n_threads, threads)) if e.n_threads else e for e in self.engines)
        return RuntimePlan(session=session, engines=engines, native=self.native)

    def batch(self, threads: int) -> RuntimePlan:
        """This plan as a batch run (`mlc score`) runs it on chunks of many thousand rows: as `serving`,
        but a tree kernel takes all `threads`. `mlc optimize` picks the kernel's thread count on
        request-sized batches, where threads cost more than they save; a chunk is split among them."""
        plan = self.serving(threads)
        return replace(plan, engines=tuple(replace(e, n_threads=threads) if e.n_threads else e for e in plan.engines))

    def to_dict(self) -> dict[str, Any]:
        """The JSON from_dict reads."""
        return self.to_record().to_dict()


class Scorer:
    """An ONNX model with one (rows, ...) input, predicting through its plan's engines."""

    def __init__(
        self,
        model: ModelSource,
        target: HardwareTarget | str | None = None,
        runtime_plan: Mapping[str, Any] | RuntimeRecord | RuntimePlan | None = None,
        *,
        signature: Signature | None = None,
    ) -> None:
        self.target = target if isinstance(target, HardwareTarget) else get_target(target)
        if isinstance(runtime_plan, RuntimePlan):
            self.plan = runtime_plan
        elif isinstance(runtime_plan, RuntimeRecord):
            self.plan = RuntimePlan.from_record(runtime_plan, self.target)
        elif runtime_plan:
            self.plan = RuntimePlan.from_dict(runtime_plan, self.target)
        else:
            self.plan = RuntimePlan.default(self.target)
        proto, data = _load_model(model)
        self._session = create_session(data, self.plan.session)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"the scorer serves models with one input tensor; this one has {len(inputs)} "
                f"({', '.join(i.name for i in inputs)})")
        outputs = self._session.get_outputs()
        for out in outputs:
            if not out.type.startswith("tensor("):
                raise UnsupportedModelError(
                    f"output {out.name!r} is a {out.type}, not a tensor (a ZipMap output?)",
                    'convert classifiers with options={"zipmap": False}')
        spec = inputs[0]
        if spec.type not in _ORT_DTYPES:
            raise UnsupportedModelError(f"input {spec.name!r} has type {spec.type}, which the scorer does not feed")
        self.input_name: str = spec.name
        self.output_names: tuple[str, ...] = tuple(o.name for o in outputs)
        self.input_dtype: np.dtype = _ORT_DTYPES[spec.type]
        # Fixed sizes of the non-batch dims (None where free), checked on every request.
        self._tail: tuple[int | None, ...] = tuple(d if isinstance(d, int) else None for d in spec.shape[1:])
        self.signature: Signature = signature or Signature(
            inputs=(TensorSpec(spec.name, self.input_dtype.name, (None, *self._tail)),),
            outputs=tuple(TensorSpec(o.name, _ORT_DTYPES.get(o.type, np.dtype(object)).name,
                                     tuple(d if isinstance(d, int) else None for d in o.shape))
                          for o in outputs),
        )
        # The session's C-level run, skipping the Python wrapper's per-call input validation (which
        # `prepare` already did) and output-name list: about 1 µs per call, a sixth of a 1-row call.
        # (`_sess` is onnxruntime's private binding; should it move, the public run does the same job.)
        binding = getattr(self._session, "_sess", None)
        self._sess_run = binding.run if binding is not None else self._session.run
        self._output_list = list(self.output_names)
        # On a GPU, I/O binding copies the input to the device once and each output back once per batch.
        self.on_gpu = any(p in self._session.get_providers() for p in _GPU_PROVIDERS)
        self._ort_call: Engine = self._run_bound if self.on_gpu else self._run_ort
        self.cuda_graphs = False  # whether GPU calls replay captured CUDA graphs (see cuda_graph.py)
        if self.on_gpu and all(isinstance(d, int) for d in self._tail):
            self._ort_call = self._with_cuda_graphs(data)
        self._routes: list[tuple[int | None, str, Engine]] = self._build_routes(proto)
        if (extra := requested_slowdown()) > 0:  # test-only (MLC_TEST_ENGINE_SLOWDOWN): see runtime/_slowdown.py
            self._routes = [(rows, name, slowed(engine, extra)) for rows, name, engine in self._routes]
        # With one engine for every size, predict skips routing.
        self._only: Engine | None = self._routes[0][2] if len(self._routes) == 1 else None

    @classmethod
    def from_registry(cls, ref: str, target: HardwareTarget | str | None = None, *,
                      registry: Registry | None = None) -> Scorer:
        """The scorer of the version a reference serves ("name", "name:3", "name@prod"; a framework
        version serves its optimized child, see Registry.served), with its recorded plan; from the
        default registry (Registry.open()) unless one is given."""
        from mlc.registry import Registry

        registry = registry or Registry.open()
        version = registry.served(ref).version
        hw = target if isinstance(target, HardwareTarget) else get_target(target)
        plan = RuntimePlan.from_record(version.source.runtime, hw)
        if plan.native is not None and plan.native.ref:  # resolved in this registry, not the default one
            plan = replace(plan, native=NativeSource.of_version(plan.native.ref, registry))
        return cls(registry.artifact_path(version), target=hw, runtime_plan=plan, signature=version.signature)

    def _build_routes(self, proto: onnx.ModelProto) -> list[tuple[int | None, str, Engine]]:
        """(max_rows, engine name, callable) in increasing max_rows, ending with an unbounded engine."""
        routes: list[tuple[int | None, str, Engine]] = []
        for choice in self.plan.engines:
            if choice.engine == ORT:
                routes.append((choice.max_rows, ORT, self._ort_call))
                continue
            if choice.engine == NATIVE:
                routes.append((choice.max_rows, NATIVE, self._native_call()))
                continue
            from mlc.trees import compile_tree_ensemble

            threads = choice.n_threads or self.plan.session.intra_op_threads
            kernel = compile_tree_ensemble(proto, n_threads=threads)
            if kernel is None:  # not a tree ensemble it handles: ONNX Runtime serves those rows
                continue
            routes.append((choice.max_rows, TREES, kernel.predict))
        routes.sort(key=lambda r: float("inf") if r[0] is None else r[0])
        if not routes or routes[-1][0] is not None:
            routes.append((None, ORT, self._ort_call))
        return routes

    def _native_call(self) -> Engine:
        """The original model's predict, its outputs in the ONNX graph's dtypes and ranks, so a client
        cannot tell which engine answered a batch."""
        if self.plan.native is None:
            raise UsageError("the runtime plan runs engine 'native' but names no original model",
                             "build the scorer with Scorer.from_registry(ref), or give the plan a NativeSource")
        outputs = self.plan.native.outputs()
        specs = {o.name: (_ORT_DTYPES.get(o.type), len(o.shape)) for o in self._session.get_outputs()}
        names = self._output_list

        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            got = outputs(x)
            out: dict[str, np.ndarray] = {}
            for name in names:
                value = np.asarray(got[name])
                dtype, rank = specs[name]
                if rank == 2 and value.ndim == 1:
                    value = value.reshape(-1, 1)
                out[name] = value.astype(dtype, copy=False) if dtype is not None else value
            return out

        return run

    @property
    def engines(self) -> tuple[tuple[str, int | None], ...]:
        """(engine, max_rows) in the order they are tried; the last one takes any size."""
        return tuple((name, max_rows) for max_rows, name, _ in self._routes)

    def engine_for(self, n_rows: int) -> str:
        """Which engine serves a batch of n_rows."""
        return self._route(n_rows)[1]

    def _route(self, n_rows: int) -> tuple[int | None, str, Engine]:
        for route in self._routes:
            if route[0] is None or n_rows <= route[0]:
                return route
        raise AssertionError("unreachable: the last route is unbounded")  # pragma: no cover

    def _run_ort(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self._output_list, self._sess_run(self._output_list, {self.input_name: x}, None), strict=True))

    def _with_cuda_graphs(self, data: bytes) -> Engine:
        """Replay CUDA graphs where ONNX Runtime can capture this model; else plain I/O binding."""
        from mlc.runtime.cuda_graph import CudaGraphRunner

        try:
            runner = CudaGraphRunner(data, self.plan.session, self.input_name,
                                     tuple(d for d in self._tail if d is not None), self.input_dtype, self._run_bound)
        except Exception:  # ORT refuses capture in many ways; the bound path always works
            return self._run_bound
        self.cuda_graphs = True
        return runner

    def _run_bound(self, x: np.ndarray) -> dict[str, np.ndarray]:
        binding = self._session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        for name in self._output_list:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        return dict(zip(self._output_list, binding.copy_outputs_to_cpu(), strict=True))

    def prepare(self, x: Any) -> np.ndarray:
        """x as the model's input: its dtype, C-contiguous, with the right shape; else InvalidInputError.

        Float models take any numeric or bool input, cast; other dtypes must cast safely.
        """
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        shape = arr.shape
        if len(shape) != 1 + len(self._tail) or not (
            shape[1:] == self._tail  # the common case, every dim fixed: one tuple comparison
            or all(want is None or got == want for got, want in zip(shape[1:], self._tail, strict=True))
        ):
            want = ", ".join(("rows", *("?" if d is None else str(d) for d in self._tail)))
            raise InvalidInputError(
                f"{self.input_name} takes ({want}) arrays; got shape {arr.shape}",
                "pass one row as x.reshape(1, -1)" if arr.ndim == 1 else None)
        if shape[0] == 0:
            raise InvalidInputError("the request has no rows")
        if arr.dtype != self.input_dtype:
            kind_ok = self.input_dtype.kind == "f" and arr.dtype.kind in "biuf"
            if not kind_ok and not np.can_cast(arr.dtype, self.input_dtype, "safe"):
                raise InvalidInputError(f"{self.input_name} takes {self.input_dtype} values; got {arr.dtype}")
            return np.ascontiguousarray(arr, dtype=self.input_dtype)
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)

    def predict(self, x: Any) -> dict[str, np.ndarray]:
        """Every output of the model for the rows of x, by output name."""
        # Fast path for what the batcher and the server hand over: already the right array.
        if (type(x) is np.ndarray and x.dtype == self.input_dtype and x.shape[1:] == self._tail
                and x.shape[0] and x.flags.c_contiguous):
            arr = x
        else:
            arr = self.prepare(x)
        if self._only is not None:
            return self._only(arr)
        return self._route(arr.shape[0])[2](arr)

    def warmup(self) -> None:
        """Run every engine at the target's batch sizes and at its own limit, so that lazy set-up
        (ORT's memory arena growth, numba's cache loads) is not paid by the first requests."""
        if any(d is None for d in self._tail):
            return  # free non-batch dims: no shape to invent
        limits = {max_rows for max_rows, _, _ in self._routes if max_rows is not None}
        for rows in sorted({1, *self.target.batch_sizes, *limits}):
            self.predict(np.zeros((rows, *self._tail), dtype=self.input_dtype))


def _load_model(model: ModelSource) -> tuple[onnx.ModelProto, bytes]:
    """The model parsed (checked to be ONNX, read by the tree kernel) and as bytes (for ORT);
    bytes given are not serialized again. A file is loaded with its external data, if any."""
    if isinstance(model, onnx.ModelProto):
        return model, model.SerializeToString()
    if isinstance(model, bytes | bytearray):
        data = bytes(model)
        try:
            return onnx.load_model_from_string(data), data
        except DecodeError as exc:
            raise ModelFormatError(f"the bytes given are not an ONNX model: {exc}") from exc
    path = Path(model)
    if not path.is_file():
        raise NotFoundError(f"model file {path} does not exist")
    try:
        proto = onnx.load_model(str(path))
        return proto, proto.SerializeToString()
    except DecodeError as exc:
        raise ModelFormatError(f"{path} is not a readable ONNX model: {exc}") from exc
