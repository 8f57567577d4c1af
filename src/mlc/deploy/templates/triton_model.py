"""Triton Python-backend model written by `mlc package --format triton`: runs mlc's Scorer.

Used where the version's runtime plan routes batches to an engine Triton's ONNX Runtime backend
does not have (mlc's tree kernel). Triton's dynamic batcher hands several requests to one
`execute`; their rows are scored in one call, as `mlc serve`'s batcher does, and split back.
Needs mlc (with its compiled extension) installed in Triton's Python environment.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # provided by Triton

from mlc.runtime.scorer import RuntimePlan, Scorer
from mlc.targets import get_target


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        here = Path(args["model_repository"]) / args["model_version"]
        plan = json.loads((here / "mlc_plan.json").read_text())
        model = (here / "model.onnx").read_bytes()
        if hashlib.sha256(model).hexdigest() != plan["digest"]:
            raise pb_utils.TritonModelException(
                f"{here / 'model.onnx'} does not match the digest of {plan['ref']}: re-export the package")
        target = get_target(plan["target"])
        runtime = RuntimePlan.from_dict(plan["runtime"] or {}, target).serving(int(plan["threads"]))
        self.scorer = Scorer(model, target=target, runtime_plan=runtime)
        self.input_name: str = plan["input"]
        self.output_names: list[str] = plan["outputs"]

    def execute(self, requests: list[Any]) -> list[Any]:
        batches = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        outputs = self.scorer.predict(np.concatenate(batches) if len(batches) > 1 else batches[0])
        responses, start = [], 0
        for batch in batches:
            stop = start + len(batch)
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(outputs[name][start:stop]))
                       for name in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses
