"""Load a registered version for inference: fetched, checked against its manifest, safetensors only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.registry._fetch import fetch
from llmos.registry._ref import ModelRef

if TYPE_CHECKING:
    from llmos.models import Built

__all__ = ["load"]


def load(ref: str | ModelRef, tracking_uri: str | None = None) -> Built:
    """The model and tokenizer of `ref` (`name@alias`, `name/3`), verified file by file."""
    from llmos.models import load_trained

    return load_trained(fetch(ref, tracking_uri=tracking_uri))
