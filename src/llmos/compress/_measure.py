"""Measure one model folder in a fresh process: the task metric on the eval rows, latency at
batch 1, throughput at the report batch size, size on disk, parameter count, peak memory.

Every model (parent and children) is measured by the same code in its own process, one after the
other, so none inherits another's thread pools, compiled graphs or memory high-water mark:
`python -m llmos.compress._measure REQUEST.json RESULT.json`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from llmos._exit import skip_collection_at_exit

__all__ = ["measure_folder", "params_count", "size_on_disk_mb"]

_MANIFEST = "manifest.json"


def size_on_disk_mb(folder: Path) -> float:
    """Bytes of every file the model needs (weights, config, tokenizer), in MB (1e6 bytes)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != _MANIFEST) / 1e6


def params_count(model: Any) -> int:
    """Logical parameter count: a quantized weight counts its elements, not its bytes."""
    from llmos.models._onnx import OnnxModel

    if isinstance(model, OnnxModel):
        import onnx

        graph = onnx.load(str(model.path), load_external_data=False).graph
        # int8 weights and their fp32 originals never both live in one graph; scales are small.
        return sum(_numel(t.dims) for t in graph.initializer if len(t.dims) >= 1 and _numel(t.dims) > 1)
    from llmos.models._int8_embedding import Int8Embedding

    # int8 embedding tables are buffers, not parameters, but they are the model's weights all the same
    tables = sum(m.qweight.numel() for m in model.modules() if isinstance(m, Int8Embedding))
    return sum(p.numel() for p in model.parameters()) + tables


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def measure_folder(request: dict[str, Any]) -> dict[str, Any]:
    """Run every measurement of one model; `request` says what (see `_report.measure_all`)."""
    import torch

    from llmos.data import Encoded
    from llmos.models import load_trained
    from llmos.run._dist import Dist
    from llmos.run._evaluate import evaluate

    threads = int(request["num_threads"])
    torch.set_num_threads(threads)
    folder = Path(request["folder"])
    rss_before_mb = _rss_mb()
    t0 = time.perf_counter()
    built = load_trained(folder)
    if hasattr(built.model, "session"):  # ONNX Runtime: same thread budget as torch
        from llmos.models._onnx import OnnxModel

        built.model = OnnxModel(built.model.path, built.model.task, num_threads=threads)
    load_s = time.perf_counter() - t0
    model, task = built.model, request["task"]
    enc = Encoded(**request["eval"])
    dist = Dist(rank=0, local_rank=0, world_size=1, local_world_size=1, device=torch.device("cpu"))
    with torch.inference_mode():
        metrics = evaluate(model, enc, task=task, dist=dist, batch_size=32, pad_id=request["pad_id"],
                           autocast=None, num_labels=len(request.get("label_names") or []))
    compile_s = 0.0
    if request["compile"]:
        t1 = time.perf_counter()
        model = _compiled(model)
        compile_s = time.perf_counter() - t1  # the graphs compile on the first calls below
    timings = _timings(model, enc, request, task)
    compile_s += timings.pop("first_calls_s")
    return {"metrics": metrics, "load_s": load_s, "compile_s": compile_s if request["compile"] else 0.0,
            "compiled": bool(request["compile"]), "size_mb": size_on_disk_mb(folder),
            "params": params_count(built.model), "peak_rss_mb": _rss_mb(), "runtime_rss_mb": rss_before_mb,
            "format": built.format, "threads": threads, **timings}


def _compiled(model: Any) -> Any:
    import torch
    import torch._inductor.config as inductor

    # Frozen weights let inductor fold the int8 weight handling into its CPU kernels: this is
    # what makes torchao's int8 path fast on CPU.
    inductor.freezing = True
    return torch.compile(model)


def _timings(model: Any, enc: Any, request: dict[str, Any], task: str) -> dict[str, float]:
    """p50/p95 latency of batch-1 calls and examples/s of full batches, every input `seq_len` tokens."""
    import torch

    seq_len, batch_size = int(request["seq_len"]), int(request["batch_size"])
    rows = [_fixed(ids, seq_len, request["pad_id"]) for ids in enc.input_ids]
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
    mask = torch.tensor([r[1] for r in rows], dtype=torch.long)
    n = len(rows)

    def call(start: int, size: int) -> None:
        idx = [(start + i) % n for i in range(size)]
        model(input_ids=ids[idx], attention_mask=mask[idx])

    with torch.inference_mode():
        t0 = time.perf_counter()
        call(0, 1)
        call(0, batch_size)
        first_s = time.perf_counter() - t0
        for i in range(request["warmup"]):
            call(i, 1)
        latencies = []
        for i in range(request["latency_runs"]):
            t = time.perf_counter()
            call(i, 1)
            latencies.append((time.perf_counter() - t) * 1000)
        for i in range(request["warmup"]):
            call(i * batch_size, batch_size)
        t = time.perf_counter()
        for i in range(request["throughput_batches"]):
            call(i * batch_size, batch_size)
        elapsed = time.perf_counter() - t
    latencies.sort()
    return {"latency_p50_ms": statistics.median(latencies),
            "latency_p95_ms": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
            "throughput": request["throughput_batches"] * batch_size / elapsed, "first_calls_s": first_s}


def _fixed(ids: list[int], seq_len: int, pad_id: int) -> tuple[list[int], list[int]]:
    ids = list(ids[:seq_len])
    return ids + [pad_id] * (seq_len - len(ids)), [1] * len(ids) + [0] * (seq_len - len(ids))


def _rss_mb() -> float:
    """This process's peak resident memory so far, in MB (2**20 bytes)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec, so a child started by a big
    # parent would report the parent's peak.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    import warnings

    warnings.filterwarnings("ignore")
    request = json.loads(Path(argv[0]).read_text())
    result = measure_folder(request)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
