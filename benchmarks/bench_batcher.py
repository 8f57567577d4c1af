"""Does the dynamic batcher pay? 1-row requests from 64 concurrent clients, batched vs not.

    python benchmarks/bench_batcher.py                         # -> results/batcher.json, results/batcher.md
    python benchmarks/bench_batcher.py --requests 20000 --repeats 9

Models (fixed seeds, float32 features, skl2onnx without ZipMap, ONNX Runtime with ONE intra-op
thread): a RandomForestClassifier (100 trees, depth 10, 30 features) and a LogisticRegression
(50 features); on request (--models forest-1000), the same forest with 1000 trees, whose row
costs ORT about what the issue's scale assumes for the 100-tree one. 64 clients send one-row
requests, closed loop, in two set-ups:
- threads: 64 Python threads; direct = each calls Scorer.predict (ORT sessions are
  thread-safe), batched = each calls DynamicBatcher.submit(row).result();
- asyncio (how a server drives the core): 64 tasks on one event loop; direct = each awaits
  Scorer.predict in the loop's default thread pool, batched = each awaits submit_async(row);
  also recorded: asyncio.wrap_future(submit(row)), which hands back each answer separately.
Throughput is requests per second of wall time from the start to the last answer. Every answer
is checked against one batch predict of all rows, beside its timing: a fast wrong answer is not
a result. The batcher's own cost is measured with a no-op model (returns its input): one thread
submits windows of requests and waits for them, so the figure is the batcher's work per request
(wall and process CPU time), not thread wake-ups; the same no-op batcher driven by 64 threads
gives the ceiling of the threads set-up, and a bare hand-off (each thread queues a locked lock
that one server thread releases: no model, no batcher, no numpy) gives the ceiling of any
batcher driven by 64 Python threads on this machine; and the round trip of two threads that wake
each other through locks gives the price of one wake-up, which every request of the threads set-up
pays once, batched or not. Scenarios are interleaved and repeated; figures are medians. The
process freezes its start-up objects out of the garbage collector (gc.freeze), as a server should
after loading its models. The machine is shared: the JSON records its CPUs and
load average. Targets: batched >= 3x direct on the forest, >= 1x on the regression; batcher cost
<= 10 us CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS = 64
TARGETS = {"forest": 3.0, "logreg": 1.0, "forest-1000": 3.0}  # batched / direct throughput
MODELS = ("forest", "logreg")  # the pair; forest-1000 (--models) is ten times the forest
COST_TARGET_US = 10.0
Outputs = dict[str, np.ndarray]


def build_models(names: tuple[str, ...] = MODELS) -> dict[str, tuple[Any, np.ndarray]]:
    """name -> (ONNX model, float32 rows to send)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    specs = {
        "forest": (lambda: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1), 30),
        "logreg": (lambda: LogisticRegression(max_iter=1000), 50),
        "forest-1000": (lambda: RandomForestClassifier(n_estimators=1000, max_depth=10, random_state=0), 30),
    }
    models = {}
    for name in names:
        make, n_features = specs[name]
        X, y = make_classification(n_samples=3000, n_features=n_features, n_informative=10, random_state=0)
        X = X.astype(np.float32)
        estimator = make().fit(X, y)
        models[name] = (to_onnx(estimator, X[:1], options={"zipmap": False}), X)
    return models


def threads_closed_loop(call: Callable[[np.ndarray], Outputs], rows: list[np.ndarray]) -> tuple[float, list]:
    """Requests/s of CLIENTS threads, each sending its share of rows one at a time; and the answers."""
    answers: list[Any] = [None] * len(rows)
    barrier = threading.Barrier(CLIENTS + 1)

    def client(first: int) -> None:
        barrier.wait()
        for i in range(first, len(rows), CLIENTS):
            answers[i] = call(rows[i])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return len(rows) / (time.perf_counter() - start), answers


def asyncio_closed_loop(call: Callable[[np.ndarray], Awaitable[Outputs]], rows: list[np.ndarray]) -> tuple[float, list]:
    """Requests/s of CLIENTS tasks on one event loop, each awaiting its share of rows one at a time."""
    answers: list[Any] = [None] * len(rows)

    async def client(first: int) -> None:
        for i in range(first, len(rows), CLIENTS):
            answers[i] = await call(rows[i])

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        return time.perf_counter() - start

    return len(rows) / asyncio.run(main()), answers


