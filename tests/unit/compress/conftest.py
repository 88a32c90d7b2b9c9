"""Tests that call `measure` directly end the warm measuring processes it started, as a
compression does once it has measured every model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _end_warm_measuring_processes() -> Iterator[None]:
    yield
    from llmos.compress._report import close_warm_starts

    close_warm_starts()
