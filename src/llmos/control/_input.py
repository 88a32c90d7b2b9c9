"""What the control API refuses before any route sees a request (pure functions, tested with literals).

Python's integers and JSON's numbers have no size, but SQLite and PostgreSQL columns hold 64 bits;
a NUL byte cannot be part of a path (`open()` raises) or of PostgreSQL text; NaN and infinities
cannot be written back as JSON. Each of these gave a 500 deep inside a route; here they are a 422
that names where in the request the value is.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["INT64_MAX", "INT64_MIN", "MAX_DEPTH", "MAX_ENV_BYTES", "MAX_ENV_VARS", "MAX_NAME", "parse_json",
           "submission_problems", "url_problems", "value_problems"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 32  # nesting of a request body: a spec is a few levels deep
MAX_NAME = 100  # characters in a job or deployment name (the tables' columns hold 100 to 200)
MAX_ENV_VARS = 256
MAX_ENV_BYTES = 65_536  # names and values of a job's environment together


def value_problems(value: Any, path: str = "body", depth: int = 0) -> list[tuple[str, str]]:
    """Every NUL byte, integer beyond 64 bits and non-finite number in a parsed JSON value."""
    if depth > MAX_DEPTH:
        return [(path, f"nested deeper than {MAX_DEPTH} levels; a job spec needs a few")]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return [(path, f"{_short(str(value))} is beyond a 64-bit integer ({INT64_MIN}..{INT64_MAX})")]
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, f"{value} is not a finite number")]
    if isinstance(value, str):
        return [(path, "contains a NUL byte (\\u0000); remove it")] if "\x00" in value else []
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                found.append((path, f"the key {_short(k)!r} contains a NUL byte (\\u0000); remove it"))
            found += value_problems(v, f"{path}.{k.replace(chr(0), '?')}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += value_problems(v, f"{path}[{i}]", depth + 1)
    return found[:20]  # enough to fix the request; a flood of problems would only be echoed back


def parse_json(body: bytes) -> tuple[Any, list[tuple[str, str]]]:
    """The body parsed, or the reason it cannot be (None and one problem)."""
    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a finite number")

    try:
        return json.loads(body, parse_constant=refuse_constant), []
    except RecursionError:
        return None, [("body", f"nested too deeply; a job spec needs at most {MAX_DEPTH} levels")]
    except UnicodeDecodeError:
        return None, [("body", "is not UTF-8 text; send JSON")]
    except ValueError as exc:  # JSONDecodeError, a number of over 4300 digits, NaN or Infinity
        return None, [("body", f"is not valid JSON: {_short(str(exc), 200)}")]


def url_problems(path: str, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """NUL bytes in the URL's path or query (decoded), which cannot name a file or a row, and integers
    beyond 64 bits, which no id, offset or cursor can be (on every route, whatever it declares)."""
    found = [("path", "contains a NUL byte (%00); remove it")] if "\x00" in path else []
    found += [("path", f"{_short(part)} is beyond a 64-bit integer") for part in path.split("/") if _too_big(part)]
    for name, value in query:
        where = f"query.{name.replace(chr(0), '?')}"
        if "\x00" in name or "\x00" in value:
            found.append((where, "contains a NUL byte (%00); remove it"))
        elif _too_big(value):
            found.append((where, f"{_short(value)} is beyond a 64-bit integer"))
    return found


def _too_big(text: str) -> bool:
    """An integer literal outside -2**63..2**63-1 (without converting a string of any length)."""
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    if not unsigned.isascii() or not unsigned.isdigit():
        return False
    digits = unsigned.lstrip("0")
    return len(digits) > 19 or not INT64_MIN <= int(text) <= INT64_MAX


def submission_problems(spec: Any) -> list[tuple[str, str]]:
    """Limits on what a submitted spec may hold beyond its own schema: name length, environment size."""
    if not isinstance(spec, dict):
        return []
    found = []
    name = spec.get("name")
    if isinstance(name, str) and len(name) > MAX_NAME:
        found.append(("spec.name", f"is {len(name)} characters; at most {MAX_NAME}"))
    env = spec.get("env")
    if isinstance(env, dict):
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in env.items())
        if len(env) > MAX_ENV_VARS:
            found.append(("spec.env", f"has {len(env)} variables; at most {MAX_ENV_VARS}"))
        if size > MAX_ENV_BYTES:
            found.append(("spec.env", f"holds {size} bytes of names and values; at most {MAX_ENV_BYTES} "
                                      "(pass large data as a file under the job's folder)"))
    return found


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