def same_output(answers: list[Outputs], reference: Outputs) -> bool:
    got = {name: np.concatenate([a[name] for a in answers]) for name in reference}
    return bool(np.array_equal(got["label"], reference["label"])
                and np.allclose(got["probabilities"], reference["probabilities"], rtol=1e-5, atol=1e-6))


def scenarios(scorer: Any, batcher: Any) -> dict[str, Callable[[list[np.ndarray]], tuple[float, list]]]:
    async def in_pool(x: np.ndarray) -> Outputs:
        return await asyncio.get_running_loop().run_in_executor(None, scorer.predict, x)

    return {
        "threads/direct": lambda rows: threads_closed_loop(scorer.predict, rows),
        "threads/batched": lambda rows: threads_closed_loop(lambda x: batcher.submit(x).result(), rows),
        "asyncio/direct": lambda rows: asyncio_closed_loop(in_pool, rows),
        "asyncio/batched": lambda rows: asyncio_closed_loop(batcher.submit_async, rows),
        "asyncio/wrap_future": lambda rows: asyncio_closed_loop(lambda x: asyncio.wrap_future(batcher.submit(x)), rows),
    }


def batcher_cost(n_requests: int, window: int = 1024) -> tuple[float, float]:
    """(wall us, CPU us) per request of the batcher around a no-op model, one submitting thread."""
    from mlc.runtime.batcher import DynamicBatcher

    rows = [np.full((1, 30), i, np.float32) for i in range(window)]
    with DynamicBatcher(lambda x: {"x": x}, max_batch_size=64, max_queue_delay_us=500,
                        max_queue_rows=window) as batcher:
        for f in [batcher.submit(r) for r in rows]:  # warm-up
            f.result()
        rounds = max(1, n_requests // window)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            futures = [batcher.submit(r) for r in rows]
            for f in futures:
                f.result()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        answers = [f.result()["x"] for f in futures]
    if not all(np.array_equal(a, r) for a, r in zip(answers, rows, strict=True)):
        raise SystemExit("the no-op batcher returned rows that are not the requests' own")
    return wall / (rounds * window) * 1e6, cpu / (rounds * window) * 1e6


def noop_threads_ceiling(n_requests: int) -> float:
    """Requests/s of the threads set-up through a batcher whose model does nothing."""
    from mlc.runtime.batcher import DynamicBatcher

    rows = [np.full((1, 30), i, np.float32) for i in range(n_requests)]
    with DynamicBatcher(lambda x: {"x": x}) as batcher:
        rate, answers = threads_closed_loop(lambda x: batcher.submit(x).result(), rows)
    if not all(np.array_equal(a["x"], r) for a, r in zip(answers, rows, strict=True)):
        raise SystemExit("the no-op batcher returned rows that are not the requests' own")
    return rate


def batch_gain(scorer: Any, X: np.ndarray, batch: int) -> dict[str, float]:
    """The model's time per row alone and in batches of `batch` rows, on distinct rows, one
    thread: their ratio is the most that batching can gain on this model, with free queues,
    hand-offs and wake-ups (the issue's "batching can at best gain ~6x there")."""
    import itertools

    from mlc.timing import measure

    ones = itertools.cycle([X[i:i + 1] for i in range(256)])
    fulls = itertools.cycle([X[i:i + batch] for i in range(0, len(X) - batch + 1, batch)])
    lat = measure({"one": lambda: scorer.predict(next(ones)), "batch": lambda: scorer.predict(next(fulls))},
                  budget_s=2.0)
    one_us, batch_us = lat["one"].median_us, lat["batch"].median_us / batch
    return {"row_us_alone": one_us, "row_us_batched": batch_us, "gain": one_us / batch_us}


def bare_handoff_ceiling(n_requests: int) -> float:
    """Requests/s of CLIENTS threads that each hand a locked lock to one server thread, which
    releases whole queues of them: the least work a batcher can do per request with threads."""
    import _thread
    from collections import deque

    queue: deque[Any] = deque()
    cond = threading.Condition(threading.Lock())
    stop = False

    def server() -> None:
        while True:
            with cond:
                while not queue and not stop:
                    cond.wait()
                if stop and not queue:
                    return
                waiting = list(queue)
                queue.clear()
            for lock in waiting:
                lock.release()

    def call(_x: np.ndarray) -> None:
        lock = _thread.allocate_lock()
        lock.acquire()
        with cond:
            queue.append(lock)
            if len(queue) == 1:
                cond.notify()
        lock.acquire()

    thread = threading.Thread(target=server)
    thread.start()
    rate, _ = threads_closed_loop(call, [np.zeros((1, 1), np.float32)] * n_requests)
    with cond:
        stop = True
        cond.notify()
    thread.join()
    return rate


def wake_round_trip_us(n: int = 5000) -> float:
    """Microseconds for thread A to wake thread B and B to wake A again, through two locks."""
    import _thread

    ping, pong = _thread.allocate_lock(), _thread.allocate_lock()
    ping.acquire()
    pong.acquire()

    def echo() -> None:
        for _ in range(n):
            ping.acquire()
            pong.release()

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    thread.join()
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6400, help="requests per scenario run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are reported")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-us", type=int, default=500)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for batcher.json and batcher.md")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, of {', '.join(TARGETS)} (forest-1000: a forest ten times "
                             "as big, about as slow per row as the issue's scale)")
    args = parser.parse_args()

    from mlc.runtime.batcher import DynamicBatcher
    from mlc.runtime.scorer import Scorer
    from mlc.runtime.session import SessionConfig

    plan = {"session": SessionConfig(intra_op_threads=1).to_dict(), "engines": [{"engine": "ort"}]}
    settings = {"max_batch_size": args.max_batch_size, "max_queue_delay_us": args.max_queue_delay_us,
                "instances": args.instances}
    wanted = tuple(args.models.split(","))
    if unknown := set(wanted) - set(TARGETS):
        parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    models = build_models(wanted)
    gc.freeze()  # as a server does after start-up: full collections then skip the libraries' objects
    runs: dict[str, dict[str, list[float]]] = {}
    checks: dict[str, bool] = {}
    batch_rows: dict[str, float] = {}
    gains: dict[str, dict[str, float]] = {}
    for name, (model, X) in models.items():
        scorer = Scorer(model, target="cpu-2", runtime_plan=plan)
        scorer.warmup()
        gains[name] = batch_gain(scorer, X, args.max_batch_size)
        picks = np.random.default_rng(0).integers(0, len(X), args.requests)
        rows = [X[i:i + 1] for i in picks]
        reference = scorer.predict(X[picks])
        with DynamicBatcher(scorer, **settings) as batcher:
            kinds = scenarios(scorer, batcher)
            for run in kinds.values():  # warm-up, untimed
                run(rows[: CLIENTS * 4])
            runs[name] = {kind: [] for kind in kinds}
            checks[name] = True
            for rep in range(args.repeats):
                for kind in (list(kinds) if rep % 2 == 0 else list(reversed(kinds))):
                    rate, answers = kinds[kind](rows)
                    runs[name][kind].append(rate)
                    checks[name] &= same_output(answers, reference)
            batch_rows[name] = batcher.stats().mean_batch_rows
    costs = [batcher_cost(args.requests) for _ in range(max(7, args.repeats))]  # cheap; the machine is noisy
    ceiling = [noop_threads_ceiling(args.requests) for _ in range(args.repeats)]
    bare = [bare_handoff_ceiling(args.requests) for _ in range(args.repeats)]
    wake = [wake_round_trip_us() for _ in range(args.repeats)]

    report = summarize(args, runs, checks, batch_rows, costs, ceiling, bare, settings)
    report["wake_round_trip_us"] = {"runs": wake, "median": statistics.median(wake)}
    for name, gain in gains.items():
        report["models"][name]["batch_gain"] = gain
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batcher.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render(report)
    (args.out / "batcher.md").write_text(markdown)
    print(markdown)


