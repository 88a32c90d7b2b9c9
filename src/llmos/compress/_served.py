"""Time one model folder as `llmos serve` serves it, in a fresh process: the server's runtime,
settings, warm-up and batch worker (`llmos.serve.load_local`), answering requests of the eval
texts through the route handler (`llmos.serve.answer`); only HTTP is left out.

    python -m llmos.compress._served REQUEST.json RESULT.json

Latency: one-text requests, one at a time, cycling through the eval texts. Throughput: requests
of `batch_size` eval texts, `clients` in flight at once, every text once (at least `requests`
requests); the worker forms its batches from them as it does under that load. Each forward pass
is counted: inputs, real tokens, and token positions the layers ran (packed rows, or the padded
batch), so the report shows what padding costs a runtime that cannot pack.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from llmos._exit import skip_collection_at_exit

__all__ = ["measure_served", "percentiles_ms"]


def percentiles_ms(latencies_ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of a list of latencies."""
    ordered = sorted(latencies_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure_served(request: dict[str, Any]) -> dict[str, Any]:
    """Load the folder as a replica, drive it, return the figures and the settings they used."""
    from llmos.serve import load_local
    from llmos.spec import ServeJob

    size, clients = int(request["batch_size"]), int(request["clients"])
    job = ServeJob(model="measured", runtime=request["runtime"], batching=request["batching"],
                   limits={"max_inputs": max(64, size), "timeout_s": 3600,
                           "max_queue": max(256, size * clients, request["batching"]["max_batch_size"])})
    service = load_local(job, Path(request["folder"]))
    try:
        texts, pairs, over = _servable(service, request["texts"], request.get("pairs"))
        passes: list[dict[str, int]] = []
        _count_passes(service.runtime, passes)
        figures = asyncio.run(_drive(service, texts, pairs, request, passes))
    finally:
        service.stop()
    return {**figures, "runtime": _runtime_settings(service.runtime), "batching": job.batching.model_dump(),
            "load": {"batch_size": size, "clients": clients, "texts": len(texts), "texts_over_limit": over},
            "load_s": service.load_s}


def _servable(service: Any, texts: list[str], pairs: list[str] | None
              ) -> tuple[list[str], list[str] | None, int]:
    """The texts the server takes (an input over its token limit would be refused with 422)."""
    rows = service.tokenize(texts, pairs)
    keep = [i for i, (ids, _) in enumerate(rows) if len(ids) <= service.max_input_tokens]
    if not keep:
        from llmos.errors import DataError

        raise DataError(f"every eval text is longer than the served limit of {service.max_input_tokens} tokens.",
                        hint="Use eval data of the length the model is served with.")
    return [texts[i] for i in keep], None if pairs is None else [pairs[i] for i in keep], len(texts) - len(keep)


def _count_passes(runtime: Any, passes: list[dict[str, int]]) -> None:
    """Record every forward pass: inputs, real tokens, and positions the encoder layers ran."""
    infer = runtime.infer

    def counted(batch: Any) -> Any:
        n, width = batch.input_ids.shape
        passes.append({"inputs": int(n), "tokens": int(batch.attention_mask.sum()), "positions": int(n * width)})
        result = infer(batch)
        if getattr(runtime, "last_positions", 0):  # length buckets: each call padded to its own longest
            passes[-1]["positions"] = int(runtime.last_positions)
        return result

    runtime.infer = counted
    packed = getattr(runtime, "packed", None)
    if packed is not None:  # packed rows: the layer stack sees [rows, row length, hidden]
        def seen(_module: Any, args: tuple[Any, ...]) -> None:
            passes[-1]["positions"] = int(args[0].shape[0] * args[0].shape[1])

        packed.inner.register_forward_pre_hook(seen)


async def _drive(service: Any, texts: list[str], pairs: list[str] | None, request: dict[str, Any],
                 passes: list[dict[str, int]]) -> dict[str, Any]:
    from llmos.serve import answer

    n, size = len(texts), int(request["batch_size"])

    async def ask(idx: list[int]) -> float:
        started = time.perf_counter()
        await answer(service, [texts[i] for i in idx], None if pairs is None else [pairs[i] for i in idx])
        return (time.perf_counter() - started) * 1000

    requests = max(math.ceil(n / size), int(request["requests"]))
    chunks = [[(r * size + i) % n for i in range(size)] for r in range(requests)]
    for i in range(int(request["warmup"])):
        await ask([i % n])
        await ask(chunks[i % len(chunks)])
    single = [await ask([i % n]) for i in range(int(request["latency_runs"]))]
    passes.clear()
    pending, in_load = iter(chunks), []

    async def client() -> None:
        for idx in pending:  # one shared iterator: each client sends the next request when answered
            in_load.append(await ask(idx))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(int(request["clients"]))))
    elapsed_s = time.perf_counter() - started
    p50, p95 = percentiles_ms(single)
    tokens, positions = sum(p["tokens"] for p in passes), sum(p["positions"] for p in passes)
    return {"latency_p50_ms": p50, "latency_p95_ms": p95, "throughput": requests * size / elapsed_s,
            "request_p50_ms": percentiles_ms(in_load)[0], "passes": len(passes),
            "inputs_per_pass": requests * size / max(len(passes), 1),
            "padding": 1 - tokens / positions if positions else 0.0}


def _runtime_settings(runtime: Any) -> dict[str, Any]:
    """What the figures ran on: the runtime's own account of itself, as `llmos serve` prints it."""
    if runtime.name == "onnx":
        threads = runtime.session.get_session_options().intra_op_num_threads
        packing = runtime.packing
    else:
        # as the runtime planned it: torch.get_num_threads() answers for the calling thread only,
        # and the model runs in the batch worker's
        threads = runtime.threads
        packing = runtime.packing
    return {"name": runtime.name, "precision": runtime.precision, "device": runtime.device, "threads": threads,
            "packing": packing, "compiled": getattr(runtime, "compiled", "off")}


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    import warnings

    from llmos.serve import openmp_defaults

    openmp_defaults()  # before torch loads, as in the server's process
    warnings.filterwarnings("ignore")
    request = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(measure_served(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
