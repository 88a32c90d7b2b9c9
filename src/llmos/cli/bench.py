"""`llmos bench serve URL`: a load generator for a running server, with a table and JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console

app = typer.Typer(help="Measure running services.", no_args_is_help=True)

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def parse_duration_s(text: str) -> float:
    """'30s', '2m', '500ms' or a bare number of seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|)\s*", text)
    if not match or float(match[1]) <= 0:
        raise typer.BadParameter(f"expected a duration like 30s, 2m or 500ms, got {text!r}")
    return float(match[1]) * _UNITS_S[match[2]]


@contextmanager
def _live_progress(seconds: float) -> Iterator[Callable[[float, int], None]]:
    """A bar on stderr (stdout may carry the JSON report) while the load runs: time measured,
    answers so far and their rate."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("load"), BarColumn(), TextColumn("{task.completed:.1f}/{task.total:g} s"),
               TimeRemainingColumn(), TextColumn("{task.fields[answers]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("load", total=seconds, answers="warming up")

        def update(measured_s: float, answers: int) -> None:
            rate = f"{answers / measured_s:.1f}/s" if measured_s > 0 else ""
            bar.update(task, completed=measured_s,
                       answers=f"{answers} answers {rate}" if measured_s > 0 else "warming up")

        yield update


@app.command("serve")
def bench_serve(
    url: Annotated[str, typer.Argument(help="the server, e.g. http://127.0.0.1:8000")],
    concurrency: Annotated[int, typer.Option(min=1, help="clients in the closed loop")] = 16,
    duration: Annotated[str, typer.Option(help="how long to measure: 30s, 2m, 500ms")] = "30s",
    warmup: Annotated[str, typer.Option(help="load before measuring, not counted")] = "1s",
    rate: Annotated[float | None, typer.Option(
        min=0.001, help="open loop instead: this many requests per second, whatever the answers")] = None,
    texts: Annotated[Path | None, typer.Option(
        help=".txt (one per line) or .csv/.tsv (first column)",
        show_default="the bundled support-intents messages")] = None,
    route: Annotated[str | None, typer.Option(
        help="POST route (classify, embeddings or completions)", show_default="found from GET /v1/models")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="max_tokens of completion requests")] = 16,
    stream: Annotated[bool, typer.Option(
        "--stream", help="generation: stream (greedy); time to first token, inter-token latency, tokens/s")] = False,
    system_prompt: Annotated[str | None, typer.Option(
        help="generation: a system prompt opening every request (chat), to measure prefix reuse")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="LLMOS_API_KEY", help="bearer token")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="also write the report as JSON here ('-': stdout)")] = None,
) -> None:
    """Closed-loop (or open-loop) load with real texts: throughput, p50/p95/p99 latency, errors by status;
    with --stream, time to first token, inter-token latency and aggregate tokens/s of generation."""
    import asyncio

    from rich.table import Table

    from llmos.errors import LlmosError
    from llmos.serve._bench import run_load
    from llmos.serve._texts import read_texts

    corpus = read_texts(texts)
    seconds, warm_s = parse_duration_s(duration), parse_duration_s(warmup) if warmup not in ("0", "0s") else 0.0
    try:
        with _live_progress(seconds) as progress:
            report = asyncio.run(run_load(url, corpus, duration_s=seconds, concurrency=concurrency, rate_rps=rate,
                                          route=route, api_key=api_key, max_tokens=max_tokens, warmup_s=warm_s,
                                          progress=progress, stream=stream, system_prompt=system_prompt))
    except (OSError, ValueError) as exc:
        raise LlmosError(f"cannot load {url}: {exc}", hint="Check that the server runs (curl URL/readyz) "
                                                            "and the URL, or pass --route.") from None
    if json_out is not None and str(json_out) == "-":
        typer.echo(report.to_json())
        return
    table = Table(title=f"{report.url}{report.route}  ({report.mode}, {report.duration_s:g} s)", show_header=False)
    table.add_row("requests", str(report.requests))
    table.add_row("ok (2xx)", str(report.ok))
    table.add_row("throughput", f"{report.throughput_rps:.1f} req/s")
    for name in ("p50", "p95", "p99", "mean"):
        value = getattr(report, f"{name}_ms")
        table.add_row(f"latency {name}", "-" if value is None else f"{value:.1f} ms")
    if report.tokens_per_s is not None:
        for name in ("ttft_p50", "ttft_p95", "itl_p50", "itl_p95"):
            value = getattr(report, f"{name}_ms")
            table.add_row(name.replace("_", " "), "-" if value is None else f"{value:.1f} ms")
        table.add_row("tokens/s (all streams)", f"{report.tokens_per_s:.1f} ({report.completion_tokens} tokens)")
    table.add_row("errors", ", ".join(f"{k}: {v}" for k, v in report.errors.items()) or "none")
    console.print(table)
    if json_out is not None:
        json_out.write_text(report.to_json() + "\n")
        console.print(f"wrote {json_out}")