def summarize(args: argparse.Namespace, runs: dict, checks: dict, batch_rows: dict, costs: list,
              ceiling: list, bare: list, settings: dict) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for name, kinds in runs.items():
        medians = {kind: statistics.median(rates) for kind, rates in kinds.items()}
        models[name] = {"rps": kinds, "rps_median": medians, "same_output": checks[name],
                        "mean_batch_rows": batch_rows[name], "target_speedup": TARGETS[name]}
        for setup in ("threads", "asyncio"):
            speedup = medians[f"{setup}/batched"] / medians[f"{setup}/direct"]
            models[name][f"{setup}_speedup"] = speedup
            models[name][f"{setup}_met"] = speedup >= TARGETS[name] and checks[name]
    cpu = statistics.median(c[1] for c in costs)
    return {
        "benchmark": "batcher",
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"requests": args.requests, "repeats": args.repeats, "clients": CLIENTS,
                     "ort_intra_op_threads": 1, **settings},
        "models": models,
        "noop_threads_ceiling_rps": {"runs": ceiling, "median": statistics.median(ceiling)},
        "bare_handoff_ceiling_rps": {"runs": bare, "median": statistics.median(bare)},
        "batcher_cost_us": {"wall_runs": [c[0] for c in costs], "cpu_runs": [c[1] for c in costs],
                            "wall_median": statistics.median(c[0] for c in costs), "cpu_median": cpu,
                            "cpu_min": min(c[1] for c in costs),
                            "target": COST_TARGET_US, "met": cpu <= COST_TARGET_US},
    }


