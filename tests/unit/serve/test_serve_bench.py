"""The load generator's statistics and inputs, with literals."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from llmos.cli.bench import parse_duration_s
from llmos.errors import DataError
from llmos.serve._bench import percentile, summarize
from llmos.serve._texts import read_texts


def test_percentiles_interpolate() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 50.0
    assert percentile([], 50) is None


def test_summary_counts_latency_of_successes_only_and_errors_by_status() -> None:
    samples = [(200, 0.010), (200, 0.020), (200, 0.030), (429, 0.001), (429, 0.001), (503, 0.002),
               ("connect", 0.0)]
    report = summarize(samples, duration_s=2.0, url="u", route="/v1/classify", mode="closed")
    assert report.requests == 7 and report.ok == 3
    assert report.throughput_rps == 1.5
    assert report.p50_ms == 20.0 and report.mean_ms == 20.0
    assert report.errors == {"429": 2, "503": 1, "connect": 1}
    assert '"p99_ms"' in report.to_json()


def test_durations() -> None:
    assert parse_duration_s("30s") == 30 and parse_duration_s("2m") == 120
    assert parse_duration_s("500ms") == 0.5 and parse_duration_s("3") == 3
    with pytest.raises(typer.BadParameter, match="30s"):
        parse_duration_s("soon")


def test_texts_from_txt_tsv_and_csv_with_header(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n\n two \n")
    (tmp_path / "b.tsv").write_text("first text\t0\nsecond\t1\n")
    (tmp_path / "c.csv").write_text('text,label\n"hello, there",a\n')
    assert read_texts(tmp_path / "a.txt") == ["one", "two"]
    assert read_texts(tmp_path / "b.tsv") == ["first text", "second"]
    assert read_texts(tmp_path / "c.csv") == ["hello, there"]
    assert len(read_texts(None)) > 100  # the bundled support-intents messages
    with pytest.raises(DataError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")


async def _answer_ok(reader, writer) -> None:
    """A keep-alive HTTP/1.1 peer that answers every POST with a small JSON body."""
    import asyncio

    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            await reader.readexactly(length)
            await asyncio.sleep(0.002)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def test_run_load_reports_progress_until_the_end() -> None:
    import asyncio

    from llmos.serve._bench import run_load

    calls: list[tuple[float, int]] = []

    async def main():
        server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_load(f"http://127.0.0.1:{port}", ["a", "b"], duration_s=0.8, concurrency=2,
                                  route="/v1/classify", warmup_s=0.3,
                                  progress=lambda s, n: calls.append((s, n)))

    report = asyncio.run(main())
    assert report.ok > 10 and report.errors == {}
    assert calls[0] == (0.0, 0)  # the warm-up counts nothing
    measured = [s for s, _ in calls]
    assert measured == sorted(measured) and 0.0 < measured[-2] <= 0.8
    assert calls[-1] == (0.8, report.requests)
