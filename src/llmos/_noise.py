"""Log records of libraries we build on that are noise for every llmos user, dropped by content.

torchao (imported by transformers whenever it is installed) logs at import every optional CUDA
kernel library it cannot load, which is all of them on a CPU host, and registers enums with
torch's pytree in a way torch now calls deprecated. Only those records are dropped: anything
else those loggers say still shows.
"""

from __future__ import annotations

import logging

__all__ = ["drop_known_noise"]

_NOISE = {
    "torchao": ("Failed to load ",),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
}


class _DropMatching(logging.Filter):
    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(needle in message for needle in self.needles)


def drop_known_noise() -> None:
    """Install the filters (once per logger; cheap: no library is imported)."""
    for name, needles in _NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) for f in logger.filters):
            logger.addFilter(_DropMatching(needles))