def render(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    lines = [
        "# Dynamic batcher: 1-row requests from 64 concurrent clients",
        "",
        f"{s['requests']} requests per run, {s['repeats']} interleaved repeats, medians; ORT 1 intra-op thread; "
        f"batcher max_batch_size={s['max_batch_size']}, max_queue_delay_us={s['max_queue_delay_us']}, "
        f"instances={s['instances']}. Machine: {m['cpus']} CPUs, load average "
        f"{m['load_average'][0]:.1f} at the end. Every answer checked against one batch predict.",
        "",
        "| model | set-up | direct req/s | batched req/s | speed-up | target | same output |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, r in report["models"].items():
        for setup in ("threads", "asyncio"):
            met = "met" if r[f"{setup}_met"] else "MISSED"
            lines.append(
                f"| {name} | {setup} | {r['rps_median'][f'{setup}/direct']:,.0f} | "
                f"{r['rps_median'][f'{setup}/batched']:,.0f} | {r[f'{setup}_speedup']:.2f}x | "
                f">= {r['target_speedup']:.0f}x {met} | {'yes' if r['same_output'] else 'NO'} |")
    c = report["batcher_cost_us"]
    lines += [
        "",
        "The most batching can gain (ORT, one thread, distinct rows, per row alone over per row in batches of "
        f"{s['max_batch_size']}): "
        + ", ".join(f"{n} {r['batch_gain']['gain']:.1f}x ({r['batch_gain']['row_us_alone']:.1f} against "
                    f"{r['batch_gain']['row_us_batched']:.1f} us)" for n, r in report["models"].items())
        + ". The asyncio set-up can exceed it: its direct calls also pay a thread-pool hand-off each.",
        "",
        "Mean batch: " + ", ".join(f"{n} {r['mean_batch_rows']:.1f} rows" for n, r in report["models"].items())
        + ". asyncio through submit() + asyncio.wrap_future instead of submit_async: "
        + ", ".join(f"{n} {r['rps_median']['asyncio/wrap_future']:,.0f} req/s" for n, r in report["models"].items())
        + ". The threads set-up through a no-op model tops out at "
        f"{report['noop_threads_ceiling_rps']['median']:,.0f} req/s; a bare hand-off of a lock between "
        f"the 64 threads and one server thread (no batcher at all) at "
        f"{report['bare_handoff_ceiling_rps']['median']:,.0f} req/s: thread wake-ups and the GIL bound any "
        "thread-driven batcher there, whatever the model. Two threads waking each other through locks: "
        f"{report['wake_round_trip_us']['median']:.1f} us a round trip, so one wake-up costs about "
        f"{report['wake_round_trip_us']['median'] / 2:.1f} us; each request of the threads set-up pays one, "
        "batched or direct.",
        "",
        f"Batcher cost per request (no-op model, one submitting thread, {len(c['cpu_runs'])} runs): median "
        f"{c['cpu_median']:.1f} us CPU (best {c['cpu_min']:.1f}, wall {c['wall_median']:.1f}); "
        f"target <= {c['target']:.0f} us CPU: {'met' if c['met'] else 'MISSED'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
