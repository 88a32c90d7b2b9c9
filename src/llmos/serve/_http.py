"""A small keep-alive HTTP/1.1 client on asyncio streams, for the load generator.

A general client (httpx) spends more CPU per request than a small server's forward pass on a
2-core machine, which would measure the client. This one writes a request and reads one
response (Content-Length or chunked), nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["Connection", "parse_url"]


def parse_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    return parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/")


class Connection:
    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """One request; reconnects once if the server closed an idle keep-alive connection."""
        for attempt in (0, 1):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self._reader is not None and self._writer is not None
        head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{self._extra}"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n")
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            data = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            data = await self._chunked()
        else:
            data = await self._reader.read()
        if headers.get("connection") == "close":
            await self.close()
        return status, headers, data

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])

    async def stream(self, method: str, path: str, body: bytes, on_data: Callable[[bytes], None]) -> int:
        """Send one request and call `on_data(bytes)` for each piece of the body as it arrives (a
        chunked server-sent event stream, or a whole body); returns the status."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{self._extra}"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n")
        writer.write(head.encode() + body)
        status = int((await reader.readuntil(b"\r\n")).split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                on_data((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")
        else:
            on_data(await reader.readexactly(int(headers.get("content-length", "0"))))
        if headers.get("connection") == "close":
            await self.close()
        return status

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

