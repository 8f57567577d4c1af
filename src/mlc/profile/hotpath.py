"""A pyinstrument profile of the scoring hot path, for --pyinstrument.

pyinstrument samples the thread it was started on, so the hot path is driven here on one
thread: the recommended batch of rows through Scorer.predict (input checks, engine routing,
the ONNX Runtime or tree-kernel call, output dict), as a batcher worker runs it. Time spent
in HTTP parsing or queueing is not in it; the load figures cover those.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mlc.errors import MissingDependencyError
from mlc.profile.loadgen_inprocess import InProcessLoad
from mlc.runtime.scorer import RuntimePlan
from mlc.serve.layout import ServingLayout
from mlc.targets import HardwareTarget

_SECONDS = 1.5


def profile_hot_path(model_path: Path, target: HardwareTarget, plan: RuntimePlan, config: ServingLayout) -> str:
    """pyinstrument's HTML for Scorer.predict on batches of config.max_batch_size rows."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise MissingDependencyError("pyinstrument", "profile", "--pyinstrument") from None
    load = InProcessLoad(model_path, target, plan, poisson=False, duration_s=1.0, warmup_s=0.0, slo_ms=1.0)
    scorer = load.scorer(config.threads)
    shape = tuple(int(d) for d in scorer.signature.inputs[0].shape[1:] if isinstance(d, int))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((config.max_batch_size, *shape)).astype(scorer.input_dtype)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    deadline = time.perf_counter() + _SECONDS
    while time.perf_counter() < deadline:
        scorer.predict(x)
    profiler.stop()
    return profiler.output_html()
