"""The protocol's operations over loaded models, independent of the HTTP layer.

Every v2 endpoint is one method here taking plain values and returning a JSON-able document
(or response bytes for inference); failures are mlc errors that carry their own HTTP status,
so the transport only routes and frames. Each served version owns a Scorer and a
DynamicBatcher; unversioned requests for a name go through its traffic split.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mlc import __version__
from mlc.errors import InvalidInputError, MlcError, NotFoundError, QueueFullError
from mlc.registry import Registry
from mlc.runtime.batcher import DynamicBatcher
from mlc.runtime.scorer import RuntimePlan, Scorer
from mlc.serve.classification import classify
from mlc.serve.codec import InferRequest, datatype_of, decode_request, encode_response
from mlc.serve.exposition import prometheus_text, triton_model_stats
from mlc.serve.metrics import MetricsBoard, Slot, VersionMeter
from mlc.serve.plan import ServedVersion, ServePlan
from mlc.serve.split import TrafficSplit

if TYPE_CHECKING:
    from mlc.monitor.collect import Collector
    from mlc.serve.shadow import Shadow

PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data", "classification", "model_configuration", "statistics")
# The batcher hands each request its own rows of every output; stamping each batch's start
# time as one more output row-wise tells every request exactly how long it queued.
_STARTED = "__mlc_batch_started_ns"
_INLINE_BELOW_NS = 50_000  # see ServedModel.measure_inline
Encoded = TypeVar("Encoded")  # a transport's response: REST's body bytes, gRPC's message


def _dims(shape: Iterable[Any]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


class _TimedScorer:
    """The Scorer as the batcher sees it: each batch is timed and stamped with its start time."""

    def __init__(self, scorer: Scorer, meter: VersionMeter) -> None:
        self.scorer = scorer
        self.meter = meter

    def prepare(self, x: Any) -> np.ndarray:
        return self.scorer.prepare(x)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter_ns()
        outputs = dict(self.scorer.predict(x))
        self.meter.batch(x.shape[0], time.perf_counter_ns() - started)
        outputs[_STARTED] = np.full(x.shape[0], started, dtype=np.int64)
        return outputs


class ServedModel:
    """One loaded version: scorer, batcher, counters, and the metadata clients ask for."""

    def __init__(self, spec: ServedVersion, scorer: Scorer, meter: VersionMeter, device: str) -> None:
        self.spec = spec
        self.name, self.version = spec.name, spec.version
        self.scorer = scorer
        self.meter = meter
        self.device = device
        self.timed = _TimedScorer(scorer, meter)
        self.inline = False  # see measure_inline
        self.batcher = DynamicBatcher(self.timed, **spec.layout.batcher_options())
        self.input_datatype = datatype_of(scorer.input_dtype)
        self.active = 0  # requests that chose this version and are not answered: a retired one closes at 0

    def tensor_metadata(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        sig = self.scorer.signature
        inputs = [{"name": s.name, "datatype": datatype_of(s.dtype), "shape": _dims(s.shape)} for s in sig.inputs]
        outputs = [{"name": s.name, "datatype": datatype_of(s.dtype), "shape": _dims(s.shape)} for s in sig.outputs]
        return inputs, outputs

    def input_array(self, request: InferRequest, max_rows: int) -> np.ndarray:
        """The request's one input tensor, checked against the model's name, datatype and rows."""
        name = self.scorer.input_name
        if set(request.inputs) != {name}:
            got = ", ".join(repr(n) for n in request.inputs)
            raise InvalidInputError(f"model {self.name} takes one input named {name!r}; the request has {got}")
        x = request.inputs[name]
        datatype = datatype_of(x.dtype)
        if datatype != self.input_datatype:
            raise InvalidInputError(f"input {name!r} of model {self.name} is {self.input_datatype}, not {datatype}")
        if x.ndim == 0:
            raise InvalidInputError(f"input {name!r} has shape []: a scalar is not a batch of rows",
                                    "give it a row dimension first: shape [rows, ...]")
        if x.shape[0] == 0:
            raise InvalidInputError(f"input {name!r} has no rows (shape {list(x.shape)})", "send at least one row")
        if 0 in x.shape[1:]:
            row = _dims(self.scorer.signature.inputs[0].shape[1:])
            raise InvalidInputError(f"input {name!r} has an empty dimension (shape {list(x.shape)}): its rows "
                                    "hold no values", f"model {self.name}'s rows have shape {row}")
        # A request the queue can never hold would be refused as "full, retry later" forever.
        limit = min(max_rows, self.spec.layout.max_queue_rows)
        if x.shape[0] > limit:
            raise InvalidInputError(f"the request has {x.shape[0]} rows; this server takes at most {limit}",
                                    "split it into several requests")
        return x

    def classified(self, outputs: dict[str, np.ndarray], request: InferRequest) -> dict[str, np.ndarray]:
        """The outputs, with those the request asked classification of replaced by their top classes."""
        ranked = [o for o in request.outputs or () if o.classification and o.name in outputs]
        if not ranked:
            return outputs
        classes = self.spec.classes
        return {**outputs, **{o.name: classify(o.name, outputs[o.name], o.classification, classes) for o in ranked}}

    def measure_inline(self) -> None:
        """Let a lone request skip the batcher when the model is faster than the hand-off to it.

        Handing a request to a batcher thread and its answer back to the event loop costs about
        0.1 ms of thread wake-ups; a small forest answers one row in a fraction of that. When a
        request is the only one this worker is handling and no queue delay is configured, its
        batch would hold it alone anyway, so running it on the event loop gives the same answer
        sooner. As soon as requests overlap they go through the batcher, which then wins by
        batching and by running the model beside the event loop (benchmarks/results/serve_*.md).
        """
        tail = self.scorer.signature.inputs[0].shape[1:]
        fixed = tuple(dim for dim in tail if isinstance(dim, int))  # None or a symbolic name: a free dimension
        if self.spec.layout.max_queue_delay_us or len(fixed) != len(tail):
            return
        row = np.zeros((1, *fixed), dtype=self.scorer.input_dtype)
        times = []
        for _ in range(15):
            started = time.perf_counter_ns()
            self.scorer.predict(row)
            times.append(time.perf_counter_ns() - started)
        self.inline = sorted(times)[len(times) // 2] < _INLINE_BELOW_NS

    async def run(self, x: np.ndarray, alone: bool) -> tuple[dict[str, np.ndarray], int, int]:
        """Outputs for x's rows, with the ns spent queued and running; big requests go in batcher-sized chunks.

        alone: no other request is in progress in this worker (see measure_inline).
        """
        step = self.spec.layout.max_batch_size
        rows = x.shape[0]
        if alone and self.inline and rows <= step:
            # Metered as _TimedScorer meters a batch, without the start stamp only batched requests need.
            started = time.perf_counter_ns()
            x = self.scorer.prepare(x)
            predicting = time.perf_counter_ns()
            outputs = self.scorer.predict(x)
            done = time.perf_counter_ns()
            self.meter.batch(rows, done - predicting)
            return outputs, 0, done - started
        submitted = time.perf_counter_ns()
        self.meter.pending(rows)
        try:
            futures: list[asyncio.Future[dict[str, np.ndarray]]] = []
            try:
                for start in range(0, rows, step):
                    futures.append(self.batcher.submit_async(x[start:start + step]))
            except MlcError:
                for future in futures:
                    future.cancel()
                raise
            parts = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        finally:
            self.meter.pending(-rows)
        done = time.perf_counter_ns()
        started = int(parts[0][_STARTED][0])
        parts = [{k: v for k, v in part.items() if k != _STARTED} for part in parts]
        outputs = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return outputs, started - submitted, done - started


class DataPlane:
    """The v2 operations over every version this worker serves."""

    def __init__(self, plan: ServePlan, models: dict[tuple[str, int], ServedModel], board: MetricsBoard) -> None:
        self.plan = plan
        self.models = models
        self.board = board
        self.splits = {name: TrafficSplit(shares) for name, shares in plan.routes.items()}
        self._index()
        self.ready = True
        self.collector: Collector | None = None  # mlc serve --collect: see DataPlane.load
        self.shadow: Shadow | None = None  # mlc serve --shadow: see DataPlane.load
        self.active_requests = 0  # requests (both transports) begun and not answered, kept by each transport

    def _index(self) -> None:
        """The lookups derived from models and splits; rebuilt whole on each swap (see swap)."""
        by_name: dict[str, tuple[ServedModel, ...]] = {}
        for (name, _), model in self.models.items():
            by_name[name] = (*by_name.get(name, ()), model)
        self._by_name = by_name
        self._served = ", ".join(sorted(by_name))

    @staticmethod
    def load_version(spec: ServedVersion, plan: ServePlan, board: MetricsBoard,
                     registry: Registry | None = None) -> ServedModel:
        """One version's scorer, built and warmed with the threads its layout gives each session
        (blocking: a running server calls it in a thread, beside the event loop)."""
        registry = registry or Registry.open()
        path = registry.artifact_path(f"{spec.name}:{spec.version}")
        target = replace(plan.target, cores=spec.layout.threads)
        runtime = RuntimePlan.from_record(spec.runtime, target).serving(spec.layout.threads)
        scorer = Scorer(path, target=target, runtime_plan=runtime)
        scorer.warmup()
        model = ServedModel(spec, scorer, board.meter(spec.name, spec.version), plan.target.device)
        model.measure_inline()
        return model

    def swap(self, name: str, shares: dict[int, float], added: dict[tuple[str, int], ServedModel],
             keep: frozenset[tuple[str, int]] = frozenset()) -> list[ServedModel]:
        """Route NAME's unversioned requests by `shares` from now on, with `added` versions served.

        Called on the event loop, and with no await inside, so every request sees either the
        old routing or the new one, never a mix. Returns the versions of NAME now out of every
        route (and not in `keep`): requests that already chose one finish on it; the caller closes
        it once its `active` count is 0.
        """
        models = {**self.models, **added}
        retired = [m for key, m in models.items()
                   if key[0] == name and key[1] not in shares and key not in keep]
        for model in retired:
            del models[(model.name, model.version)]
        self.models = models
        self.splits = {**self.splits, name: TrafficSplit(shares)}
        self._index()
        return retired

    @classmethod
    def load(cls, plan: ServePlan, board: MetricsBoard) -> DataPlane:
        """Build and warm every version's scorer with the threads its plan gives each session."""
        registry = Registry.open()
        models = {(spec.name, spec.version): cls.load_version(spec, plan, board, registry) for spec in plan.versions}
        plane = cls(plan, models, board)
        if plan.collect is not None:
            from mlc.monitor.serving import start_collector

            plane.collector = start_collector(plan.collect, models, board.directory)
        if plan.shadow is not None:
            from mlc.serve.shadow import Shadow, ShadowCounters

            candidate = cls.load_version(plan.shadow.version, plan, board, registry)
            plane.shadow = Shadow(plan.shadow.settings, candidate, ShadowCounters(board.directory))
        return plane

    # -- lookup ------------------------------------------------------------------------------

    def _versions_of(self, name: str) -> tuple[ServedModel, ...]:
        found = self._by_name.get(name)
        if not found:
            raise NotFoundError(f"model {name!r} is not served here", f"served models: {self._served}")
        return found

    def get(self, name: str, version: str | None) -> ServedModel:
        """The version a request names, else the one the traffic split draws for this request."""
        candidates = self._versions_of(name)
        if version is None:
            return self.models[(name, self.splits[name].choose())]
        for model in candidates:
            if str(model.version) == version:
                return model
        have = ", ".join(str(m.version) for m in candidates)
        raise NotFoundError(f"version {version!r} of model {name!r} is not served here", f"served versions: {have}")

    def _default(self, name: str) -> ServedModel:
        """The version metadata describes when none is named: the one with the largest share."""
        self._versions_of(name)
        shares = self.splits[name].shares
        return self.models[(name, max(shares, key=lambda v: (shares[v], v)))]

    def _selected(self, name: str, version: str | None) -> tuple[ServedModel, ...]:
        return self._versions_of(name) if version is None else (self.get(name, version),)

    # -- metadata ----------------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mlc", "version": __version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        model = self._default(name) if version is None else self.get(name, version)
        inputs, outputs = model.tensor_metadata()
        versions = [str(m.version) for m in self._versions_of(name)] if version is None else [version]
        return {"name": name, "versions": versions, "platform": PLATFORM, "inputs": inputs, "outputs": outputs}

    def model_ready(self, name: str, version: str | None) -> bool:
        self._selected(name, version)
        return self.ready

    def model_config(self, name: str, version: str | None) -> dict[str, Any]:
        """Triton's model configuration, as perf_analyzer reads it before it sends any request.

        With max_batch_size > 0 Triton's dims leave out the batch dimension; a rank-1 output
        such as a label becomes dims [1] reshaped to [].
        """
        model = self._default(name) if version is None else self.get(name, version)
        layout = model.spec.layout

        def tensors(specs: Iterable[Any]) -> list[dict[str, Any]]:
            out = []
            for spec in specs:
                dims = _dims(spec.shape[1:])
                entry: dict[str, Any] = {"name": spec.name, "data_type": f"TYPE_{datatype_of(spec.dtype)}",
                                         "dims": dims or [1]}
                if not dims:
                    entry["reshape"] = {"shape": []}
                out.append(entry)
            return out

        sig = model.scorer.signature
        return {
            "name": name,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "version_policy": {"specific": {"versions": [str(m.version) for m in self._versions_of(name)]}},
            "max_batch_size": layout.max_batch_size,
            "input": [{**t, "format": "FORMAT_NONE"} for t in tensors(sig.inputs)],
            "output": tensors(sig.outputs),
            "dynamic_batching": {"preferred_batch_size": list(layout.preferred_batch_sizes),
                                 "max_queue_delay_microseconds": layout.max_queue_delay_us},
            "instance_group": [{"name": f"{name}_0", "count": layout.instances,
                                "kind": "KIND_GPU" if model.device == "gpu" else "KIND_CPU"}],
            # Beyond Triton's fields, the rest of the layout, so `mlc profile --url` reports what it measured.
            "parameters": {"mlc_batch_settings_from": {"string_value": model.spec.layout_from},
                           "mlc_workers": {"string_value": str(layout.workers)},
                           "mlc_intra_op_threads": {"string_value": str(layout.threads)}},
        }

    def model_stats(self, name: str | None, version: str | None) -> dict[str, Any]:
        chosen = tuple(self.models.values()) if name is None else self._selected(name, version)
        keys = [(m.name, m.version) for m in chosen]
        return triton_model_stats(self.board.snapshot(), self.board.current_layout(), keys)

    def repository_index(self) -> list[dict[str, Any]]:
        return [{"name": m.name, "version": str(m.version), "state": "READY" if self.ready else "UNAVAILABLE"}
                for m in self.models.values()]

    def metrics_text(self) -> str:
        text = prometheus_text(self.board.snapshot(), self.board.current_layout())
        if self.collector is not None:
            text += self.collector.prometheus()
        if self.shadow is not None:
            text += self.shadow.prometheus()
        return text

    # -- inference ---------------------------------------------------------------------------

    async def infer(self, name: str, version: str | None, body: bytes, json_length: int | None,
                    arrived_ns: int) -> tuple[bytes, int | None]:
        """One REST request: its body decoded, and the response body (with the JSON header's length
        when binary outputs follow it)."""
        return await self.infer_with(
            name, version, lambda: decode_request(body, json_length),
            lambda model, request, outputs: encode_response(name, str(model.version), outputs, request), arrived_ns)

    async def infer_with(self, name: str, version: str | None, decode: Callable[[], InferRequest],
                         encode: Callable[[ServedModel, InferRequest, dict[str, np.ndarray]], Encoded],
                         arrived_ns: int) -> Encoded:
        """Decode, batch, run and encode one request of any transport; counts it as a success or by
        failure kind. `encode` gets the outputs after classification; its failures count too."""
        model = self.get(name, version)
        meter = model.meter
        model.active += 1
        try:
            request = decode()
            x = model.input_array(request, self.plan.max_request_rows)
            decoded = time.perf_counter_ns()
            outputs, queue_ns, infer_ns = await model.run(x, alone=await self._alone() if model.inline else False)
            inferred = time.perf_counter_ns()
            payload = encode(model, request, model.classified(outputs, request))
        except QueueFullError:
            meter.failure(Slot.QUEUE_FULL, time.perf_counter_ns() - arrived_ns)
            raise
        except MlcError as exc:
            meter.failure(Slot.CLIENT_ERROR if exc.http_status < 500 else Slot.SERVER_ERROR,
                          time.perf_counter_ns() - arrived_ns)
            raise
        except Exception:
            meter.failure(Slot.SERVER_ERROR, time.perf_counter_ns() - arrived_ns)
            raise
        finally:
            model.active -= 1
        done = time.perf_counter_ns()
        meter.success(done - arrived_ns, x.shape[0], decoded - arrived_ns, queue_ns, infer_ns, done - inferred)
        if self.collector is not None:  # a reference on a queue; the writer thread does the rest
            arm = model.version if version is None else None
            self.collector.offer(model.name, model.version, arm, request.request_id, x, outputs)
        if self.shadow is not None:  # a task of its own, after this request's answer is ready
            self.shadow.offer(model.name, x, outputs)
        return payload

    async def _alone(self) -> bool:
        """Is this the only request in progress? Two turns of the event loop first let requests
        that arrived meanwhile begin (their sockets are read in one turn, their tasks start in the
        next), so overlapping requests see each other and go to the batcher together."""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return self.active_requests <= 1

    def close(self) -> None:
        """Refuse new work and let every batcher finish what it holds."""
        self.ready = False
        for model in self.models.values():
            model.batcher.close()
        if self.shadow is not None:
            self.shadow.close()
        if self.collector is not None:  # after the batchers: every answered request has been offered
            self.collector.close()
        self.board.close()
